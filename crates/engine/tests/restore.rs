//! Planning and applying restores over a folder of LTX files made from real database
//! states: every TXID restores byte-identically, corrupt files produce no output.

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::Connection;
use tideline_engine::Error;
use tideline_engine::replica::FileInfo;
use tideline_engine::restore::{IntegrityCheck, Target, apply, check_integrity, plan};
use tideline_ltx::{
    CompactOptions, Decoder, Encoder, FLAG_NO_CHECKSUM, Header, Txid, compact, format_filename,
    parse_filename,
};

const PS: usize = 4096;

/// Database images after each of a series of real transactions, checkpointed.
fn states(dir: &Path) -> Vec<Vec<u8>> {
    let db = dir.join("src.db");
    let c = Connection::open(&db).unwrap();
    c.pragma_update(None, "journal_mode", "wal").unwrap();
    let snap = |c: &Connection| {
        c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
            .unwrap();
        fs::read(&db).unwrap()
    };
    let mut out = Vec::new();
    c.execute_batch("CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v);")
        .unwrap();
    out.push(snap(&c));
    for step in 0..6 {
        let tx = c.unchecked_transaction().unwrap();
        match step {
            3 => {
                tx.execute("DELETE FROM t WHERE id % 3 = 0", []).unwrap();
            }
            _ => {
                for i in 0..400 * (step + 1) {
                    tx.execute(
                        "INSERT INTO t(v) VALUES (?1)",
                        [format!("row {step}-{i} ").repeat(3)],
                    )
                    .unwrap();
                }
            }
        }
        tx.commit().unwrap();
        if step == 4 {
            c.execute_batch("VACUUM").unwrap();
        }
        out.push(snap(&c));
    }
    out
}

fn header(min: u64, max: u64, commit: usize) -> Header {
    Header {
        flags: FLAG_NO_CHECKSUM,
        page_size: PS as u32,
        commit: commit as u32,
        min_txid: Txid(min),
        max_txid: Txid(max),
        timestamp: 1_800_000_000_000 + max as i64 * 1000,
        ..Header::default()
    }
}

fn page(img: &[u8], pgno: usize) -> &[u8] {
    &img[(pgno - 1) * PS..pgno * PS]
}

fn put(replica: &Path, level: u8, h: Header, bytes: &[u8]) {
    let dir = replica.join("ltx").join(level.to_string());
    fs::create_dir_all(&dir).unwrap();
    let path = dir.join(format_filename(h.min_txid, h.max_txid));
    fs::write(&path, bytes).unwrap();
    File::options()
        .write(true)
        .open(&path)
        .unwrap()
        .set_modified(UNIX_EPOCH + Duration::from_millis(h.timestamp as u64))
        .unwrap();
}

/// L9 snapshot 1-1 of state 1, L0 k-k of the changes to each later state, and an L1
/// compaction of L0 2..=4.
fn build_replica(replica: &Path, states: &[Vec<u8>]) {
    let first = &states[0];
    let mut enc = Encoder::new(Vec::new(), header(1, 1, first.len() / PS)).unwrap();
    for p in 1..=first.len() / PS {
        enc.write_page(p as u32, page(first, p)).unwrap();
    }
    put(
        replica,
        9,
        header(1, 1, first.len() / PS),
        &enc.finish().unwrap().0,
    );
    for k in 1..states.len() {
        let (prev, cur) = (&states[k - 1], &states[k]);
        let h = Header {
            wal_offset: 32,
            ..header(k as u64 + 1, k as u64 + 1, cur.len() / PS)
        };
        let mut enc = Encoder::new(Vec::new(), h).unwrap();
        for p in 1..=cur.len() / PS {
            if p > prev.len() / PS || page(prev, p) != page(cur, p) {
                enc.write_page(p as u32, page(cur, p)).unwrap();
            }
        }
        put(replica, 0, h, &enc.finish().unwrap().0);
    }
    let l0 = |t: u64| {
        replica
            .join("ltx/0")
            .join(format_filename(Txid(t), Txid(t)))
    };
    let inputs = (2..=4)
        .map(|t| Decoder::new(BufReader::new(File::open(l0(t)).unwrap())).unwrap())
        .collect();
    let (bytes, stats) = compact(inputs, Vec::new(), CompactOptions::default()).unwrap();
    put(replica, 1, stats.header, &bytes);
}

/// Lists the folder replica the way the file replica client does.
fn list(replica: &Path) -> Vec<Vec<FileInfo>> {
    (0..=9u8)
        .map(|level| {
            let Ok(rd) = fs::read_dir(replica.join("ltx").join(level.to_string())) else {
                return Vec::new();
            };
            rd.filter_map(|e| {
                let e = e.unwrap();
                let (min, max) = parse_filename(e.file_name().to_str()?)?;
                let md = e.metadata().unwrap();
                Some(FileInfo {
                    level,
                    min_txid: min,
                    max_txid: max,
                    size: md.len(),
                    created_at: md.modified().unwrap(),
                })
            })
            .collect()
        })
        .collect()
}

fn restore(
    replica: &Path,
    files: &[FileInfo],
    out: &Path,
) -> tideline_engine::Result<tideline_engine::restore::Restored> {
    let inputs = files
        .iter()
        .map(|f| {
            let p: PathBuf = replica
                .join("ltx")
                .join(f.level.to_string())
                .join(f.filename());
            (
                p.display().to_string(),
                BufReader::new(File::open(&p).unwrap()),
            )
        })
        .collect();
    apply(inputs, out)
}

#[test]
fn every_txid_restores_byte_identically() {
    let dir = tempfile::tempdir().unwrap();
    let states = states(dir.path());
    let replica = dir.path().join("replica");
    build_replica(&replica, &states);
    let levels = list(&replica);
    let out = dir.path().join("out.db");

    let p = plan(&levels, Target::Latest).unwrap();
    let r = restore(&replica, &p, &out).unwrap();
    assert_eq!(r.txid, Txid(states.len() as u64));
    assert!(
        fs::read(&out).unwrap() == *states.last().unwrap(),
        "latest restore differs"
    );
    check_integrity(&out, IntegrityCheck::Full).unwrap();

    let mut used_l1 = false;
    for (k, want) in states.iter().enumerate() {
        let txid = Txid(k as u64 + 1);
        let p = plan(&levels, Target::Txid(txid)).unwrap();
        used_l1 |= p.iter().any(|f| f.level == 1);
        let r = restore(&replica, &p, &out).unwrap();
        assert_eq!(r.txid, txid);
        assert!(
            fs::read(&out).unwrap() == *want,
            "TXID {txid} restore differs"
        );

        // By time: strictly after the file's creation gives the same state.
        let t = UNIX_EPOCH + Duration::from_millis(header(0, txid.0, 0).timestamp as u64 + 1);
        let p = plan(&levels, Target::Time(t)).unwrap();
        restore(&replica, &p, &out).unwrap();
        assert!(
            fs::read(&out).unwrap() == *want,
            "restore at a time after TXID {txid} differs"
        );
    }
    assert!(used_l1, "some plan used the L1 compaction");
    assert!(!dir.path().join("out.db.tmp").exists());
}

#[test]
fn a_corrupt_file_produces_no_output_and_keeps_the_old_one() {
    let dir = tempfile::tempdir().unwrap();
    let states = states(dir.path());
    let replica = dir.path().join("replica");
    build_replica(&replica, &states);
    let out = dir.path().join("out.db");
    fs::write(&out, b"previous contents").unwrap();

    // Damage the last L0 file's final bytes (its checksum): the merge reaches it last.
    let levels = list(&replica);
    let p = plan(&levels, Target::Latest).unwrap();
    let last = p.last().unwrap();
    let path = replica
        .join("ltx")
        .join(last.level.to_string())
        .join(last.filename());
    let mut bytes = fs::read(&path).unwrap();
    let n = bytes.len();
    bytes[n - 1] ^= 0x40;
    fs::write(&path, bytes).unwrap();

    let err = restore(&replica, &p, &out).unwrap_err();
    assert!(
        matches!(&err, Error::Ltx { source, .. } if source.is_corruption()),
        "{err}"
    );
    assert!(err.to_string().contains("checksum mismatch"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), b"previous contents");
    assert!(!dir.path().join("out.db.tmp").exists());
}

#[test]
fn a_plan_without_a_snapshot_start_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let states = states(dir.path());
    let replica = dir.path().join("replica");
    build_replica(&replica, &states);
    let levels = list(&replica);
    let l0: Vec<FileInfo> = levels[0]
        .iter()
        .filter(|f| f.min_txid >= Txid(2))
        .cloned()
        .collect();
    let mut l0 = l0;
    l0.sort_by_key(|f| f.min_txid);
    let err = restore(&replica, &l0, &dir.path().join("x.db")).unwrap_err();
    assert!(err.to_string().contains("not at 1"), "{err}");
}

#[test]
fn integrity_check_removes_a_damaged_database() {
    let dir = tempfile::tempdir().unwrap();
    let states = states(dir.path());
    let db = dir.path().join("damaged.db");
    let mut img = states.last().unwrap().clone();
    // Scribble over the middle of a b-tree page past the header.
    let at = 3 * PS + 200;
    img[at..at + 600].fill(0xA5);
    fs::write(&db, &img).unwrap();
    let err = check_integrity(&db, IntegrityCheck::Full).unwrap_err();
    assert!(
        matches!(
            err,
            Error::IntegrityCheck {
                mode: "integrity_check",
                ..
            }
        ),
        "{err}"
    );
    assert!(!db.exists(), "a database that fails the check is removed");

    // An intact one passes both checks and stays.
    fs::write(&db, states.last().unwrap()).unwrap();
    check_integrity(&db, IntegrityCheck::Quick).unwrap();
    check_integrity(&db, IntegrityCheck::Full).unwrap();
    assert!(db.exists());
}

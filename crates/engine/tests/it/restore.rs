//! Planning and applying restores over a folder of LTX files made from real database
//! states: every TXID restores byte-identically, corrupt files produce no output, and
//! putting the result at its output never mixes old and new files (a stale WAL
//! beside the output, an integrity failure, a failure between the install steps).

use std::fs::{self, File};
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use rusqlite::Connection;
use tideline_engine::Error;
use tideline_engine::config::ReplicaConfig;
use tideline_engine::restore::{
    IntegrityCheck, Overwrite, RestoreOptions, Target, apply, check_integrity, plan, restore_to,
    stage, stage_file,
};
use tideline_engine::storage::FileInfo;
use tideline_engine::storage::open_client;
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
fn integrity_check_reports_a_damaged_database_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let states = states(dir.path());
    let db = dir.path().join("damaged.db");
    let mut img = states.last().unwrap().clone();
    // Scribble over the middle of a b-tree page past the header.
    let at = 3 * PS + 200;
    img[at..at + 600].fill(0xA5);
    fs::write(&db, &img).unwrap();
    // A stale WAL beside it is not read: the check judges the file's own bytes.
    fs::write(dir.path().join("damaged.db-wal"), b"not a wal").unwrap();
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
    // The check only reports; deleting is the restore's business (its temporary file).
    assert_eq!(fs::read(&db).unwrap(), img);
    assert!(!dir.path().join("damaged.db-shm").exists());
    fs::remove_file(dir.path().join("damaged.db-wal")).unwrap();

    // An intact one passes both checks and stays.
    fs::write(&db, states.last().unwrap()).unwrap();
    check_integrity(&db, IntegrityCheck::Quick).unwrap();
    check_integrity(&db, IntegrityCheck::Full).unwrap();
    assert!(db.exists());
}

/// An existing database at `out` in WAL mode with a `-wal` full of committed,
/// uncheckpointed frames (the connection stays open while the files are copied, so
/// closing it cannot checkpoint them away). Returns (db bytes, wal bytes, rows the
/// old database shows through its WAL).
fn old_db_with_wal(dir: &Path, out: &Path) -> (Vec<u8>, Vec<u8>, i64) {
    let src = dir.join("old-src.db");
    let c = Connection::open(&src).unwrap();
    c.execute_batch(
        "PRAGMA journal_mode=WAL; PRAGMA wal_autocheckpoint=0;
         CREATE TABLE t(id INTEGER PRIMARY KEY, v TEXT); CREATE INDEX tv ON t(v);",
    )
    .unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    for i in 0..3000 {
        c.execute(
            "INSERT INTO t(v) VALUES (?1)",
            [format!("old {i} ").repeat(5)],
        )
        .unwrap();
    }
    let wal = fs::read(dir.join("old-src.db-wal")).unwrap();
    assert!(wal.len() > 100 * PS, "the old WAL holds many frames");
    let db = fs::read(&src).unwrap();
    drop(c);
    fs::write(out, &db).unwrap();
    fs::write(wal_of(out), &wal).unwrap();
    (db, wal, 3000)
}

fn wal_of(db: &Path) -> PathBuf {
    PathBuf::from(format!("{}-wal", db.display()))
}

fn rows(db: &Path) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get(0))
        .unwrap()
}

fn file_client(replica: &Path) -> std::sync::Arc<dyn tideline_engine::storage::ReplicaClient> {
    open_client(&ReplicaConfig::from_url(replica.to_str().unwrap()).unwrap()).unwrap()
}

/// The files beside `out` other than the old database's own: a leftover of the
/// restore would show here.
fn leftovers(out: &Path) -> Vec<PathBuf> {
    let name = out.file_name().unwrap().to_str().unwrap().to_owned();
    let mut found: Vec<PathBuf> = fs::read_dir(out.parent().unwrap())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            let n = p.file_name().unwrap().to_str().unwrap();
            n.starts_with(&name) && n != name
        })
        .collect();
    found.sort();
    found
}

#[tokio::test]
async fn replacing_a_database_with_a_stale_wal_gives_exactly_the_replica_state() {
    let dir = tempfile::tempdir().unwrap();
    let states = states(dir.path());
    let replica = dir.path().join("replica");
    build_replica(&replica, &states);
    let want = states.last().unwrap();
    let out = dir.path().join("out.db");
    let (_, old_wal, old_rows) = old_db_with_wal(dir.path(), &out);
    assert_eq!(rows_with_copy(&out, dir.path()), old_rows);

    // The hazard is real: the replica's state beside the old WAL is not the replica's
    // state (SQLite replays the old frames over it).
    let mixed = dir.path().join("mixed.db");
    fs::write(&mixed, want).unwrap();
    fs::write(wal_of(&mixed), &old_wal).unwrap();
    let mixed_rows = Connection::open(&mixed)
        .unwrap()
        .query_row("SELECT count(*) FROM t", [], |r| r.get::<_, i64>(0))
        .ok();
    let reference = dir.path().join("reference.db");
    fs::write(&reference, want).unwrap();
    let want_rows = rows(&reference);
    assert_ne!(
        mixed_rows,
        Some(want_rows),
        "old frames replay over new pages"
    );

    // Refused without the policy that allows it, and nothing changes.
    let err = restore_to(
        file_client(&replica),
        Target::Latest,
        &out,
        RestoreOptions::new(Overwrite::Refuse, IntegrityCheck::Full),
    )
    .await
    .unwrap_err();
    assert!(matches!(err, Error::OutputExists(_)), "{err}");
    let empty = dir.path().join("empty.db");
    fs::write(&empty, b"").unwrap();
    fs::write(wal_of(&empty), &old_wal).unwrap();
    let err = restore_to(
        file_client(&replica),
        Target::Latest,
        &empty,
        RestoreOptions::default(),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, Error::StaleSidecar(p) if *p == wal_of(&empty)),
        "{err}"
    );
    assert!(err.to_string().contains("empty.db-wal exists"), "{err}");

    let r = restore_to(
        file_client(&replica),
        Target::Latest,
        &out,
        RestoreOptions::new(Overwrite::Replace, IntegrityCheck::Full),
    )
    .await
    .unwrap();
    assert_eq!(r.txid, Txid(states.len() as u64));
    assert!(
        fs::read(&out).unwrap() == *want,
        "byte for byte the replica's state"
    );
    assert_eq!(
        leftovers(&out),
        Vec::<PathBuf>::new(),
        "no -wal, -shm or temp"
    );
    assert_eq!(rows(&out), want_rows, "no old frame replayed");
    check_integrity(&out, IntegrityCheck::Full).unwrap();
}

/// Rows of a database with its WAL, read from a copy so the original stays as it is.
fn rows_with_copy(db: &Path, dir: &Path) -> i64 {
    let copy = dir.join("rows-copy.db");
    fs::copy(db, &copy).unwrap();
    fs::copy(wal_of(db), wal_of(&copy)).unwrap();
    let n = rows(&copy);
    let _ = fs::remove_file(&copy);
    let _ = fs::remove_file(wal_of(&copy));
    n
}

#[tokio::test]
async fn an_integrity_failure_keeps_the_old_database_and_its_wal() {
    let dir = tempfile::tempdir().unwrap();
    let states = states(dir.path());
    // A replica whose checksums are all valid but whose pages are a damaged database.
    let mut img = states.last().unwrap().clone();
    let at = 3 * PS + 200;
    img[at..at + 600].fill(0xA5);
    let bad = dir.path().join("bad-replica");
    let h = header(1, 1, img.len() / PS);
    let mut enc = Encoder::new(Vec::new(), h).unwrap();
    for p in 1..=img.len() / PS {
        enc.write_page(p as u32, page(&img, p)).unwrap();
    }
    put(&bad, 9, h, &enc.finish().unwrap().0);

    let out = dir.path().join("out.db");
    let (old_db, old_wal, old_rows) = old_db_with_wal(dir.path(), &out);
    for check in [IntegrityCheck::Full, IntegrityCheck::Quick] {
        let err = restore_to(
            file_client(&bad),
            Target::Latest,
            &out,
            RestoreOptions::new(Overwrite::Replace, check),
        )
        .await
        .unwrap_err();
        assert!(
            matches!(&err, Error::IntegrityCheck { path, .. } if *path == out),
            "{err}"
        );
        assert!(err.to_string().contains("left untouched"), "{err}");
        assert_eq!(fs::read(&out).unwrap(), old_db, "the old database is kept");
        assert_eq!(fs::read(wal_of(&out)).unwrap(), old_wal, "with its WAL");
        assert_eq!(leftovers(&out), vec![wal_of(&out)], "no temp file left");
    }
    assert_eq!(rows_with_copy(&out, dir.path()), old_rows);
}

#[test]
fn a_failure_between_install_steps_never_puts_the_new_database_beside_the_old_wal() {
    let dir = tempfile::tempdir().unwrap();
    let states = states(dir.path());
    let replica = dir.path().join("replica");
    build_replica(&replica, &states);
    let levels = list(&replica);
    let files = plan(&levels, Target::Latest).unwrap();
    let inputs = || {
        files
            .iter()
            .map(|f| {
                let p = replica
                    .join("ltx")
                    .join(f.level.to_string())
                    .join(f.filename());
                (
                    p.display().to_string(),
                    BufReader::new(File::open(&p).unwrap()),
                )
            })
            .collect::<Vec<_>>()
    };
    let out = dir.path().join("out.db");
    let (old_db, old_wal, old_rows) = old_db_with_wal(dir.path(), &out);
    let opts = RestoreOptions::new(Overwrite::Replace, IntegrityCheck::Full);

    // Killed after staging: the new database exists only as the temporary file.
    let staged = stage(inputs(), &out, opts).unwrap();
    assert!(fs::read(staged.temp_path()).unwrap() == *states.last().unwrap());
    assert_eq!(fs::read(&out).unwrap(), old_db);
    assert_eq!(fs::read(wal_of(&out)).unwrap(), old_wal);
    let tmp = staged.temp_path().to_owned();
    drop(staged);
    assert!(!tmp.exists(), "an abandoned restore leaves no temp file");

    // A sidecar that cannot be removed (here a directory in its place) stops the
    // install before the rename: the old database and its WAL stay together.
    let journal = PathBuf::from(format!("{}-journal", out.display()));
    fs::create_dir(&journal).unwrap();
    let err = stage(inputs(), &out, opts).unwrap().install().unwrap_err();
    assert!(
        err.to_string().contains("old database was left in place"),
        "{err}"
    );
    assert_eq!(
        fs::read(&out).unwrap(),
        old_db,
        "the new database is not in"
    );
    assert_eq!(fs::read(wal_of(&out)).unwrap(), old_wal);
    assert!(!tmp.exists());
    assert_eq!(rows_with_copy(&out, dir.path()), old_rows);
    fs::remove_dir(&journal).unwrap();

    // The rename itself failing (the temp file vanished): the sidecars are already
    // gone, so what is left is the old database alone, never the new one beside the
    // old WAL; it opens as the old database's last checkpoint.
    let staged = stage(inputs(), &out, opts).unwrap();
    fs::remove_file(staged.temp_path()).unwrap();
    let err = staged.install().unwrap_err();
    assert!(err.to_string().contains("rename"), "{err}");
    assert_eq!(fs::read(&out).unwrap(), old_db);
    assert_eq!(leftovers(&out), Vec::<PathBuf>::new());
    check_integrity(&out, IntegrityCheck::Full).unwrap();

    // And when nothing fails, the new database alone.
    fs::write(wal_of(&out), &old_wal).unwrap();
    stage(inputs(), &out, opts).unwrap().install().unwrap();
    assert!(fs::read(&out).unwrap() == *states.last().unwrap());
    assert_eq!(leftovers(&out), Vec::<PathBuf>::new());
}

#[test]
fn a_database_file_is_put_back_the_same_way_unless_its_wal_holds_changes() {
    let dir = tempfile::tempdir().unwrap();
    let states = states(dir.path());
    let copy = dir.path().join("safety.db");
    fs::write(&copy, &states[2]).unwrap();
    let out = dir.path().join("out.db");
    let (old_db, old_wal, _) = old_db_with_wal(dir.path(), &out);
    let opts = RestoreOptions::new(Overwrite::Replace, IntegrityCheck::Full);

    // The copy's own -wal would be lost by copying the file alone: refused.
    fs::write(wal_of(&copy), &old_wal).unwrap();
    let err = stage_file(&copy, &out, opts).unwrap_err();
    assert!(
        matches!(&err, Error::SourceHasWal(p) if *p == wal_of(&copy)),
        "{err}"
    );
    assert_eq!(fs::read(&out).unwrap(), old_db);
    fs::remove_file(wal_of(&copy)).unwrap();

    let r = stage_file(&copy, &out, opts).unwrap().install().unwrap();
    assert_eq!(r.bytes, states[2].len() as u64);
    assert_eq!(fs::read(&out).unwrap(), states[2]);
    assert_eq!(
        leftovers(&out),
        Vec::<PathBuf>::new(),
        "the old WAL went first"
    );
    assert!(copy.exists(), "the copy is kept");
}

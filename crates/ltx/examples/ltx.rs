//! `ltx`: a small tool over the format crate, showing the codec on real files.
//!
//! ```text
//! cargo run --release -p tideline-ltx --example ltx -- demo [DIR]
//! cargo run --release -p tideline-ltx --example ltx -- encode-db DB OUT.ltx
//! cargo run --release -p tideline-ltx --example ltx -- dump FILE.ltx
//! cargo run --release -p tideline-ltx --example ltx -- apply OUT.db FILE.ltx...
//! ```
//!
//! `demo` builds a real SQLite database, writes a Litestream-layout file replica of it
//! (a level-9 snapshot and a level-0 increment), compacts them, restores the database
//! from the replica and proves the result byte-identical and intact. The replica it
//! leaves behind restores with `litestream restore` too.

use std::fs::{self, File};
use std::io::{BufReader, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use tideline_ltx::{
    CompactOptions, Decoder, Encoder, FLAG_NO_CHECKSUM, Header, IndexedReader, Merger, Txid,
    compact, format_filename,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["demo"] => demo(None),
        ["demo", dir] => demo(Some(PathBuf::from(dir))),
        ["encode-db", db, out] => encode_db(Path::new(db), Path::new(out), 1).map(|_| ()),
        ["encode-db", db, out, txid] => match txid.parse() {
            Ok(t) => encode_db(Path::new(db), Path::new(out), t).map(|_| ()),
            Err(_) => Err(format!("TXID {txid:?} is not a number").into()),
        },
        ["compact", out, files @ ..] if files.len() >= 2 => {
            let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
            compact_files(&files, Path::new(out))
        }
        ["dump", file] => dump(Path::new(file)),
        ["apply", out, files @ ..] if !files.is_empty() => {
            let files: Vec<PathBuf> = files.iter().map(PathBuf::from).collect();
            apply(&files, Path::new(out)).map(|_| ())
        }
        _ => {
            eprintln!(
                "usage: ltx demo [DIR] | encode-db DB OUT.ltx [MAX_TXID] | dump FILE.ltx | apply OUT.db FILE.ltx... | compact OUT.ltx FILE.ltx..."
            );
            return ExitCode::from(2);
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// Page size from a SQLite file header (bytes 16–17; 1 means 65536).
fn sqlite_page_size(db: &[u8]) -> Res<u32> {
    if db.len() < 100 || &db[..16] != b"SQLite format 3\0" {
        return Err("not a SQLite database (missing the \"SQLite format 3\" header)".into());
    }
    Ok(match u16::from_be_bytes([db[16], db[17]]) {
        1 => 65536,
        n => u32::from(n),
    })
}

/// Writes `pages` of a database image as one LTX file at `path` (tmp + rename), with
/// its mtime set to the header timestamp as Litestream's file replica expects.
fn write_ltx(
    path: &Path,
    header: Header,
    image: &[u8],
    pgnos: impl Iterator<Item = u32>,
) -> Res<u64> {
    fs::create_dir_all(path.parent().expect("a file in a directory"))?;
    let tmp = path.with_extension("ltx.tmp");
    let mut enc = Encoder::new(BufWriter::new(File::create(&tmp)?), header)?;
    let ps = header.page_size as usize;
    for pgno in pgnos {
        let at = (pgno as usize - 1) * ps;
        enc.write_page(pgno, &image[at..at + ps])?;
    }
    let (w, _) = enc.finish()?;
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    file.set_modified(UNIX_EPOCH + std::time::Duration::from_millis(header.timestamp as u64))?;
    drop(file);
    fs::rename(&tmp, path)?;
    Ok(fs::metadata(path)?.len())
}

fn snapshot_header(image: &[u8], txid: u64) -> Res<Header> {
    let page_size = sqlite_page_size(image)?;
    Ok(Header {
        flags: FLAG_NO_CHECKSUM,
        page_size,
        commit: (image.len() / page_size as usize) as u32,
        min_txid: Txid(1),
        max_txid: Txid(txid),
        timestamp: now_ms(),
        ..Header::default()
    })
}

/// Encodes a whole (checkpointed) database as one snapshot covering TXIDs 1..=`txid`.
/// (The example reads the file into memory; the engine streams it.)
fn encode_db(db: &Path, out: &Path, txid: u64) -> Res<u64> {
    let image = fs::read(db)?;
    let h = snapshot_header(&image, txid)?;
    let lock = h.lock_pgno();
    let n = write_ltx(out, h, &image, (1..=h.commit).filter(|&p| p != lock))?;
    println!(
        "{}: {} pages of {} bytes -> {} ({} bytes, {:.2}x smaller)",
        db.display(),
        h.commit,
        h.page_size,
        out.display(),
        n,
        image.len() as f64 / n as f64
    );
    Ok(n)
}

/// Compacts LTX files (oldest first) into one, streaming.
fn compact_files(files: &[PathBuf], out: &Path) -> Res<()> {
    let inputs = files
        .iter()
        .map(|f| Ok(Decoder::new(BufReader::new(File::open(f)?))?))
        .collect::<Res<Vec<_>>>()?;
    let t = Instant::now();
    let (w, stats) = compact(
        inputs,
        BufWriter::new(File::create(out)?),
        CompactOptions::default(),
    )?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    println!(
        "{}: TXIDs {}-{}, {} pages, in {:.0} ms",
        out.display(),
        stats.header.min_txid,
        stats.header.max_txid,
        stats.pages,
        t.elapsed().as_secs_f64() * 1e3
    );
    Ok(())
}

fn dump(path: &Path) -> Res<()> {
    let mut r = IndexedReader::open(BufReader::new(File::open(path)?))?;
    let h = *r.header();
    println!("{}", path.display());
    println!("  txids      {}-{}", h.min_txid, h.max_txid);
    println!(
        "  page size  {}   commit {} pages   snapshot {}",
        h.page_size,
        h.commit,
        h.is_snapshot()
    );
    println!("  timestamp  {} ms   flags 0x{:08x}", h.timestamp, h.flags);
    println!(
        "  wal        offset {} size {} salts {:08x}/{:08x}",
        h.wal_offset, h.wal_size, h.wal_salt1, h.wal_salt2
    );
    let entries = r.index().entries().to_vec();
    println!(
        "  pages      {} (first {:?}, last {:?})",
        entries.len(),
        entries.first().map(|e| e.pgno),
        entries.last().map(|e| e.pgno)
    );
    let mut buf = vec![0u8; h.page_size as usize];
    if let Some(e) = entries.first() {
        r.read_page(e.pgno, &mut buf)?;
    }
    let trailer = Decoder::new(BufReader::new(File::open(path)?))?.finish()?;
    println!("  checksum   {:016x} verified", trailer.file_checksum);
    Ok(())
}

/// Restores a database from LTX files (oldest first) by a streaming merge.
fn apply(files: &[PathBuf], out: &Path) -> Res<u64> {
    let inputs = files
        .iter()
        .map(|f| Ok(Decoder::new(BufReader::new(File::open(f)?))?))
        .collect::<Res<Vec<_>>>()?;
    let mut merger = Merger::new(inputs)?;
    let h = *merger.header();
    if !h.is_snapshot() {
        return Err(
            "the first file must start at TXID 1 (a snapshot) to rebuild a database".into(),
        );
    }
    let tmp = out.with_extension("tmp");
    let mut w = BufWriter::new(File::create(&tmp)?);
    let ps = h.page_size as usize;
    let mut next = 1u32;
    while let Some((pgno, data)) = merger.next_page()? {
        // The lock page is never stored; a restored file holds zeros there.
        for _ in next..pgno {
            w.write_all(&vec![0u8; ps])?;
        }
        w.write_all(data)?;
        next = pgno + 1;
    }
    let file = w.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    fs::rename(&tmp, out)?;
    Ok(u64::from(h.commit) * ps as u64)
}

fn demo(dir: Option<PathBuf>) -> Res<()> {
    let tmp;
    let dir = match dir {
        Some(d) => {
            fs::create_dir_all(&d)?;
            d
        }
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let db_path = dir.join("demo.db");
    let replica = dir.join("replica");
    let _ = fs::remove_dir_all(&replica);
    for suffix in ["", "-wal", "-shm"] {
        let _ = fs::remove_file(format!("{}{suffix}", db_path.display()));
    }

    // A real database, written by SQLite in WAL mode.
    let conn = rusqlite::Connection::open(&db_path)?;
    conn.pragma_update(None, "journal_mode", "wal")?;
    conn.execute_batch(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, title TEXT, body TEXT, at INTEGER);
         CREATE INDEX notes_at ON notes(at);",
    )?;
    let insert = |from: i64, to: i64| -> rusqlite::Result<()> {
        let tx = conn.unchecked_transaction()?;
        for i in from..to {
            tx.execute(
                "INSERT INTO notes(title, body, at) VALUES (?1, ?2, ?3)",
                (
                    format!("note {i}"),
                    format!(
                        "tide table entry {i}: high water at {}:{:02}",
                        i % 24,
                        i % 60
                    )
                    .repeat(1 + (i % 5) as usize),
                    i * 37 % 1000,
                ),
            )?;
        }
        tx.commit()
    };
    insert(0, 20_000)?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let v1 = fs::read(&db_path)?;

    let t = Instant::now();
    let h1 = snapshot_header(&v1, 1)?;
    let lock = h1.lock_pgno();
    let snap = replica
        .join("ltx/9")
        .join(format_filename(Txid(1), Txid(1)));
    let snap_len = write_ltx(&snap, h1, &v1, (1..=h1.commit).filter(|&p| p != lock))?;
    let enc_secs = t.elapsed().as_secs_f64();

    // Change it: updates, deletes and growth, then capture only the changed pages.
    insert(20_000, 24_000)?;
    conn.execute("UPDATE notes SET body = upper(body) WHERE id % 997 = 0", [])?;
    conn.execute("DELETE FROM notes WHERE id BETWEEN 5000 AND 5400", [])?;
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let v2 = fs::read(&db_path)?;
    let ps = h1.page_size as usize;
    let commit2 = (v2.len() / ps) as u32;
    let changed: Vec<u32> = (1..=commit2)
        .filter(|&p| p != lock)
        .filter(|&p| {
            let at = (p as usize - 1) * ps;
            v1.get(at..at + ps) != Some(&v2[at..at + ps])
        })
        .collect();
    // WAL fields 32/0/0 keep the replica safe for Litestream to take over.
    let h2 = Header {
        min_txid: Txid(2),
        max_txid: Txid(2),
        commit: commit2,
        timestamp: now_ms(),
        wal_offset: 32,
        ..h1
    };
    let l0 = replica
        .join("ltx/0")
        .join(format_filename(Txid(2), Txid(2)));
    let l0_len = write_ltx(&l0, h2, &v2, changed.iter().copied())?;

    // Compact snapshot + increment into level 1, as the level scheduler will.
    let t = Instant::now();
    let inputs = [&snap, &l0]
        .iter()
        .map(|p| Ok(Decoder::new(BufReader::new(File::open(p)?))?))
        .collect::<Res<Vec<_>>>()?;
    let l1 = replica
        .join("ltx/1")
        .join(format_filename(Txid(1), Txid(2)));
    fs::create_dir_all(l1.parent().expect("in a dir"))?;
    let (w, stats) = compact(
        inputs,
        BufWriter::new(File::create(&l1)?),
        CompactOptions::default(),
    )?;
    w.into_inner().map_err(|e| e.into_error())?.sync_all()?;
    let compact_secs = t.elapsed().as_secs_f64();

    // Restore from the snapshot + increment, and from the compaction alone.
    let t = Instant::now();
    let restored = dir.join("restored.db");
    apply(&[snap.clone(), l0.clone()], &restored)?;
    let restore_secs = t.elapsed().as_secs_f64();
    let restored_l1 = dir.join("restored-l1.db");
    apply(std::slice::from_ref(&l1), &restored_l1)?;
    let ok = fs::read(&restored)? == v2 && fs::read(&restored_l1)? == v2;
    let check: String =
        rusqlite::Connection::open(&restored)?
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
    let rows: i64 = rusqlite::Connection::open(&restored)?.query_row(
        "SELECT count(*) FROM notes",
        [],
        |r| r.get(0),
    )?;

    let mb = |n: usize| n as f64 / 1e6;
    println!(
        "database      {} ({:.1} MB, {} pages of {} bytes)",
        db_path.display(),
        mb(v2.len()),
        commit2,
        ps
    );
    println!(
        "snapshot L9   {} pages -> {:.2} MB ({:.1}x smaller), encoded at {:.0} MB/s",
        h1.commit,
        mb(snap_len as usize),
        v1.len() as f64 / snap_len as f64,
        mb(v1.len()) / enc_secs
    );
    println!(
        "increment L0  {} changed pages -> {:.2} MB",
        changed.len(),
        mb(l0_len as usize)
    );
    println!(
        "compaction L1 {} pages, TXIDs {}-{}, in {:.1} ms",
        stats.pages,
        stats.header.min_txid,
        stats.header.max_txid,
        compact_secs * 1e3
    );
    println!(
        "restore       {:.1} MB in {:.1} ms; byte-identical: {ok}; integrity_check: {check}; rows: {rows}",
        mb(v2.len()),
        restore_secs * 1e3
    );
    println!(
        "replica       {}  (try: litestream restore -o /tmp/out.db file://{})",
        replica.display(),
        replica.display()
    );
    if !ok || check != "ok" {
        return Err("restored database differs from the source".into());
    }
    Ok(())
}

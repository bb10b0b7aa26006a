//! A watched database: the read lock, the capture of committed WAL frames into L0 LTX
//! files in the meta directory, the position, and checkpoints.
//!
//! ## Position
//!
//! The position is the newest L0 file in `.<db>-litestream/ltx/0/` (Litestream's meta
//! directory, so either tool can take over): its MaxTXID is the TXID, and its WAL
//! offset + size and salts say where in which WAL generation capture resumes. On a
//! fresh machine the meta directory is empty and the first sync writes a full-database
//! L0 at TXID 1 (the replicator continues the TXIDs from the replica instead, by placing
//! the replica's newest L0 here before opening).
//!
//! ## Continuity
//!
//! Capture continues incrementally only when it can prove nothing was missed: the WAL
//! has the same salts and the frame before the resume offset carries the cumulative
//! checksum recorded at the position, or the WAL was restarted by *our* checkpoint
//! after everything in it was captured. Anything else (a WAL truncated, restarted or
//! overwritten by another process while we were not holding it) produces a
//! full-database L0 at the next TXID: always correct, merely larger.
//!
//! ## Read lock and checkpoints
//!
//! A read transaction is held on a dedicated connection at all times, so no other
//! process can restart or truncate the WAL past what has been captured (Litestream's
//! scheme, with its `_litestream_seq` and `_litestream_lock` tables). Checkpoints run in
//! two phases so the application's writers are blocked only briefly: a PASSIVE
//! checkpoint first, without any lock, copies most frames; then, holding the write lock,
//! the few frames written meanwhile are captured and checkpointed, the read mark is
//! released and retaken, and a write to `_litestream_seq` restarts the WAL while nothing
//! uncaptured is in it.

use std::fs::{self, File};
use std::io::{self, BufWriter, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use tideline_ltx::{
    Encoder, FLAG_NO_CHECKSUM, Header, IndexedReader, Txid, format_filename, parse_filename,
};

use crate::capture::wal::{
    Checksum, FRAME_HEADER_SIZE, FrameChain, FrameHeader, Segment, WAL_HEADER_SIZE, WalHeader,
    scan_committed,
};
use crate::error::{Error, Result};
use crate::storage::FileInfo;

/// Settings of a watched database, with Litestream's defaults.
#[derive(Debug, Clone)]
pub struct DbOptions {
    /// How long SQLite waits for locks on our connections.
    pub busy_timeout: Duration,
    /// Most WAL bytes one sync reads (cut at a commit); later syncs continue.
    pub max_sync_wal_bytes: u64,
    /// PASSIVE checkpoint once the WAL holds this many pages.
    pub min_checkpoint_page_count: u64,
    /// TRUNCATE checkpoint once the WAL holds this many pages.
    pub truncate_page_n: u64,
    /// PASSIVE checkpoint this often while changes arrive (`None`: never by time).
    pub checkpoint_interval: Option<Duration>,
    /// Meta directory; default `<dir>/.<file>-litestream`.
    pub meta_dir: Option<PathBuf>,
}

impl Default for DbOptions {
    fn default() -> Self {
        DbOptions {
            busy_timeout: Duration::from_secs(1),
            max_sync_wal_bytes: 64 << 20,
            min_checkpoint_page_count: 1000,
            truncate_page_n: 121_359,
            checkpoint_interval: Some(Duration::from_secs(60)),
            meta_dir: None,
        }
    }
}

/// Where capture stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Position {
    /// TXID of the newest L0 file.
    pub txid: Txid,
    /// Database size in pages at that TXID.
    pub commit: u32,
    /// WAL offset just past the last captured frame.
    pub wal_end: u64,
    /// Salts of the WAL generation captured.
    pub salts: (u32, u32),
    /// Cumulative WAL checksum at `wal_end`, once known.
    pub checksum: Option<Checksum>,
}

/// Why a full-database L0 was written instead of an incremental one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnapshotReason {
    /// The first capture of this database (no position).
    FirstSync,
    /// The WAL was restarted by another process.
    WalRestarted,
    /// The WAL is shorter than the position: truncated by another process.
    WalTruncated,
    /// The frame before the position no longer matches: overwritten.
    WalOverwritten,
    /// After a TRUNCATE checkpoint, which may have copied frames written after the
    /// last capture straight into the database.
    TruncateCheckpoint,
    /// The position came from the replica (a new machine, a restore, a reset replica):
    /// the database is copied whole once to continue the replica's TXIDs.
    ReplicaPosition,
}

impl std::fmt::Display for SnapshotReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SnapshotReason::FirstSync => "first sync",
            SnapshotReason::WalRestarted => "WAL restarted by another process",
            SnapshotReason::WalTruncated => "WAL truncated by another process",
            SnapshotReason::WalOverwritten => "WAL overwritten by another process",
            SnapshotReason::TruncateCheckpoint => "TRUNCATE checkpoint",
            SnapshotReason::ReplicaPosition => "continuing the replica's TXIDs",
        })
    }
}

/// An L0 file written by a sync.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Captured {
    /// The file, as a replica listing would describe it.
    pub info: FileInfo,
    /// Where it is in the meta directory.
    pub path: PathBuf,
    /// Pages in it.
    pub pages: u32,
    /// WAL bytes (frames) it was captured from; 0 for a snapshot.
    pub wal_bytes: u64,
    /// `Some` when it holds the whole database.
    pub snapshot: Option<SnapshotReason>,
    /// True if the WAL holds more committed frames than this sync read
    /// (`max_sync_wal_bytes`); sync again.
    pub more: bool,
}

/// What a checkpoint did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpointed {
    /// "PASSIVE" or "TRUNCATE".
    pub mode: &'static str,
    /// WAL frames at the time, and frames copied into the database.
    pub frames: (i64, i64),
    /// Whether the WAL was then restarted from the beginning.
    pub restarted: bool,
    /// True if the write lock was not granted quickly (a busy writer): only the
    /// lock-free first phase ran, and the checkpoint is retried after a later sync.
    pub deferred: bool,
    /// L0 files captured under the write lock (frames written during the first phase).
    pub captured: Vec<Captured>,
    /// How long the application's writers were held off.
    pub writers_blocked: Duration,
}

/// A database being replicated.
#[derive(Debug)]
pub struct Database {
    path: PathBuf,
    wal_path: PathBuf,
    l0_dir: PathBuf,
    opts: DbOptions,
    /// Two connections that take turns holding our read transaction: the next one
    /// begins before the current one ends, so there is never an instant without our
    /// read mark (see [`Database::advance_read_mark`]).
    readers: [Connection; 2],
    /// Which of `readers` holds the read transaction.
    active: usize,
    /// Writes (`_litestream_seq`), the write-lock barrier and checkpoints.
    writer: Connection,
    page_size: u32,
    pos: Option<Position>,
    /// Set by our own checkpoint when the WAL may restart with nothing uncaptured:
    /// the salts of the generation that may follow.
    restart_expected: Option<(u32, u32)>,
    /// A capture reached the end of the WAL since the read lock was last handed over.
    captured_since_handover: bool,
    /// The position was reloaded from another replicator's files (see
    /// [`Database::take_position_reloaded`]).
    position_reloaded: bool,
    /// The L0 file this replicator wrote last, as it left it: replaced by another
    /// program, it shows another replicator at work.
    written: std::cell::Cell<Option<(Txid, FileStamp)>>,
    /// The read transaction held now began after a capture that reached the WAL's end
    /// (and was handed over, never let go): a restart by the application, which it
    /// can then do only after copying the WAL into the database, discards only frames
    /// we captured (see [`Database::advance_read_mark`]), so it continues the chain.
    restart_safe: bool,
    /// The next sync must write the whole database, for this reason.
    force_snapshot: Option<SnapshotReason>,
    last_checkpoint: Option<Instant>,
    /// Consecutive checkpoints whose second phase could not get the write lock; each
    /// doubles the next wait.
    deferrals: u32,
    _locks: Vec<File>,
    /// The database file, opened once for reading pages. POSIX advisory locks belong
    /// to the process: closing *any* descriptor of the file would drop the locks our
    /// SQLite connections hold on it (then an application closing last could checkpoint
    /// and delete the WAL under us). So it is never reopened, and dropped last.
    db_file: File,
}

const SQLITE_MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn sqlite_err(path: &Path) -> impl Fn(rusqlite::Error) -> Error + use<> {
    let path = path.to_owned();
    move |source| Error::Sqlite {
        path: path.clone(),
        source,
    }
}

/// The default meta directory of `db`: `<dir>/.<file>-litestream`.
pub fn default_meta_dir(db: &Path) -> PathBuf {
    let name = db
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    db.with_file_name(format!(".{name}-litestream"))
}

/// The L0 files in a meta directory's `ltx/0` folder (`l0_dir`), oldest first, as
/// `(TXID, path)`; a missing folder holds none. Only single-TXID names count: local
/// L0 files always are.
pub fn list_l0(l0_dir: &Path) -> Result<Vec<(Txid, PathBuf)>> {
    let rd = match fs::read_dir(l0_dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(Error::io("list", l0_dir)(e)),
    };
    let mut out = Vec::new();
    for e in rd {
        let e = e.map_err(Error::io("list", l0_dir))?;
        if let Some((min, max)) = e.file_name().to_str().and_then(parse_filename)
            && min == max
        {
            out.push((max, e.path()));
        }
    }
    out.sort();
    Ok(out)
}

/// Path of the `-wal` file of `db`.
pub fn wal_path(db: &Path) -> PathBuf {
    let mut s = db.as_os_str().to_owned();
    s.push("-wal");
    PathBuf::from(s)
}

impl Database {
    /// Opens `path` for replication: checks it is SQLite, switches it to WAL mode if
    /// needed, takes the replicator lock in the meta directory, creates Litestream's
    /// bookkeeping tables, starts the read transaction and loads the position.
    pub fn open(path: &Path, opts: DbOptions) -> Result<Database> {
        let path = path.to_owned();
        check_sqlite_file(&path)?;
        let meta = opts
            .meta_dir
            .clone()
            .unwrap_or_else(|| default_meta_dir(&path));
        let l0_dir = meta.join("ltx").join("0");
        fs::create_dir_all(&l0_dir).map_err(Error::io("create meta directory", &l0_dir))?;
        let lock = take_lock(&meta, &path)?;
        // A crash leaves temporaries: of L0 files, and of compactions and snapshots
        // (written in `ltx/`) and state files (in the meta directory itself).
        for dir in [&l0_dir, &meta.join("ltx"), &meta] {
            remove_tmp_files(dir)?;
        }

        let sq = sqlite_err(&path);
        let open = || -> Result<Connection> {
            let c = Connection::open(&path).map_err(sqlite_err(&path))?;
            c.busy_timeout(opts.busy_timeout)
                .map_err(sqlite_err(&path))?;
            // Our own commits (bookkeeping writes) must never checkpoint on their own.
            c.pragma_update(None, "wal_autocheckpoint", 0)
                .map_err(sqlite_err(&path))?;
            Ok(c)
        };
        let writer = open()?;
        ensure_wal_mode(&writer, &path)?;
        persist_wal(&writer);
        writer
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS _litestream_seq (id INTEGER PRIMARY KEY, seq INTEGER);
                 CREATE TABLE IF NOT EXISTS _litestream_lock (id INTEGER);",
            )
            .map_err(&sq)?;
        let page_size: u32 = writer
            .query_row("PRAGMA page_size", [], |r| r.get(0))
            .map_err(&sq)?;
        let wal = wal_path(&path);
        if fs::metadata(&wal).map_or(0, |m| m.len()) < WAL_HEADER_SIZE as u64 {
            bump_seq(&writer).map_err(&sq)?;
        }
        let readers = [open()?, open()?];
        for r in &readers {
            persist_wal(r);
        }
        begin_read(&readers[0]).map_err(&sq)?;
        let db_file = File::open(&path).map_err(Error::io("open", &path))?;

        let mut db = Database {
            path,
            wal_path: wal,
            l0_dir,
            opts,
            readers,
            active: 0,
            writer,
            page_size,
            pos: None,
            restart_expected: None,
            captured_since_handover: false,
            position_reloaded: false,
            written: std::cell::Cell::new(None),
            restart_safe: false,
            force_snapshot: None,
            last_checkpoint: None,
            deferrals: 0,
            _locks: lock,
            db_file,
        };
        db.pos = db.load_position()?;
        Ok(db)
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The meta directory's L0 folder.
    pub fn l0_dir(&self) -> &Path {
        &self.l0_dir
    }

    /// Page size of the database.
    pub fn page_size(&self) -> u32 {
        self.page_size
    }

    /// Where capture stands (`None` before the first sync).
    pub fn position(&self) -> Option<Position> {
        self.pos
    }

    /// The local L0 files, oldest first.
    pub fn local_l0(&self) -> Result<Vec<(Txid, PathBuf)>> {
        list_l0(&self.l0_dir)
    }

    fn load_position(&self) -> Result<Option<Position>> {
        let Some((_, path)) = self.local_l0()?.pop() else {
            return Ok(None);
        };
        let f = File::open(&path).map_err(Error::io("open", &path))?;
        let r = IndexedReader::open(io::BufReader::new(f)).map_err(|source| Error::Ltx {
            name: path.display().to_string(),
            source,
        })?;
        let h = *r.header();
        Ok(Some(Position {
            txid: h.max_txid,
            commit: h.commit,
            wal_end: h.wal_offset + h.wal_size,
            salts: (h.wal_salt1, h.wal_salt2),
            checksum: None,
        }))
    }

    /// Replaces the position after reconciling with the replica: every local L0 file
    /// goes; with `newest` (the replica's newest file: its TXID and bytes) that file
    /// becomes the position and the next sync writes the whole database at the TXID
    /// after it (its WAL fields cannot be proven to match the live WAL), without it
    /// the next sync starts a new chain at TXID 1.
    pub fn reset_position(&mut self, newest: Option<(Txid, &[u8])>) -> Result<()> {
        for (_, p) in self.local_l0()? {
            fs::remove_file(&p).map_err(Error::io("remove", &p))?;
        }
        self.pos = None;
        self.force_snapshot = None;
        self.restart_safe = false;
        self.written.set(None);
        if let Some((txid, bytes)) = newest {
            // A compaction's header names a TXID range; the position file is named by
            // its max TXID, which is all the position reads besides the WAL fields.
            let dst = self.l0_dir.join(format_filename(txid, txid));
            crate::storage::durable::write_atomic(&dst, bytes).map_err(Error::io("write", &dst))?;
            self.pos = self.load_position()?;
            self.force_snapshot = Some(SnapshotReason::ReplicaPosition);
        }
        Ok(())
    }

    /// The next TXID is ours to write: a file already there was written by another
    /// program on this meta directory (Litestream on the same database), whose chain
    /// and ours would otherwise mix under the same TXIDs. Refused while that program
    /// goes on writing; once its newest file is [`FOREIGN_QUIET`] old it has stopped,
    /// and its files become the position, as at a takeover (the replicator then
    /// matches them with the replica before uploading: see
    /// [`Database::take_position_reloaded`]).
    fn refuse_foreign(&mut self) -> Result<()> {
        let next = self.pos.map_or(Txid::FIRST, |p| p.txid.next());
        let next_path = self.l0_dir.join(format_filename(next, next));
        // Or the file we wrote last was replaced (a replicator one step behind us
        // renames its own file over ours).
        let replaced = self.written.get().and_then(|(txid, stamp)| {
            let path = self.l0_dir.join(format_filename(txid, txid));
            let now = fs::metadata(&path).ok().map(|m| FileStamp::of(&m))?;
            (now != stamp).then_some(path)
        });
        let path = if next_path.exists() {
            next_path
        } else if let Some(p) = replaced {
            p
        } else {
            return Ok(());
        };
        let newest = self.local_l0()?.pop().map(|(_, p)| p);
        let quiet = newest
            .and_then(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
            .and_then(|t| t.elapsed().ok())
            .is_some_and(|age| age >= FOREIGN_QUIET);
        if quiet {
            self.written.set(None);
            self.pos = self.load_position()?;
            self.force_snapshot = None;
            self.restart_expected = None;
            self.restart_safe = false;
            self.position_reloaded = true;
            return Ok(());
        }
        Err(Error::AnotherReplicator {
            meta: self
                .l0_dir
                .parent()
                .and_then(Path::parent)
                .unwrap_or(&self.l0_dir)
                .to_owned(),
            file: path,
        })
    }

    /// How long to watch the meta directory at start before capturing, and what to
    /// compare after: `None` when its newest L0 file is older than [`FOREIGN_QUIET`]
    /// (nobody is writing there), else the wait and that file's stamp. A file that
    /// fresh may be our own last run's (a restart), or another program's at work
    /// (Litestream on the same database): if it changes during the wait, it is the
    /// latter ([`Database::check_meta_quiet`]).
    pub fn meta_watch(&self) -> Result<Option<(Duration, MetaStamp)>> {
        let Some((txid, path)) = self.local_l0()?.pop() else {
            return Ok(None);
        };
        let Ok(m) = fs::metadata(&path) else {
            return Ok(None);
        };
        let age = m
            .modified()
            .ok()
            .and_then(|t| t.elapsed().ok())
            .unwrap_or(FOREIGN_QUIET);
        Ok(
            (age < FOREIGN_QUIET)
                .then(|| (FOREIGN_QUIET - age, MetaStamp(txid, FileStamp::of(&m)))),
        )
    }

    /// After the wait [`Database::meta_watch`] gave: fails with
    /// [`Error::AnotherReplicator`] if the meta directory's newest L0 file changed.
    pub fn check_meta_quiet(&self, before: MetaStamp) -> Result<()> {
        let now = self.local_l0()?.pop();
        let changed = match &now {
            Some((txid, path)) => {
                *txid != before.0
                    || fs::metadata(path).map(|m| FileStamp::of(&m)).ok() != Some(before.1)
            }
            None => true,
        };
        if !changed {
            return Ok(());
        }
        Err(Error::AnotherReplicator {
            meta: self
                .l0_dir
                .parent()
                .and_then(Path::parent)
                .unwrap_or(&self.l0_dir)
                .to_owned(),
            file: now.map_or_else(|| self.l0_dir.clone(), |(_, p)| p),
        })
    }

    /// True (once) if the position was taken from another replicator's files since
    /// the last call.
    pub fn take_position_reloaded(&mut self) -> bool {
        std::mem::take(&mut self.position_reloaded)
    }

    /// Captures newly committed WAL frames into the next L0 file, if there are any.
    /// `now` is the file's timestamp.
    pub fn sync(&mut self, now: SystemTime) -> Result<Option<Captured>> {
        self.refuse_foreign()?;
        let r = self.sync_step(now);
        if matches!(&r, Ok(None)) || matches!(&r, Ok(Some(c)) if !c.more) {
            self.captured_since_handover = true;
        }
        r
    }

    fn sync_step(&mut self, now: SystemTime) -> Result<Option<Captured>> {
        let mut wal = match File::open(&self.wal_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return self.sync_without_wal(now),
            Err(e) => return Err(Error::io("open", &self.wal_path)(e)),
        };
        let wal_len = wal
            .metadata()
            .map_err(Error::io("stat", &self.wal_path))?
            .len();
        let mut hb = [0u8; WAL_HEADER_SIZE];
        if wal_len < WAL_HEADER_SIZE as u64 {
            return self.sync_without_wal(now);
        }
        wal.read_exact(&mut hb)
            .map_err(Error::io("read", &self.wal_path))?;
        let header = WalHeader::decode(&hb).map_err(|e| Error::Wal {
            path: self.wal_path.clone(),
            reason: e.to_string(),
        })?;
        if header.page_size != self.page_size {
            return Err(Error::Wal {
                path: self.wal_path.clone(),
                reason: format!(
                    "WAL page size {} differs from the database's {}",
                    header.page_size, self.page_size
                ),
            });
        }
        let salts = (header.salt1, header.salt2);

        let Some(pos) = self.pos else {
            return self
                .snapshot(&mut wal, header, now, SnapshotReason::FirstSync)
                .map(Some);
        };
        if let Some(reason) = self.force_snapshot {
            return self.snapshot(&mut wal, header, now, reason).map(Some);
        }
        if pos.wal_end == 0 {
            // A compaction or snapshot file taken from the replica: no WAL position.
            return self
                .snapshot(&mut wal, header, now, SnapshotReason::ReplicaPosition)
                .map(Some);
        }
        let frame_size = header.frame_size();
        let start = if salts == pos.salts {
            if pos.wal_end > wal_len {
                return self
                    .snapshot(&mut wal, header, now, SnapshotReason::WalTruncated)
                    .map(Some);
            }
            if pos.wal_end <= WAL_HEADER_SIZE as u64 {
                (WAL_HEADER_SIZE as u64, FrameChain::new(header))
            } else {
                // The frame before the position must still be the one we captured.
                let mut fh = [0u8; FRAME_HEADER_SIZE];
                wal.seek(SeekFrom::Start(pos.wal_end - frame_size))
                    .and_then(|_| wal.read_exact(&mut fh))
                    .map_err(Error::io("read", &self.wal_path))?;
                let fh = FrameHeader::decode(&fh);
                let same =
                    (fh.salt1, fh.salt2) == salts && pos.checksum.is_none_or(|c| c == fh.checksum);
                if !same {
                    return self
                        .snapshot(&mut wal, header, now, SnapshotReason::WalOverwritten)
                        .map(Some);
                }
                (pos.wal_end, FrameChain::resume(header, fh.checksum))
            }
        } else if self.restart_expected == Some(salts)
            || (self.restart_safe && salts.0 == pos.salts.0.wrapping_add(1))
        {
            (WAL_HEADER_SIZE as u64, FrameChain::new(header))
        } else {
            return self
                .snapshot(&mut wal, header, now, SnapshotReason::WalRestarted)
                .map(Some);
        };

        let Some(seg) = scan_committed(
            &mut wal,
            start.0,
            start.1,
            Some(self.opts.max_sync_wal_bytes),
        )
        .map_err(Error::io("read", &self.wal_path))?
        else {
            return Ok(None);
        };
        let more = seg.end < wal_len && seg.end - start.0 >= self.opts.max_sync_wal_bytes;
        // Pages the database grew by that the WAL segment does not carry come from the
        // database file (SQLite writes new pages to the WAL, so this is a safeguard).
        let grown: Vec<u32> = (pos.commit + 1..=seg.commit)
            .filter(|p| seg.pages.binary_search_by_key(p, |&(q, _)| q).is_err())
            .collect();
        let txid = pos.txid.next();
        let captured = self.write_l0(&mut wal, &seg, &grown, txid, start.0, now, None, more)?;
        self.advance(txid, &seg);
        Ok(Some(captured))
    }

    /// No WAL (or one without a header). While we hold the read lock that only
    /// happens after a TRUNCATE checkpoint; otherwise someone removed or truncated it,
    /// and what it held may now be in the database file: capture the whole database.
    fn sync_without_wal(&mut self, now: SystemTime) -> Result<Option<Captured>> {
        if self.pos.is_some() && self.force_snapshot.is_none() {
            self.force_snapshot = Some(SnapshotReason::WalTruncated);
        }
        // Make SQLite write a WAL header, then capture.
        bump_seq(&self.writer).map_err(sqlite_err(&self.path))?;
        if fs::metadata(&self.wal_path).map_or(0, |m| m.len()) < WAL_HEADER_SIZE as u64 {
            return Err(Error::Wal {
                path: self.wal_path.clone(),
                reason: "SQLite did not create the write-ahead log after a write; is the directory writable?".into(),
            });
        }
        self.sync(now)
    }

    fn advance(&mut self, txid: Txid, seg: &Segment) {
        self.pos = Some(Position {
            txid,
            commit: seg.commit,
            wal_end: seg.end,
            salts: (seg.header.salt1, seg.header.salt2),
            checksum: Some(seg.checksum),
        });
        self.restart_expected = None;
        self.force_snapshot = None;
    }

    /// Writes the whole database (file overlaid with the committed WAL) as the next L0.
    fn snapshot(
        &mut self,
        wal: &mut File,
        header: WalHeader,
        now: SystemTime,
        reason: SnapshotReason,
    ) -> Result<Captured> {
        let seg = scan_committed(wal, WAL_HEADER_SIZE as u64, FrameChain::new(header), None)
            .map_err(Error::io("read", &self.wal_path))?;
        let seg = match seg {
            Some(seg) => seg,
            None => {
                // Nothing committed in the WAL: the database file is the whole state.
                let len = fs::metadata(&self.path)
                    .map_err(Error::io("stat", &self.path))?
                    .len();
                Segment {
                    header,
                    start: WAL_HEADER_SIZE as u64,
                    end: WAL_HEADER_SIZE as u64,
                    checksum: header.checksum,
                    commit: (len / u64::from(self.page_size)) as u32,
                    pages: Vec::new(),
                    frames: 0,
                }
            }
        };
        let lock = tideline_ltx::lock_pgno(self.page_size);
        let rest: Vec<u32> = (1..=seg.commit)
            .filter(|&p| p != lock && seg.pages.binary_search_by_key(&p, |&(q, _)| q).is_err())
            .collect();
        let txid = self.pos.map_or(Txid::FIRST, |p| p.txid.next());
        let captured = self.write_l0(
            wal,
            &seg,
            &rest,
            txid,
            WAL_HEADER_SIZE as u64,
            now,
            Some(reason),
            false,
        )?;
        self.advance(txid, &seg);
        Ok(captured)
    }

    /// Writes L0 `txid`: the segment's pages from the WAL merged, in page order, with
    /// `from_db` pages read from the database file.
    #[allow(clippy::too_many_arguments)]
    fn write_l0(
        &self,
        wal: &mut File,
        seg: &Segment,
        from_db: &[u32],
        txid: Txid,
        wal_start: u64,
        now: SystemTime,
        snapshot: Option<SnapshotReason>,
        more: bool,
    ) -> Result<Captured> {
        let timestamp = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        // The creation time replicas keep is the header timestamp, in milliseconds.
        let created_at = SystemTime::UNIX_EPOCH + Duration::from_millis(timestamp.max(0) as u64);
        let header = Header {
            flags: FLAG_NO_CHECKSUM,
            page_size: self.page_size,
            commit: seg.commit,
            min_txid: txid,
            max_txid: txid,
            timestamp,
            // Always a real WAL position (offset ≥ 32) so Litestream can take over.
            wal_offset: wal_start,
            wal_size: seg.end - wal_start,
            wal_salt1: seg.header.salt1,
            wal_salt2: seg.header.salt2,
            ..Header::default()
        };
        let name = format_filename(txid, txid);
        let path = self.l0_dir.join(&name);
        let tmp = self.l0_dir.join(format!("{name}.tmp"));
        let (pages, size) = self.write_ltx(wal, &seg.pages, from_db, header, &tmp, created_at)?;
        crate::failpoint::hit("l0-written");
        fs::rename(&tmp, &path).map_err(Error::io("rename", &path))?;
        crate::restore::apply::sync_parent(&path)?;
        crate::failpoint::hit("l0-renamed");
        self.written
            .set(fs::metadata(&path).ok().map(|m| (txid, FileStamp::of(&m))));
        Ok(Captured {
            info: FileInfo {
                level: 0,
                min_txid: txid,
                max_txid: txid,
                size,
                created_at,
            },
            path,
            pages,
            wal_bytes: seg.end - wal_start,
            snapshot,
            more,
        })
    }

    /// Writes an LTX file with `header` to `tmp` (fsynced, mtime `created_at`): the
    /// segment's pages from the WAL merged, in page order, with `from_db` pages read
    /// from the database file. The file is removed on failure.
    fn write_ltx(
        &self,
        wal: &mut File,
        wal_pages: &[(u32, u64)],
        from_db: &[u32],
        header: Header,
        tmp: &Path,
        created_at: SystemTime,
    ) -> Result<(u32, u64)> {
        let name = tmp.display().to_string();
        let result = (|| -> Result<(u32, u64)> {
            let file = File::create(tmp).map_err(Error::io("create", tmp))?;
            let mut enc = Encoder::new(BufWriter::with_capacity(256 * 1024, file), header)
                .map_err(|source| Error::Ltx {
                    name: name.clone(),
                    source,
                })?;
            let mut db = &self.db_file;
            // Pages at or past the file's end were never written out (SQLite reads them
            // as zeros too); any other read failure fails the capture.
            let db_len = db.metadata().map_err(Error::io("stat", &self.path))?.len();
            let ps = self.page_size as usize;
            let mut buf = vec![0u8; ps];
            let lock = tideline_ltx::lock_pgno(self.page_size);
            let (mut i, mut j) = (0, 0);
            loop {
                let from_wal = wal_pages.get(i).copied();
                let from_file = from_db.get(j).copied();
                let (pgno, source) = match (from_wal, from_file) {
                    (None, None) => break,
                    (Some((p, off)), Some(q)) if p < q => {
                        i += 1;
                        (p, Some(off))
                    }
                    (Some((p, off)), None) => {
                        i += 1;
                        (p, Some(off))
                    }
                    (_, Some(q)) => {
                        j += 1;
                        (q, None)
                    }
                };
                if pgno == lock {
                    continue;
                }
                match source {
                    Some(off) => read_at(&mut *wal, &mut buf, Segment::page_offset(off))
                        .map_err(Error::io("read", &self.wal_path))?,
                    None => {
                        let at = u64::from(pgno - 1) * ps as u64;
                        if at >= db_len {
                            buf.fill(0);
                        } else {
                            read_at(&mut db, &mut buf, at)
                                .map_err(Error::io("read", &self.path))?;
                        }
                    }
                }
                enc.write_page(pgno, &buf).map_err(|source| Error::Ltx {
                    name: name.clone(),
                    source,
                })?;
            }
            let pages = enc.pages_written();
            let (w, _) = enc.finish().map_err(|source| Error::Ltx {
                name: name.clone(),
                source,
            })?;
            let file = w
                .into_inner()
                .map_err(|e| Error::io("write", tmp)(e.into_error()))?;
            file.sync_all().map_err(Error::io("fsync", tmp))?;
            let size = file.metadata().map_err(Error::io("stat", tmp))?.len();
            file.set_modified(created_at)
                .map_err(Error::io("set mtime of", tmp))?;
            Ok((pages, size))
        })();
        if result.is_err() {
            let _ = fs::remove_file(tmp);
        }
        result
    }

    /// Writes a full snapshot of the database at the captured position to `dst` (a
    /// level-9 file: MinTXID 1, MaxTXID the position, no WAL fields, timestamp `now`),
    /// without blocking the application: pages come from the WAL up to the captured
    /// offset, the rest from the database file, all under the read transaction we
    /// already hold. `None` if nothing was captured yet.
    ///
    /// Call it right after a sync that reached the end of the WAL and *before*
    /// [`Database::advance_read_mark`]: our read mark then lies at or before the
    /// captured offset, so no checkpoint can have copied a newer page into the database
    /// file, and every page is exactly as of the position's TXID.
    pub fn write_snapshot(&mut self, dst: &Path, now: SystemTime) -> Result<Option<Captured>> {
        let Some(pos) = self.pos else { return Ok(None) };
        let timestamp = now
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let created_at = SystemTime::UNIX_EPOCH + Duration::from_millis(timestamp.max(0) as u64);
        let header = Header {
            flags: FLAG_NO_CHECKSUM,
            page_size: self.page_size,
            commit: pos.commit,
            min_txid: Txid::FIRST,
            max_txid: pos.txid,
            timestamp,
            ..Header::default()
        };
        // The WAL frames of the position's generation up to the captured offset.
        let mut wal = File::open(&self.wal_path).ok();
        let wal_header = match wal.as_mut() {
            Some(w) => {
                let mut hb = [0u8; WAL_HEADER_SIZE];
                match w.read_exact(&mut hb) {
                    Ok(()) => WalHeader::decode(&hb).ok(),
                    Err(_) => None,
                }
            }
            None => None,
        };
        let seg = match (wal.as_mut(), wal_header) {
            (Some(w), Some(h))
                if (h.salt1, h.salt2) == pos.salts && pos.wal_end > WAL_HEADER_SIZE as u64 =>
            {
                scan_committed(
                    w,
                    WAL_HEADER_SIZE as u64,
                    FrameChain::new(h),
                    Some(pos.wal_end - WAL_HEADER_SIZE as u64),
                )
                .map_err(Error::io("read", &self.wal_path))?
            }
            _ => None,
        };
        let wal_pages = match seg {
            Some(seg) if seg.end == pos.wal_end => seg.pages,
            Some(seg) => {
                return Err(Error::Wal {
                    path: self.wal_path.clone(),
                    reason: format!(
                        "snapshot: the WAL's committed frames end at {} but the captured position is {}; the snapshot is retried after the next capture",
                        seg.end, pos.wal_end
                    ),
                });
            }
            // Nothing of this generation in the WAL: the database file is the state.
            None => Vec::new(),
        };
        let lock = tideline_ltx::lock_pgno(self.page_size);
        let rest: Vec<u32> = (1..=pos.commit)
            .filter(|&p| p != lock && wal_pages.binary_search_by_key(&p, |&(q, _)| q).is_err())
            .collect();
        let mut wal_file = match wal {
            Some(w) => w,
            // No WAL: every page comes from the database file; any handle will do.
            None => File::open(&self.path).map_err(Error::io("open", &self.path))?,
        };
        let (pages, size) =
            self.write_ltx(&mut wal_file, &wal_pages, &rest, header, dst, created_at)?;
        Ok(Some(Captured {
            info: FileInfo {
                level: crate::storage::SNAPSHOT_LEVEL,
                min_txid: Txid::FIRST,
                max_txid: pos.txid,
                size,
                created_at,
            },
            path: dst.to_owned(),
            pages,
            wal_bytes: 0,
            snapshot: None,
            more: false,
        }))
    }

    /// Syncs until the WAL is captured to its end.
    fn sync_all(&mut self, now: SystemTime, out: &mut Vec<Captured>) -> Result<()> {
        while let Some(c) = self.sync(now)? {
            let more = c.more;
            out.push(c);
            if !more {
                break;
            }
        }
        Ok(())
    }

    /// Moves our read mark to the end of the WAL after a capture that reached it, so
    /// that checkpoints (ours or the application's automatic ones) copy frames in small
    /// steps instead of a large batch inside some unlucky commit. Frames past the mark
    /// stay protected from a WAL restart; a restart racing this (possible only when the
    /// WAL was already copied in full) shows up as unexpected salts, and is answered
    /// with a full-database L0.
    pub fn advance_read_mark(&mut self) -> Result<()> {
        // Hand the read lock over: the other connection begins (its mark at the WAL's
        // end) while the current one still holds the old mark, then the old one ends.
        // Letting go first and beginning again left an instant in which the
        // application could copy the whole WAL and restart it with its next write,
        // folding every frame committed since our capture into the database file:
        // the next capture was then a full-database copy, and the history between
        // them was lost.
        //
        // Why a restart the application makes afterwards loses nothing: SQLite restarts
        // the WAL only when every frame was copied into the database and no reader
        // holds a mark in it. Ours always does, except when it began on a WAL already
        // copied in full (SQLite then reads the database file alone, "read mark 0").
        // While the previous reader still held its mark, nothing past that mark could
        // be copied; that mark is at most where the capture before this hand-over
        // ended. So a fully copied WAL at this instant holds only captured frames, and
        // a reader on read mark 0 keeps anything newer from being copied at all: the
        // restart that may follow drops captured frames only, and `sync` continues the
        // chain into the new generation (salt-1 + 1) instead of copying the database.
        let sq = sqlite_err(&self.path);
        let next = 1 - self.active;
        begin_read(&self.readers[next]).map_err(&sq)?;
        let ended = end_read(&self.readers[self.active]).map_err(&sq);
        self.active = next;
        self.restart_safe = self.captured_since_handover;
        self.captured_since_handover = false;
        ended
    }

    /// The connection holding our read transaction.
    fn reader(&self) -> &Connection {
        &self.readers[self.active]
    }

    /// Writes the application's WAL pages to disk (best effort, no lock held); the
    /// replicator calls it after a large capture, before it moves our read mark. The
    /// application's next automatic checkpoint fsyncs the WAL up to the mark inside one
    /// of its COMMITs; under a fast writer that was everything written since the last
    /// mark, hundreds of MB and a 200–300 ms commit. Flushed here, what is left for it
    /// is what was written meanwhile. An error is not ours to report: SQLite's own
    /// fsync still runs and sees it. (On Windows flushing needs a handle with write
    /// access, so there it does nothing.)
    pub fn flush_wal(&self) {
        if let Ok(f) = File::open(&self.wal_path) {
            let _ = f.sync_data();
        }
    }

    /// Pages in the WAL up to the captured position.
    pub fn wal_pages(&self) -> u64 {
        self.pos.map_or(0, |p| {
            p.wal_end.saturating_sub(WAL_HEADER_SIZE as u64)
                / (FRAME_HEADER_SIZE as u64 + u64::from(self.page_size))
        })
    }

    /// Which checkpoint, if any, is due after a sync that reached the end of the WAL.
    /// The time-based interval counts from the first call (the start of replication),
    /// not from an unknown last checkpoint, so a restart does not checkpoint at once.
    pub fn checkpoint_due(&mut self, now: Instant) -> Option<&'static str> {
        let since = *self.last_checkpoint.get_or_insert(now);
        let pages = self.wal_pages();
        if pages >= self.opts.truncate_page_n {
            Some("TRUNCATE")
        } else if pages >= self.opts.min_checkpoint_page_count {
            Some("PASSIVE")
        } else if pages > 1
            && let Some(every) = self.opts.checkpoint_interval
            && now.duration_since(since) >= every
        {
            Some("PASSIVE")
        } else {
            None
        }
    }

    /// Checkpoints the WAL into the database (see the module docs for the protocol) and
    /// lets SQLite restart it, capturing anything written meanwhile. `now` stamps the
    /// L0 files and the checkpoint time.
    pub fn checkpoint(
        &mut self,
        mode: &'static str,
        now: SystemTime,
        clock: Instant,
    ) -> Result<Checkpointed> {
        let sq = sqlite_err(&self.path);
        self.last_checkpoint = Some(clock);
        let mut captured = Vec::new();
        if mode == "TRUNCATE" {
            // The WAL reached truncate-page-n (~500 MB): a bulk load, or a writer that
            // kept our barrier out. Try the PASSIVE protocol first, as Litestream does:
            // when it restarts the WAL nothing is lost and no full copy is needed.
            let passive = self.checkpoint("PASSIVE", now, clock)?;
            if passive.restarted {
                return Ok(passive);
            }
            captured = passive.captured;
            // Then TRUNCATE: blocks writers until done; the next sync sees the reset
            // WAL and writes a full-database L0, as Litestream does.
            let t = Instant::now();
            self.sync_all(now, &mut captured)?;
            end_read(self.reader()).map_err(&sq)?;
            let r = checkpoint_pragma(self.reader(), "TRUNCATE").map_err(&sq);
            // Frames committed between that capture and the checkpoint went into the
            // database file uncaptured: the next sync writes the whole database.
            self.force_snapshot = Some(SnapshotReason::TruncateCheckpoint);
            begin_read(self.reader()).map_err(&sq)?;
            self.restart_safe = false;
            let (_, log, done) = r?;
            return Ok(Checkpointed {
                mode,
                frames: (log, done),
                restarted: true,
                deferred: false,
                captured,
                writers_blocked: t.elapsed(),
            });
        }

        // Phase 1, no lock: move our read mark to the WAL's end and copy what we can.
        // (If another process restarts the WAL in the instant our mark is released,
        // the next sync sees unexpected salts and writes a full L0: safe.) A busy
        // writer adds frames while this runs; repeating it shrinks what phase 2 must
        // capture and copy while writers wait.
        for round in 0..PHASE1_ROUNDS {
            if round > 0 {
                self.sync_all(now, &mut captured)?;
            }
            self.advance_read_mark()?;
            // `log` is the number of frames in the current WAL generation (the file
            // itself is reused, not shrunk, so its length says nothing).
            let (_, log, _) = checkpoint_pragma(&self.writer, "PASSIVE").map_err(&sq)?;
            if log.max(0) as u64 <= self.wal_pages() + SMALL_TAIL_FRAMES {
                break;
            }
        }

        // Phase 2, writers held off: capture the tail, checkpoint it, restart the WAL.
        // SQLite's lock waits are not fair: a writer that never pauses can keep the
        // lock from us indefinitely. Try briefly and, if refused, leave the rest of the
        // checkpoint to a later sync (phase 1 already copied most of the WAL).
        let wait = (BARRIER_WAIT * 2u32.saturating_pow(self.deferrals.min(16)))
            .min(self.opts.busy_timeout.max(BARRIER_WAIT));
        self.writer.busy_timeout(wait).map_err(&sq)?;
        let began = self.writer.execute_batch("BEGIN IMMEDIATE");
        self.writer
            .busy_timeout(self.opts.busy_timeout)
            .map_err(&sq)?;
        match began {
            Ok(()) => self.deferrals = 0,
            Err(e) if e.sqlite_error_code() == Some(rusqlite::ErrorCode::DatabaseBusy) => {
                self.deferrals += 1;
                return Ok(Checkpointed {
                    mode,
                    frames: (0, 0),
                    restarted: false,
                    deferred: true,
                    captured,
                    writers_blocked: Duration::ZERO,
                });
            }
            Err(e) => return Err(sq(e)),
        }
        let t = Instant::now();
        let phase2 = (|| -> Result<((i64, i64, i64), bool)> {
            self.sync_all(now, &mut captured)?;
            end_read(self.reader()).map_err(&sq)?;
            let r = passive_while_busy(self.reader()).map_err(&sq);
            begin_read(self.reader()).map_err(&sq)?;
            // Everything committed was captured just now, under the write lock.
            self.restart_safe = true;
            let r = r?;
            let end = self.pos.map_or(0, |p| p.wal_end);
            let frames_end = WAL_HEADER_SIZE as u64
                + r.1.max(0) as u64 * (FRAME_HEADER_SIZE as u64 + u64::from(self.page_size));
            // Everything in the WAL is captured and copied: it may restart now.
            Ok((r, r.1 == r.2 && frames_end == end))
        })();
        let rollback = self.writer.execute_batch("ROLLBACK").map_err(&sq);
        let writers_blocked = t.elapsed();
        let ((_, log, done), complete) = phase2?;
        rollback?;

        let mut restarted = false;
        if complete && let Some(pos) = self.pos {
            // The next write restarts the WAL: salt-1 + 1, a new salt-2. Make it ours, so
            // it happens now, then take a read mark in the new generation.
            self.restart_expected = Some((pos.salts.0.wrapping_add(1), 0));
            bump_seq(&self.writer).map_err(&sq)?;
            if let Ok(h) = read_wal_header(&self.wal_path)
                && h.salt1 == pos.salts.0.wrapping_add(1)
            {
                self.restart_expected = Some((h.salt1, h.salt2));
                restarted = true;
            } else {
                self.restart_expected = None;
            }
            self.advance_read_mark()?;
        }
        Ok(Checkpointed {
            mode,
            frames: (log, done),
            restarted,
            deferred: false,
            captured,
            writers_blocked,
        })
    }
}

/// The meta directory's newest L0 file at one moment, to compare with later.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetaStamp(Txid, FileStamp);

impl MetaStamp {
    /// The file's TXID and size.
    pub fn file(&self) -> (Txid, u64) {
        (self.0, self.1.len)
    }
}

/// What tells one file from another under the same name: its inode (where there is
/// one), size and modification time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    ino: u64,
    len: u64,
    modified: Option<SystemTime>,
}

impl FileStamp {
    fn of(m: &fs::Metadata) -> FileStamp {
        #[cfg(unix)]
        let ino = std::os::unix::fs::MetadataExt::ino(m);
        #[cfg(not(unix))]
        let ino = 0;
        FileStamp {
            ino,
            len: m.len(),
            modified: m.modified().ok(),
        }
    }
}

/// How long another replicator's newest L0 file must be left alone before it is taken
/// to have stopped, and its files become the position.
const FOREIGN_QUIET: Duration = Duration::from_secs(5);

/// Most lock-free first-phase rounds of a checkpoint.
const PHASE1_ROUNDS: usize = 3;
/// A tail of at most this many uncaptured frames is left to the locked second phase.
const SMALL_TAIL_FRAMES: u64 = 256;

/// How long phase 2 of a checkpoint first waits for the write lock before deferring
/// (doubling at each deferral, up to `busy-timeout`). Waiting holds nothing, so it costs
/// the application nothing; it only delays our own loop. 100 ms was too short for a
/// writer committing 1 MiB transactions back to back: the barrier was deferred until
/// the WAL reached truncate-page-n and was cut by a TRUNCATE (a full-database L0).
const BARRIER_WAIT: Duration = Duration::from_millis(250);

fn read_wal_header(path: &Path) -> io::Result<WalHeader> {
    let mut b = [0u8; WAL_HEADER_SIZE];
    File::open(path)?.read_exact(&mut b)?;
    WalHeader::decode(&b).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn read_at<F: Read + Seek>(mut f: F, buf: &mut [u8], offset: u64) -> io::Result<()> {
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

fn begin_read(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch("BEGIN")?;
    c.query_row("SELECT COUNT(1) FROM _litestream_seq", [], |_| Ok(()))
}

fn end_read(c: &Connection) -> rusqlite::Result<()> {
    c.execute_batch("COMMIT")
}

fn bump_seq(c: &Connection) -> rusqlite::Result<()> {
    c.execute(
        "INSERT INTO _litestream_seq (id, seq) VALUES (1, 1) ON CONFLICT (id) DO UPDATE SET seq = seq + 1",
        [],
    )
    .map(|_| ())
}

/// A PASSIVE checkpoint that, while we hold the write lock, waits out a checkpoint the
/// application is running at that moment. SQLite answers PASSIVE with "busy" at once
/// when another connection holds the checkpointer lock, and under a busy writer that
/// is often: SQLite's automatic checkpoint runs after every commit once the WAL is past
/// `wal_autocheckpoint` pages. Without the retry the WAL could not restart, grew to
/// `truncate-page-n` and was cut by a TRUNCATE (a full-database L0 and a long stall).
/// The application's checkpoint cannot start a new commit meanwhile (we hold the
/// write lock), so it ends soon; the wait is bounded all the same.
fn passive_while_busy(c: &Connection) -> rusqlite::Result<(i64, i64, i64)> {
    let deadline = Instant::now() + CHECKPOINT_BUSY_WAIT;
    loop {
        let r = checkpoint_pragma(c, "PASSIVE")?;
        if r.0 == 0 || Instant::now() >= deadline {
            return Ok(r);
        }
        std::thread::sleep(Duration::from_micros(500));
    }
}

/// How long phase 2 waits for the application's own checkpoint to finish.
const CHECKPOINT_BUSY_WAIT: Duration = Duration::from_millis(50);

fn checkpoint_pragma(c: &Connection, mode: &str) -> rusqlite::Result<(i64, i64, i64)> {
    c.query_row(&format!("PRAGMA wal_checkpoint({mode})"), [], |r| {
        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
    })
}

fn check_sqlite_file(path: &Path) -> Result<()> {
    let mut f = File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            Error::DatabaseMissing(path.to_owned())
        } else {
            Error::Io {
                op: "open",
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let mut magic = [0u8; 16];
    match f.read_exact(&mut magic) {
        Ok(()) if &magic == SQLITE_MAGIC => Ok(()),
        // An empty file is a database SQLite has not initialised yet.
        Err(e)
            if e.kind() == io::ErrorKind::UnexpectedEof
                && f.metadata().is_ok_and(|m| m.len() == 0) =>
        {
            Ok(())
        }
        _ => Err(Error::NotSqlite(path.to_owned())),
    }
}

fn ensure_wal_mode(c: &Connection, path: &Path) -> Result<()> {
    let mode: String = c
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .map_err(sqlite_err(path))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    // Litestream converts the database too; replication needs the WAL.
    let now: String = c
        .query_row("PRAGMA journal_mode=wal", [], |r| r.get(0))
        .map_err(|e| Error::NotWal {
            path: path.to_owned(),
            mode: mode.clone(),
            detail: e.to_string(),
        })?;
    if !now.eq_ignore_ascii_case("wal") {
        return Err(Error::NotWal {
            path: path.to_owned(),
            mode,
            detail: format!("SQLite kept journal_mode={now}"),
        });
    }
    Ok(())
}

/// Keeps SQLite from deleting the WAL when our connections close last, which would
/// force a full-database L0 on the next start.
fn persist_wal(c: &Connection) {
    // Best effort: without it replication stays correct, only restarts cost more.
    let mut on = 1;
    let _ = c.file_control(
        rusqlite::DEFAULT_NAME,
        rusqlite::FileControl::PersistWal(&mut on),
    );
}

/// Takes the one-replicator-per-database locks: an advisory lock on `tideline.lock` in
/// the meta directory, and, when the meta directory is configured elsewhere, one in the
/// default meta directory of the database's *canonical* path too, so that two
/// replicators reaching one database by different meta paths or through a symlink
/// still exclude each other (the app and `tideline replicate` included). The OS
/// releases them when the process ends, however it ends. The holder writes its PID
/// and name into the file, so the refusal can name it. A default meta directory that
/// cannot be created (a read-only folder) only skips the second lock.
fn take_lock(meta: &Path, db: &Path) -> Result<Vec<File>> {
    let mut locks = vec![lock_file(&meta.join(LOCK_FILE), db)?];
    if let Ok(canonical) = fs::canonicalize(db) {
        let shared = default_meta_dir(&canonical);
        let same = fs::canonicalize(meta).is_ok_and(|m| m == shared);
        if !same && fs::create_dir_all(&shared).is_ok() {
            locks.push(lock_file(&shared.join(LOCK_FILE), db)?);
        }
    }
    Ok(locks)
}

/// The lock file's name in a meta directory.
const LOCK_FILE: &str = "tideline.lock";

fn lock_file(path: &Path, db: &Path) -> Result<File> {
    use std::io::Write;
    let mut f = File::options()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)
        .map_err(Error::io("open lock file", path))?;
    match f.try_lock() {
        Ok(()) => {
            // Who holds it, for the next one's refusal. Best effort: the lock itself
            // is what excludes.
            let _ = f
                .set_len(0)
                .and_then(|()| writeln!(f, "{}", holder_description(std::process::id())));
            Ok(f)
        }
        Err(fs::TryLockError::WouldBlock) => Err(Error::AlreadyReplicating {
            db: db.to_owned(),
            lock: path.to_owned(),
            holder: fs::read_to_string(path)
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty()),
        }),
        Err(fs::TryLockError::Error(e)) => Err(Error::io("lock", path)(e)),
    }
}

/// "process 1234 (tideline replicate)": the PID, and the program and its first argument
/// where the OS shows them (no further arguments: a URL may carry credentials).
fn holder_description(pid: u32) -> String {
    let cmdline = fs::read(format!("/proc/{pid}/cmdline"))
        .ok()
        .map(|b| {
            b.split(|&c| c == 0)
                .filter(|a| !a.is_empty())
                .take(2)
                .enumerate()
                .map(|(i, a)| {
                    let a = String::from_utf8_lossy(a).into_owned();
                    if i == 0 {
                        Path::new(&a)
                            .file_name()
                            .map_or(a.clone(), |n| n.to_string_lossy().into_owned())
                    } else {
                        a
                    }
                })
                .collect::<Vec<_>>()
                .join(" ")
        })
        .filter(|c| !c.is_empty());
    match cmdline {
        Some(c) => format!("process {pid} ({c})"),
        None => format!("process {pid}"),
    }
}

fn remove_tmp_files(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).map_err(Error::io("list", dir))? {
        let e = e.map_err(Error::io("list", dir))?;
        if e.file_name().to_string_lossy().ends_with(".tmp") {
            let _ = fs::remove_file(e.path());
        }
    }
    Ok(())
}

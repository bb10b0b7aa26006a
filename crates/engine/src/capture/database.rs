//! A watched database: the read lock, the capture of committed WAL frames into L0 LTX
//! files in the meta directory, the position and its continuity checks. Checkpoints
//! are [`checkpoint`](super::checkpoint)'s, the meta directory's layout
//! [`meta_dir`](super::meta_dir)'s; the protocol both follow is described here.
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
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use rusqlite::Connection;
use tideline_ltx::{IndexedReader, Txid};

use super::foreign::FileStamp;
use super::lock::take_lock;
use super::meta_dir::MetaDir;
use super::sqlite::{
    begin_read, bump_seq, check_sqlite_header, create_bookkeeping, end_read, ensure_wal_mode,
    open_connection, persist_wal, sqlite_err,
};
use crate::capture::wal::{
    Checksum, FRAME_HEADER_SIZE, FrameChain, FrameHeader, Segment, WAL_HEADER_SIZE, WalHeader,
    scan_committed,
};
use crate::error::{Error, Result};
pub use crate::events::SnapshotReason;
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

impl DbOptions {
    /// The options a database's configuration gives, its meta directory included.
    pub fn from_config(cfg: &crate::config::DbConfig) -> DbOptions {
        DbOptions {
            busy_timeout: cfg.busy_timeout,
            max_sync_wal_bytes: cfg.max_sync_wal_bytes,
            min_checkpoint_page_count: u64::from(cfg.min_checkpoint_page_count),
            truncate_page_n: u64::from(cfg.truncate_page_n),
            checkpoint_interval: cfg.checkpoint_interval,
            meta_dir: Some(cfg.meta_path.clone()),
        }
    }
}

/// Litestream's defaults, from the config crate (their one home), with the meta
/// directory beside the database.
impl Default for DbOptions {
    fn default() -> Self {
        use crate::config as c;
        DbOptions {
            busy_timeout: c::DEFAULT_BUSY_TIMEOUT,
            max_sync_wal_bytes: c::DEFAULT_MAX_SYNC_WAL_BYTES,
            min_checkpoint_page_count: u64::from(c::DEFAULT_MIN_CHECKPOINT_PAGE_COUNT),
            truncate_page_n: u64::from(c::DEFAULT_TRUNCATE_PAGE_N),
            checkpoint_interval: Some(c::DEFAULT_CHECKPOINT_INTERVAL),
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

/// A database being replicated.
#[derive(Debug)]
pub struct Database {
    pub(super) path: PathBuf,
    pub(super) wal_path: PathBuf,
    pub(super) meta: MetaDir,
    /// `meta`'s `ltx/0`, kept to lend out as a `&Path`.
    l0_dir: PathBuf,
    pub(super) opts: DbOptions,
    /// Two connections that take turns holding our read transaction: the next one
    /// begins before the current one ends, so there is never an instant without our
    /// read mark (see [`Database::advance_read_mark`]).
    pub(super) readers: [Connection; 2],
    /// Which of `readers` holds the read transaction.
    pub(super) active: usize,
    /// Writes (`_litestream_seq`), the write-lock barrier and checkpoints.
    pub(super) writer: Connection,
    pub(super) page_size: u32,
    pub(super) pos: Option<Position>,
    /// Set by our own checkpoint when the WAL may restart with nothing uncaptured:
    /// the salts of the generation that may follow.
    pub(super) restart_expected: Option<(u32, u32)>,
    /// A capture reached the end of the WAL since the read lock was last handed over.
    pub(super) captured_since_handover: bool,
    /// The position was reloaded from another replicator's files (see
    /// [`Database::take_position_reloaded`]).
    pub(super) position_reloaded: bool,
    /// The L0 file this replicator wrote last, as it left it: replaced by another
    /// program, it shows another replicator at work.
    pub(super) written: std::cell::Cell<Option<(Txid, FileStamp)>>,
    /// The read transaction held now began after a capture that reached the WAL's end
    /// (and was handed over, never let go): a restart by the application, which it
    /// can then do only after copying the WAL into the database, discards only frames
    /// we captured (see [`Database::advance_read_mark`]), so it continues the chain.
    pub(super) restart_safe: bool,
    /// The next sync must write the whole database, for this reason.
    pub(super) force_snapshot: Option<SnapshotReason>,
    pub(super) last_checkpoint: Option<Instant>,
    /// Consecutive checkpoints whose second phase could not get the write lock; each
    /// doubles the next wait.
    pub(super) deferrals: u32,
    _locks: Vec<File>,
    /// The database file, opened once for reading pages. POSIX advisory locks belong
    /// to the process: closing *any* descriptor of the file would drop the locks our
    /// SQLite connections hold on it (then an application closing last could checkpoint
    /// and delete the WAL under us). So it is never reopened, and dropped last.
    pub(super) db_file: File,
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
        check_sqlite_header(&path)?;
        let meta = MetaDir::of(&path, opts.meta_dir.as_deref());
        meta.create()?;
        let lock = take_lock(&meta, &path)?;
        // A crash leaves temporaries (of L0 files, compactions, snapshots and state
        // files); only the lock holder may clear them.
        meta.remove_tmp_files()?;

        let sq = sqlite_err(&path);
        let open = || open_connection(&path, opts.busy_timeout);
        let writer = open()?;
        ensure_wal_mode(&writer, &path)?;
        persist_wal(&writer);
        create_bookkeeping(&writer).map_err(&sq)?;
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
            l0_dir: meta.l0_dir(),
            meta,
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

    /// The meta directory.
    pub fn meta_dir(&self) -> &MetaDir {
        &self.meta
    }

    /// The local L0 files, oldest first.
    pub(crate) fn local_l0(&self) -> Result<Vec<(Txid, PathBuf)>> {
        self.meta.list_l0()
    }

    pub(super) fn load_position(&self) -> Result<Option<Position>> {
        let Some((_, path)) = self.local_l0()?.pop() else {
            return Ok(None);
        };
        let f = File::open(&path).map_err(Error::io("open", &path))?;
        let r = IndexedReader::open(io::BufReader::new(f)).map_err(|source| {
            Error::LocalStateDamaged {
                db: self.path.clone(),
                file: path.clone(),
                source,
            }
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
    pub(crate) fn reset_position(&mut self, newest: Option<(Txid, &[u8])>) -> Result<()> {
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
            let dst = self.meta.l0_file(txid);
            crate::storage::durable::write_atomic(&dst, bytes).map_err(Error::io("write", &dst))?;
            self.pos = self.load_position()?;
            self.force_snapshot = Some(SnapshotReason::ReplicaPosition);
        }
        Ok(())
    }

    /// Syncs until everything committed in the WAL is captured (each sync reads at
    /// most `max_sync_wal_bytes`, so a large WAL takes several).
    pub(crate) fn sync_to_end(&mut self, now: SystemTime) -> Result<Vec<Captured>> {
        let mut out = Vec::new();
        while let Some(c) = self.sync(now)? {
            let more = c.more;
            out.push(c);
            if !more {
                break;
            }
        }
        Ok(out)
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
        let Some((mut wal, wal_len, header)) = self.open_wal()? else {
            return self.sync_without_wal(now);
        };
        let (pos, start, chain) = match self.resume_point(&mut wal, header, wal_len)? {
            Ok(resume) => resume,
            Err(reason) => return self.snapshot(&mut wal, header, now, reason).map(Some),
        };
        let Some(seg) = scan_committed(&mut wal, start, chain, Some(self.opts.max_sync_wal_bytes))
            .map_err(Error::io("read", &self.wal_path))?
        else {
            return Ok(None);
        };
        let more = seg.end < wal_len && seg.end - start >= self.opts.max_sync_wal_bytes;
        // Pages the database grew by that the WAL segment does not carry come from the
        // database file (SQLite writes new pages to the WAL, so this is a safeguard).
        let grown: Vec<u32> = (pos.commit + 1..=seg.commit)
            .filter(|p| seg.pages.binary_search_by_key(p, |&(q, _)| q).is_err())
            .collect();
        let txid = pos.txid.next();
        let captured = self.write_l0(&mut wal, &seg, &grown, txid, start, now, None, more)?;
        self.advance(txid, &seg);
        Ok(Some(captured))
    }

    /// The WAL, its length and its header; `None` if there is no WAL or it has no
    /// header yet.
    fn open_wal(&self) -> Result<Option<(File, u64, WalHeader)>> {
        let mut wal = match File::open(&self.wal_path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::io("open", &self.wal_path)(e)),
        };
        let wal_len = wal
            .metadata()
            .map_err(Error::io("stat", &self.wal_path))?
            .len();
        let mut hb = [0u8; WAL_HEADER_SIZE];
        if wal_len < WAL_HEADER_SIZE as u64 {
            return Ok(None);
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
        Ok(Some((wal, wal_len, header)))
    }

    /// Where in the WAL capture continues (the continuity checks of the module docs):
    /// the position, the offset and the frame chain to resume, or why it cannot and
    /// the whole database must be captured instead.
    #[allow(clippy::type_complexity)]
    fn resume_point(
        &self,
        wal: &mut File,
        header: WalHeader,
        wal_len: u64,
    ) -> Result<std::result::Result<(Position, u64, FrameChain), SnapshotReason>> {
        let salts = (header.salt1, header.salt2);
        let Some(pos) = self.pos else {
            return Ok(Err(SnapshotReason::FirstSync));
        };
        if let Some(reason) = self.force_snapshot {
            return Ok(Err(reason));
        }
        if pos.wal_end == 0 {
            // A compaction or snapshot file taken from the replica: no WAL position.
            return Ok(Err(SnapshotReason::ReplicaPosition));
        }
        if salts != pos.salts {
            let ours = self.restart_expected == Some(salts)
                || (self.restart_safe && salts.0 == pos.salts.0.wrapping_add(1));
            return Ok(if ours {
                Ok((pos, WAL_HEADER_SIZE as u64, FrameChain::new(header)))
            } else {
                Err(SnapshotReason::WalRestarted)
            });
        }
        if pos.wal_end > wal_len {
            return Ok(Err(SnapshotReason::WalTruncated));
        }
        if pos.wal_end <= WAL_HEADER_SIZE as u64 {
            return Ok(Ok((pos, WAL_HEADER_SIZE as u64, FrameChain::new(header))));
        }
        // The frame before the position must still be the one we captured.
        let mut fh = [0u8; FRAME_HEADER_SIZE];
        wal.seek(SeekFrom::Start(pos.wal_end - header.frame_size()))
            .and_then(|_| wal.read_exact(&mut fh))
            .map_err(Error::io("read", &self.wal_path))?;
        let fh = FrameHeader::decode(&fh);
        let same = (fh.salt1, fh.salt2) == salts && pos.checksum.is_none_or(|c| c == fh.checksum);
        Ok(if same {
            Ok((pos, pos.wal_end, FrameChain::resume(header, fh.checksum)))
        } else {
            Err(SnapshotReason::WalOverwritten)
        })
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
    pub(super) fn reader(&self) -> &Connection {
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
    pub(crate) fn flush_wal(&self) {
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
}

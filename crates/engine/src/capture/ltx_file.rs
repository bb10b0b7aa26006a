//! Writing LTX files from the watched database: L0 files of captured WAL segments
//! (and of the whole database), and full snapshots at the captured position. Pages
//! come from the WAL where it has them and from the database file otherwise.

use std::fs::{self, File};
use std::io::{BufWriter, Read, Seek, SeekFrom};
use std::path::Path;
use std::time::{Duration, SystemTime};

use tideline_ltx::{Encoder, FLAG_NO_CHECKSUM, Header, Txid};

use super::database::{Captured, Database, Position, SnapshotReason};
use super::foreign::FileStamp;
use crate::capture::wal::{FrameChain, Segment, WAL_HEADER_SIZE, WalHeader, scan_committed};
use crate::error::{Error, Result};
use crate::storage::FileInfo;

/// An LTX header's timestamp for `now` (milliseconds), and the creation time replicas
/// keep, which is that timestamp.
fn timestamps(now: SystemTime) -> (i64, SystemTime) {
    let timestamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64);
    let created_at = SystemTime::UNIX_EPOCH + Duration::from_millis(timestamp.max(0) as u64);
    (timestamp, created_at)
}

fn ltx_err(name: &str) -> impl Fn(tideline_ltx::Error) -> Error + '_ {
    move |source| Error::Ltx {
        name: name.to_owned(),
        source,
    }
}

impl Database {
    /// Writes L0 `txid`: the segment's pages from the WAL merged, in page order, with
    /// `from_db` pages read from the database file.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn write_l0(
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
        let (timestamp, created_at) = timestamps(now);
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
        let path = self.meta.l0_file(txid);
        let tmp = self.meta.l0_tmp_file(txid);
        let (pages, size) = self.write_ltx(wal, &seg.pages, from_db, header, &tmp, created_at)?;
        crate::failpoint::hit("l0-written");
        fs::rename(&tmp, &path).map_err(Error::io("rename", &path))?;
        let dir = self.meta.l0_dir();
        crate::storage::durable::sync_dir(&dir).map_err(Error::io("fsync directory", &dir))?;
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
                .map_err(ltx_err(&name))?;
            self.copy_pages(&mut enc, wal, wal_pages, from_db, &name)?;
            let pages = enc.pages_written();
            let (w, _) = enc.finish().map_err(ltx_err(&name))?;
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

    /// Encodes the pages, in page order: `wal_pages` (page, frame offset) read from
    /// the WAL, merged with `from_db` read from the database file; the lock page is
    /// skipped (LTX files never hold it).
    fn copy_pages(
        &self,
        enc: &mut Encoder<BufWriter<File>>,
        wal: &mut File,
        wal_pages: &[(u32, u64)],
        from_db: &[u32],
        name: &str,
    ) -> Result<()> {
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
                        read_at(&mut db, &mut buf, at).map_err(Error::io("read", &self.path))?;
                    }
                }
            }
            enc.write_page(pgno, &buf).map_err(ltx_err(name))?;
        }
        Ok(())
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
    pub(crate) fn write_snapshot(
        &mut self,
        dst: &Path,
        now: SystemTime,
    ) -> Result<Option<Captured>> {
        let Some(pos) = self.pos else { return Ok(None) };
        let (timestamp, created_at) = timestamps(now);
        let header = Header {
            flags: FLAG_NO_CHECKSUM,
            page_size: self.page_size,
            commit: pos.commit,
            min_txid: Txid::FIRST,
            max_txid: pos.txid,
            timestamp,
            ..Header::default()
        };
        let (wal, wal_pages) = self.captured_wal_pages(&pos)?;
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

    /// The WAL (if there is one) and the pages of the position's generation in it up
    /// to the captured offset: (page, frame offset), in page order.
    #[allow(clippy::type_complexity)]
    fn captured_wal_pages(&self, pos: &Position) -> Result<(Option<File>, Vec<(u32, u64)>)> {
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
        Ok((wal, wal_pages))
    }
}

fn read_at<F: Read + Seek>(mut f: F, buf: &mut [u8], offset: u64) -> std::io::Result<()> {
    f.seek(SeekFrom::Start(offset))?;
    f.read_exact(buf)
}

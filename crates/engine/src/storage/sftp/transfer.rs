//! Moving file bytes over an SFTP session: uploads to a temporary name with many
//! writes in flight, renamed over the final name; reads of a part or a whole file with
//! several requests in flight, the whole-file reader feeding the decoder through a
//! bounded queue.
//!
//! Reason to change: how bytes go up and come back.

use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, PoisonError};
use std::time::SystemTime;

use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, Status, StatusCode};
use tokio::io::AsyncReadExt;
use tokio::sync::mpsc;

use super::session::Conn;
use super::{
    Answer, CHUNK, POSIX_RENAME, READ_QUEUE, READS_IN_FLIGHT, SftpReplica, WRITES_IN_FLIGHT,
};
use crate::storage::counters::{Counters, Op};
use crate::storage::queue_reader::QueueReader;
use crate::storage::{FileInfo, RemoteFailure, ReplicaResult};

impl SftpReplica {
    /// Bytes `range` of `file` (clamped to its end).
    pub(super) async fn read_bytes(
        &self,
        file: &FileInfo,
        range: Range<u64>,
    ) -> ReplicaResult<Vec<u8>> {
        if range.start >= range.end {
            return Ok(Vec::new());
        }
        let path = self.file_path(file.level, file.min_txid, file.max_txid);
        let _permit = self.inner.transfers.acquire().await;
        self.inner.counters.count(Op::Get, 0);
        let answer = self
            .run("get", &path, |c| {
                let (path, range) = (path.clone(), range.clone());
                async move {
                    let handle = c
                        .sftp
                        .open(&path, OpenFlags::READ, FileAttributes::empty())
                        .await?
                        .handle;
                    let got = read_span(&c, &handle, range).await;
                    let _ = c.sftp.close(handle).await;
                    got
                }
            })
            .await?;
        match answer {
            Ok(bytes) => {
                self.inner.counters.count_download(bytes.len() as u64);
                Ok(bytes)
            }
            Err(s) if s.status_code == StatusCode::NoSuchFile => Err(self.not_found(file)),
            Err(s) => Err(self.status_failure("get", &path, &s)),
        }
    }

    /// Whether the file system of `dir` has less than `size` bytes left (asked with
    /// `statvfs@openssh.com`). OpenSSH answers a full disk with a bare "Failure" (SFTP
    /// v3 has no code for it), so a failed write asks, once, to tell "server full"
    /// (nothing lost, free space there) from other failures.
    pub(super) async fn out_of_space(&self, dir: &str, size: u64) -> bool {
        let answer = self
            .run("put", dir, |c| {
                let dir = dir.to_owned();
                async move { c.sftp.statvfs(dir).await }
            })
            .await;
        match answer {
            Ok(Ok(v)) => too_full(v.blocks_avail, v.fragment_size, size),
            _ => false,
        }
    }

    /// Creates `dir` and the folders above it (`MkdirAll`), remembering what exists.
    pub(super) async fn mkdir_all(&self, c: &Conn, dir: &str) -> Result<(), SftpError> {
        let known = |p: &str| {
            self.inner
                .folders
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(p)
        };
        if known(dir) {
            return Ok(());
        }
        // Usually the folder exists (another client made it): one STAT.
        self.inner.counters.count(Op::Multipart, 0);
        match c.sftp.stat(dir).await {
            Ok(a) if a.attrs.is_dir() => {
                self.inner
                    .folders
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .insert(dir.to_owned());
                return Ok(());
            }
            Ok(_) | Err(SftpError::Status(_)) => {}
            Err(e) => return Err(e),
        }
        // The prefixes of `dir`, shortest first ("/a", "/a/b"… or "a", "a/b"…).
        let absolute = dir.starts_with('/');
        let mut prefixes = Vec::new();
        let mut prefix = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty() && *p != ".") {
            if absolute || !prefix.is_empty() {
                prefix.push('/');
            }
            prefix.push_str(part);
            prefixes.push(prefix.clone());
        }
        for p in prefixes {
            if known(&p) {
                continue;
            }
            self.inner.counters.count(Op::Multipart, 0);
            match c.sftp.stat(&p).await {
                Ok(a) if a.attrs.is_dir() => {}
                Ok(_) => {
                    return Err(SftpError::Status(Status {
                        id: 0,
                        status_code: StatusCode::Failure,
                        error_message: format!("{p} exists and is not a folder"),
                        language_tag: String::new(),
                    }));
                }
                Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {
                    self.inner.counters.count(Op::Multipart, 0);
                    if let Err(e) = c.sftp.mkdir(&p, FileAttributes::empty()).await {
                        // Made by someone else meanwhile?
                        match c.sftp.stat(&p).await {
                            Ok(a) if a.attrs.is_dir() => {}
                            _ => return Err(e),
                        }
                    }
                }
                Err(e) => return Err(e),
            }
            self.inner
                .folders
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(p);
        }
        Ok(())
    }

    /// Uploads `src` as `path` on `c`: to `tmp`, times set, renamed over `path`.
    pub(super) async fn upload(
        &self,
        c: &Arc<Conn>,
        level: u8,
        (path, tmp): (&str, &str),
        src: &Path,
        created_at: SystemTime,
    ) -> Result<u64, SftpError> {
        let dir = self.level_dir(level);
        self.mkdir_all(c, &dir).await?;
        let flags = OpenFlags::WRITE | OpenFlags::CREATE | OpenFlags::TRUNCATE;
        let handle = match c.sftp.open(tmp, flags, FileAttributes::empty()).await {
            Ok(h) => h.handle,
            Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {
                // The folder went away since this client made it: make it again, once.
                self.inner
                    .folders
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clear();
                self.mkdir_all(c, &dir).await?;
                c.sftp
                    .open(tmp, flags, FileAttributes::empty())
                    .await?
                    .handle
            }
            Err(e) => return Err(e),
        };
        let written = self.write_all(c, &handle, src).await;
        let closed = c.sftp.close(handle).await;
        let result = async {
            let size = written?;
            closed?;
            let secs = created_at
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs();
            let secs = u32::try_from(secs).unwrap_or(u32::MAX);
            let mut times = FileAttributes::empty();
            times.atime = Some(secs);
            times.mtime = Some(secs);
            self.inner.counters.count(Op::Multipart, 0);
            c.sftp.setstat(tmp, times).await?;
            self.inner.counters.count(Op::Multipart, 0);
            if c.posix_rename {
                let mut data = Vec::with_capacity(tmp.len() + path.len() + 8);
                for s in [tmp, path] {
                    data.extend_from_slice(&(s.len() as u32).to_be_bytes());
                    data.extend_from_slice(s.as_bytes());
                }
                match c.sftp.extended(POSIX_RENAME, data).await? {
                    Packet::Status(s) if s.status_code == StatusCode::Ok => {}
                    Packet::Status(s) => return Err(SftpError::Status(s)),
                    _ => return Err(SftpError::UnexpectedPacket),
                }
            } else {
                // Plain SFTP rename refuses an existing target: remove it first (a
                // retried upload of the same file; the bytes are the same).
                match c.sftp.remove(path).await {
                    Ok(_) => {}
                    Err(SftpError::Status(s)) if s.status_code == StatusCode::NoSuchFile => {}
                    Err(e) => return Err(e),
                }
                c.sftp.rename(tmp, path).await?;
            }
            Ok(size)
        }
        .await;
        if result.is_err() {
            let _ = c.sftp.remove(tmp).await;
        }
        result
    }

    /// Writes the whole of `src` to the open `handle`, pipelined with
    /// `concurrent-writes`. Returns the bytes written.
    pub(super) async fn write_all(
        &self,
        c: &Arc<Conn>,
        handle: &str,
        src: &Path,
    ) -> Result<u64, SftpError> {
        let mut file = tokio::fs::File::open(src).await?;
        let in_flight = if self.inner.concurrent_writes {
            WRITES_IN_FLIGHT
        } else {
            1
        };
        let mut tasks = tokio::task::JoinSet::new();
        let mut offset = 0u64;
        let mut first_error = None;
        loop {
            let mut buf = vec![0u8; CHUNK];
            let mut n = 0;
            while n < CHUNK {
                let got = file.read(&mut buf[n..]).await?;
                if got == 0 {
                    break;
                }
                n += got;
            }
            if n == 0 {
                break;
            }
            buf.truncate(n);
            while tasks.len() >= in_flight {
                if let Some(Err(e)) = join_write(tasks.join_next().await) {
                    first_error.get_or_insert(e);
                }
            }
            if first_error.is_some() {
                break;
            }
            let (c, handle) = (Arc::clone(c), handle.to_owned());
            let at = offset;
            tasks.spawn(async move { c.sftp.write(handle, at, buf).await.map(|_| ()) });
            offset += n as u64;
        }
        while let Some(done) = tasks.join_next().await {
            if let Some(Err(e)) = join_write(Some(done)) {
                first_error.get_or_insert(e);
            }
        }
        first_error.map_or(Ok(offset), Err)
    }

    /// Opens `path` for reading: the connection, the handle and the file's size.
    pub(super) async fn open_for_read(
        &self,
        path: &str,
    ) -> ReplicaResult<Answer<(Arc<Conn>, String, Option<u64>)>> {
        self.run("get", path, |c| {
            let path = path.to_owned();
            async move {
                let handle = c
                    .sftp
                    .open(&path, OpenFlags::READ, FileAttributes::empty())
                    .await?
                    .handle;
                let size = match c.sftp.fstat(handle.as_str()).await {
                    Ok(a) => a.attrs.size,
                    Err(e) => {
                        let _ = c.sftp.close(handle).await;
                        return Err(e);
                    }
                };
                Ok((c, handle, size))
            }
        })
        .await
    }

    /// A blocking reader of the whole of `file`, fed by a task on the runtime.
    pub(super) fn reader(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        let path = self.file_path(file.level, file.min_txid, file.max_txid);
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            self.fail(
                "get",
                &path,
                RemoteFailure::Other("SFTP reads need the tokio runtime".into()),
            )
        })?;
        let (tx, rx) = mpsc::channel::<ReplicaResult<bytes::Bytes>>(READ_QUEUE);
        let (this, file) = (self.clone(), file.clone());
        handle.spawn(async move {
            // No transfer permit here: a restore merges every file of its plan at once,
            // and a reader waiting for the decoder must not hold a permit another
            // file's reader needs (the queue bounds each reader's memory).
            // Bytes handed to the reader so far: after a lost connection the file
            // is opened again and read on from there, once per read.
            let mut sent = 0u64;
            let mut resumed = false;
            loop {
                this.inner.counters.count(Op::Get, 0);
                let (c, handle, size) = match this.open_for_read(&path).await {
                    Ok(Ok(v)) => v,
                    Ok(Err(s)) => {
                        let e = if s.status_code == StatusCode::NoSuchFile {
                            this.not_found(&file)
                        } else {
                            this.status_failure("get", &path, &s)
                        };
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e)).await;
                        return;
                    }
                };
                let size = size.unwrap_or(file.size);
                let streamed =
                    stream_file(&c, &handle, &mut sent, size, &tx, &this.inner.counters).await;
                let e = match streamed {
                    Ok(()) => {
                        let _ = c.sftp.close(handle).await;
                        return;
                    }
                    Err(SftpError::Status(s)) => {
                        let _ = c.sftp.close(handle).await;
                        this.status_failure("get", &path, &s)
                    }
                    // The connection is gone (no CLOSE on it: it would wait for an
                    // answer that never comes).
                    Err(_) if !resumed => {
                        this.drop_conn(&c).await;
                        resumed = true;
                        continue;
                    }
                    Err(other) => {
                        this.drop_conn(&c).await;
                        this.fail(
                            "get",
                            &path,
                            RemoteFailure::Unreachable(format!("the connection was lost: {other}")),
                        )
                    }
                };
                let _ = tx.send(Err(e)).await;
                return;
            }
        });
        Ok(Box::new(QueueReader::new(rx)))
    }
}

/// Whether `blocks` free blocks of `block_size` bytes hold less than `size` bytes.
pub(super) fn too_full(blocks: u64, block_size: u64, size: u64) -> bool {
    blocks.saturating_mul(block_size.max(1)) < size
}

/// The outcome of one write task.
fn join_write(
    done: Option<Result<Result<(), SftpError>, tokio::task::JoinError>>,
) -> Option<Result<(), SftpError>> {
    match done? {
        Ok(r) => Some(r),
        Err(e) => Some(Err(SftpError::UnexpectedBehavior(format!(
            "a write task ended: {e}"
        )))),
    }
}

/// Bytes `range` of the open `handle`, stopping at the end of the file.
async fn read_span(c: &Conn, handle: &str, range: Range<u64>) -> Result<Vec<u8>, SftpError> {
    let mut out = Vec::new();
    let mut at = range.start;
    while at < range.end {
        let want = (range.end - at).min(CHUNK as u64) as u32;
        match c.sftp.read(handle, at, want).await {
            Ok(d) if d.data.is_empty() => break,
            Ok(d) => {
                at += d.data.len() as u64;
                out.extend_from_slice(&d.data);
            }
            Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break,
            Err(e) => return Err(e),
        }
    }
    Ok(out)
}

/// Sends the open `handle`'s bytes from `*sent` on to `tx` in order, with several
/// reads in flight, advancing `*sent`. A short read (the server may answer less
/// than asked) drops the reads after it and goes on from where it ended.
async fn stream_file(
    c: &Arc<Conn>,
    handle: &str,
    sent: &mut u64,
    size: u64,
    tx: &mpsc::Sender<ReplicaResult<bytes::Bytes>>,
    counters: &Counters,
) -> Result<(), SftpError> {
    type Read = tokio::task::JoinHandle<Result<Vec<u8>, SftpError>>;
    let mut queue: VecDeque<(u64, u32, Read)> = VecDeque::new();
    let mut next = *sent;
    let mut eof = false;
    loop {
        while !eof && next < size && queue.len() < READS_IN_FLIGHT {
            let want = (size - next).min(CHUNK as u64) as u32;
            let (c, h, at) = (Arc::clone(c), handle.to_owned(), next);
            let task = tokio::spawn(async move {
                match c.sftp.read(h, at, want).await {
                    Ok(d) => Ok(d.data),
                    Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => Ok(Vec::new()),
                    Err(e) => Err(e),
                }
            });
            queue.push_back((next, want, task));
            next += u64::from(want);
        }
        let Some((at, want, task)) = queue.pop_front() else {
            return Ok(());
        };
        let data = match task.await {
            Ok(Ok(d)) => d,
            Ok(Err(e)) => {
                abort_all(&mut queue);
                return Err(e);
            }
            Err(e) => {
                abort_all(&mut queue);
                return Err(SftpError::UnexpectedBehavior(format!(
                    "a read task ended: {e}"
                )));
            }
        };
        let got = data.len() as u64;
        if got < u64::from(want) {
            // Short or at the end: what was asked after it is from the wrong offset.
            abort_all(&mut queue);
            if got == 0 {
                eof = true;
            }
            next = at + got;
        }
        if got > 0 {
            counters.count_download(got);
            *sent = at + got;
            if tx.send(Ok(bytes::Bytes::from(data))).await.is_err() {
                // The reader was dropped: nobody wants the rest.
                abort_all(&mut queue);
                return Ok(());
            }
        }
    }
}

/// Cancels the reads still in flight.
fn abort_all<T>(queue: &mut VecDeque<(u64, u32, tokio::task::JoinHandle<T>)>) {
    for (_, _, t) in queue.drain(..) {
        t.abort();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_write_is_server_full_only_when_the_space_left_is_short() {
        assert!(too_full(0, 4096, 1));
        assert!(too_full(1, 4096, 4097));
        assert!(!too_full(1, 4096, 4096));
        assert!(!too_full(u64::MAX, 4096, u64::MAX), "no overflow");
        assert!(too_full(3, 0, 4), "a zero block size counts as 1");
    }
}

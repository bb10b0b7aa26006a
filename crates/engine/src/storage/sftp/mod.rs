//! A folder on an SSH server, reached over SFTP, in Litestream 0.5's exact `sftp`
//! layout: `<path>/ltx/<level>/<min>-<max>.ltx` (`path` absolute, or relative to the
//! login folder), each file's modification time its LTX creation time — Litestream
//! lists `CreatedAt` from the mtime, so a replica written here restores by time
//! with Litestream too, and the other way round.
//!
//! Why SFTP: a backup to any Linux box, NAS or hosting account with only SSH, no
//! object store. The client is pure Rust on tokio (`russh` + `russh-sftp`), so the
//! replicator needs no `ssh` binary and no C library.
//!
//! * **Connection**: one SSH connection and SFTP session per client, made on first use
//!   (30 s to connect, Litestream's dial timeout) and kept. When it drops (the server
//!   restarted, a NAT forgot it), the failed operation reconnects and runs once more.
//! * **Host key**: `host-key` if set, else `~/.ssh/known_hosts` (`[host]:port` off port
//!   22). An unknown key is refused with the key offered, ready to paste into
//!   `host-key:`; Litestream accepts any key when `host-key` is unset, but a backup
//!   holds the whole database, so Tideline never sends it to a server it cannot trust.
//! * **Login**: the private key of `key-path` (OpenSSH or PEM), then `password`.
//! * **Uploads** go to `<name>.<pid>.<nanos>.tmp` (Litestream's naming; listings
//!   ignore it), get their times set, then are renamed over the final name with
//!   `posix-rename@openssh.com` where offered (plain SFTP rename fails on an existing
//!   name). With `concurrent-writes` (the default) many 32 KiB writes are in flight at
//!   once, as Litestream's client sends them; a far server is otherwise one round
//!   trip per 32 KiB.
//! * **Listings** are `READDIR` of the level folder (missing folder = empty level),
//!   cached for the replicator as on S3 and WebDAV, so an idle database sends nothing.
//! * **Reads** open the file and read 32 KiB pieces, several in flight; the
//!   whole-file reader feeds the decoder through a small bounded queue.
//!
//! Failures are named for what to fix ([`RemoteFailure`]): host key unknown or
//! changed, login refused, no permission, server unreachable — with the server and
//! folder, never the password.
//!
//! Here: the client, its listings and the [`ReplicaClient`] surface; `session` reaches
//! and trusts the server, `transfer` moves the bytes.

use std::collections::HashSet;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use russh::keys::ssh_key;
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{Status, StatusCode};
use tideline_ltx::{HEADER_SIZE, Header, Txid, format_filename, parse_filename};
use tokio::sync::Semaphore;

use super::cache::{Cache, LevelCache};
use super::counters::{Counters, Op, RequestCounts};
use super::{FileInfo, RemoteFailure, ReplicaClient, ReplicaError, ReplicaResult, check_level};
use crate::config::SftpReplicaConfig;

mod session;
mod transfer;

use self::session::Conn;

/// Litestream's `DefaultDialTimeout`; also the limit for one SFTP request's answer.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Transfers (whole files) in flight per client.
const TRANSFERS: usize = 8;
/// Bytes per SFTP read or write request: the size every server accepts (OpenSSH
/// takes more, some embedded servers do not), and what Litestream's client uses.
const CHUNK: usize = 32 * 1024;
/// Write requests of one file in flight with `concurrent-writes` (Go's `pkg/sftp`
/// default, 64 × 32 KiB = 2 MiB, which also is the SSH channel window).
const WRITES_IN_FLIGHT: usize = 64;
/// Read requests of one file in flight.
const READS_IN_FLIGHT: usize = 16;
/// Chunks of a whole-file read queued ahead of the decoder.
const READ_QUEUE: usize = 8;
/// The OpenSSH extension that renames over an existing file.
const POSIX_RENAME: &str = "posix-rename@openssh.com";
/// Login methods, as the config names them.
const LOGIN_KEYS: &str = "user, password and key-path";

/// An SFTP replica client.
#[derive(Debug, Clone)]
pub struct SftpReplica {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    host: String,
    port: u16,
    user: String,
    password: Option<crate::config::Sensitive<String>>,
    key_path: Option<PathBuf>,
    /// `host-key`, parsed.
    host_key: Option<ssh_key::PublicKey>,
    /// The known-hosts file when `host-key` is unset; `None` for `~/.ssh/known_hosts`.
    known_hosts: Option<PathBuf>,
    /// The replica's config: `path` and its level folders (`level_dir`, Go's `path.Join`).
    cfg: SftpReplicaConfig,
    concurrent_writes: bool,
    describe: String,
    cache: Cache,
    /// Set by the first write: this client is the replicator and may cache listings.
    writer: AtomicBool,
    counters: Counters,
    transfers: Semaphore,
    /// Folders known to exist (created or found by this client).
    folders: Mutex<HashSet<String>>,
    /// The live connection, if any; held while connecting so only one connects.
    conn: tokio::sync::Mutex<Option<Arc<Conn>>>,
}

/// What one SFTP operation gave: the value, or the server's refusal (for the caller
/// to interpret: a missing file may be fine).
type Answer<T> = Result<T, Status>;

impl SftpReplica {
    /// A client for the configured server and folder. Nothing is sent until used.
    pub fn new(cfg: &SftpReplicaConfig) -> ReplicaResult<SftpReplica> {
        SftpReplica::build(cfg, None)
    }

    /// Like [`new`](Self::new), checking host keys in `known_hosts` instead of
    /// `~/.ssh/known_hosts` when `host-key` is unset (tests, and callers that keep
    /// their own file).
    pub fn with_known_hosts(cfg: &SftpReplicaConfig, known_hosts: &Path) -> ReplicaResult<Self> {
        SftpReplica::build(cfg, Some(known_hosts.to_path_buf()))
    }

    fn build(cfg: &SftpReplicaConfig, known_hosts: Option<PathBuf>) -> ReplicaResult<Self> {
        let describe = crate::config::ReplicaTarget::Sftp(Box::new(cfg.clone())).to_string();
        let (host, port) = cfg.host_and_port();
        let host_key =
            match &cfg.host_key {
                Some(line) => Some(ssh_key::PublicKey::from_openssh(line).map_err(|e| {
                    ReplicaError::Remote {
                        replica: describe.clone(),
                        op: "connect",
                        path: String::new(),
                        failure: RemoteFailure::Other(format!(
                            "host-key is not a public key line like `ssh-ed25519 AAAA…` ({e})"
                        )),
                    }
                })?),
                None => None,
            };
        Ok(SftpReplica {
            inner: Arc::new(Inner {
                host,
                port,
                user: cfg.user.clone(),
                password: cfg.password.clone(),
                key_path: cfg.key_path.clone(),
                host_key,
                known_hosts,
                cfg: cfg.clone(),
                concurrent_writes: cfg.concurrent_writes,
                describe,
                cache: Cache::default(),
                writer: AtomicBool::new(false),
                counters: Counters::new("sftp"),
                transfers: Semaphore::new(TRANSFERS),
                folders: Mutex::new(HashSet::new()),
                conn: tokio::sync::Mutex::new(None),
            }),
        })
    }

    /// `<path>/ltx/<level>` on the server.
    fn level_dir(&self, level: u8) -> String {
        self.inner.cfg.level_dir(level)
    }

    /// The server path of a file.
    fn file_path(&self, level: u8, min: Txid, max: Txid) -> String {
        format!("{}/{}", self.level_dir(level), format_filename(min, max))
    }

    fn fail(&self, op: &'static str, path: &str, failure: RemoteFailure) -> ReplicaError {
        ReplicaError::Remote {
            replica: self.inner.describe.clone(),
            op,
            path: path.to_owned(),
            failure,
        }
    }

    /// The failure a refusal by the server means.
    fn status_failure(&self, op: &'static str, path: &str, status: &Status) -> ReplicaError {
        let detail = if status.error_message.is_empty() {
            status.status_code.to_string()
        } else {
            status.error_message.clone()
        };
        let failure = match status.status_code {
            StatusCode::PermissionDenied => RemoteFailure::AccessDenied(detail),
            _ if detail.to_ascii_lowercase().contains("no space")
                || detail.to_ascii_lowercase().contains("quota") =>
            {
                RemoteFailure::ServerFull(detail)
            }
            code => RemoteFailure::Other(format!("the server answered {code}: {detail}")),
        };
        self.fail(op, path, failure)
    }

    /// Lists `level` from the server (a missing folder is an empty level).
    async fn list_remote(&self, level: u8) -> ReplicaResult<LevelCache> {
        let dir = self.level_dir(level);
        self.inner.counters.count(Op::List, 0);
        let answer = self
            .run("list", &dir, |c| {
                let dir = dir.clone();
                async move { read_dir(&c.sftp, &dir).await }
            })
            .await?;
        let entries = match answer {
            Ok(e) => e,
            Err(s) if s.status_code == StatusCode::NoSuchFile => return Ok(LevelCache::new()),
            Err(s) => return Err(self.status_failure("list", &dir, &s)),
        };
        let mut out = LevelCache::new();
        for e in entries {
            if e.attrs.is_dir() {
                continue;
            }
            let Some((min, max)) = parse_filename(&e.filename) else {
                continue;
            };
            out.insert(
                (min, max),
                FileInfo {
                    level,
                    min_txid: min,
                    max_txid: max,
                    size: e.attrs.size.unwrap_or(0),
                    created_at: SystemTime::UNIX_EPOCH
                        + Duration::from_secs(u64::from(e.attrs.mtime.unwrap_or(0))),
                },
            );
        }
        Ok(out)
    }

    /// Lists `level`, through the cache for the replicator.
    async fn relist(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        if !self.inner.writer.load(Ordering::Acquire) {
            return Ok(self.list_remote(level).await?.into_values().collect());
        }
        let flight = self.inner.cache.begin_listing(level);
        let result = self.list_remote(level).await;
        flight.finish(result)
    }

    /// The error for a file the server does not have; the cache was wrong about it.
    fn not_found(&self, file: &FileInfo) -> ReplicaError {
        self.inner.cache.invalidate(file.level);
        ReplicaError::NotFound {
            replica: self.inner.describe.clone(),
            level: file.level,
            name: file.filename(),
        }
    }

    /// The file's creation time from its LTX header.
    async fn header_time(&self, file: &FileInfo) -> ReplicaResult<SystemTime> {
        let bytes = self.read_bytes(file, 0..HEADER_SIZE as u64).await?;
        let header = <&[u8; HEADER_SIZE]>::try_from(bytes.as_slice())
            .ok()
            .and_then(|b| Header::decode(b).ok());
        Ok(header
            .and_then(|h| u64::try_from(h.timestamp).ok())
            .map_or(file.created_at, |ms| {
                SystemTime::UNIX_EPOCH + Duration::from_millis(ms)
            }))
    }
}

/// Every entry of folder `dir` (`OPENDIR`, `READDIR` until its end, `CLOSE`).
async fn read_dir(
    sftp: &RawSftpSession,
    dir: &str,
) -> Result<Vec<russh_sftp::protocol::File>, SftpError> {
    let handle = sftp.opendir(dir).await?.handle;
    let mut out = Vec::new();
    let result = loop {
        match sftp.readdir(&handle).await {
            Ok(name) => out.extend(name.files),
            Err(SftpError::Status(s)) if s.status_code == StatusCode::Eof => break Ok(()),
            Err(e) => break Err(e),
        }
    };
    let _ = sftp.close(handle).await;
    result.map(|()| out)
}

#[async_trait::async_trait]
impl ReplicaClient for SftpReplica {
    fn describe(&self) -> String {
        self.inner.describe.clone()
    }

    async fn list(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        check_level(level)?;
        if let Some(cached) = self.inner.cache.files(level) {
            return Ok(cached);
        }
        self.relist(level).await
    }

    async fn list_fresh(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        check_level(level)?;
        self.relist(level).await
    }

    async fn list_exact(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        check_level(level)?;
        let mut files: Vec<FileInfo> = self.list_remote(level).await?.into_values().collect();
        // Bounded by the transfer semaphore each header read takes.
        let mut tasks = tokio::task::JoinSet::new();
        for (i, f) in files.iter().enumerate() {
            let (this, f) = (self.clone(), f.clone());
            tasks.spawn(async move { (i, this.header_time(&f).await) });
        }
        while let Some(done) = tasks.join_next().await {
            let (i, t) = done.map_err(|e| ReplicaError::Internal(e.to_string()))?;
            files[i].created_at = t?;
        }
        Ok(files)
    }

    async fn read_range(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
        self.read_bytes(file, range).await
    }

    fn open(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        self.reader(file)
    }

    async fn write(
        &self,
        level: u8,
        min: Txid,
        max: Txid,
        created_at: SystemTime,
        src: &Path,
    ) -> ReplicaResult<FileInfo> {
        check_level(level)?;
        self.inner.writer.store(true, Ordering::Release);
        let path = self.file_path(level, min, max);
        // The local file first, so that a missing source is not blamed on the server.
        let local_size = tokio::fs::metadata(src)
            .await
            .map_err(|e| ReplicaError::Io {
                replica: self.inner.describe.clone(),
                op: "read",
                path: src.display().to_string(),
                source: e,
            })?
            .len();
        // Litestream's temporary name. One per write, not per attempt: an upload cut
        // by a lost connection cannot remove its temporary file, and the attempt
        // after reconnecting overwrites and renames that same file instead of
        // leaving it behind.
        let tmp = format!(
            "{path}.{}.{}.tmp",
            std::process::id(),
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos()
        );
        let _permit = self.inner.transfers.acquire().await;
        let answer = self
            .run("put", &path, |c| {
                let (path, tmp) = (path.clone(), tmp.clone());
                async move {
                    let size = self
                        .upload(&c, level, (&path, &tmp), src, created_at)
                        .await?;
                    self.inner.counters.count(Op::Put, size);
                    Ok(size)
                }
            })
            .await;
        let size = match answer {
            Ok(Ok(size)) => size,
            Ok(Err(s)) => {
                self.inner.cache.invalidate(level);
                let dir = self.level_dir(level);
                if s.status_code == StatusCode::Failure && self.out_of_space(&dir, local_size).await
                {
                    return Err(self.fail(
                        "put",
                        &path,
                        RemoteFailure::ServerFull(format!(
                            "{} bytes do not fit in the space left at {dir}",
                            local_size
                        )),
                    ));
                }
                return Err(self.status_failure("put", &path, &s));
            }
            Err(e) => {
                // Whether the file landed is unknown: list this level again next time.
                self.inner.cache.invalidate(level);
                return Err(e);
            }
        };
        let info = FileInfo {
            level,
            min_txid: min,
            max_txid: max,
            size,
            created_at,
        };
        self.inner.cache.lock()[usize::from(level)].record_write(&info);
        Ok(info)
    }

    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for f in files {
            let (this, f) = (self.clone(), f.clone());
            tasks.spawn(async move {
                let _permit = this.inner.transfers.acquire().await;
                let path = this.file_path(f.level, f.min_txid, f.max_txid);
                this.inner.counters.count(Op::Delete, 0);
                let answer = this
                    .run("delete", &path, |c| {
                        let path = path.clone();
                        async move { c.sftp.remove(path).await.map(|_| ()) }
                    })
                    .await;
                let result = match answer {
                    Ok(Ok(())) => Ok(()),
                    Ok(Err(s)) if s.status_code == StatusCode::NoSuchFile => Ok(()),
                    Ok(Err(s)) => Err(this.status_failure("delete", &path, &s)),
                    Err(e) => Err(e),
                };
                (f, result)
            });
        }
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            let (f, result) = done.map_err(|e| ReplicaError::Internal(e.to_string()))?;
            match result {
                Ok(()) => self.inner.cache.lock()[usize::from(f.level)]
                    .record_delete(f.min_txid, f.max_txid),
                Err(e) => {
                    self.inner.cache.invalidate(f.level);
                    first_error.get_or_insert(e);
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }

    fn request_counts(&self) -> Option<RequestCounts> {
        Some(self.inner.counters.snapshot())
    }
}

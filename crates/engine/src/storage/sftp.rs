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

use std::collections::{HashSet, VecDeque};
use std::future::Future;
use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate, ssh_key};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;
use russh_sftp::protocol::{FileAttributes, OpenFlags, Packet, Status, StatusCode};
use tideline_ltx::{HEADER_SIZE, Header, Txid, format_filename, parse_filename};
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc};

use super::cache::{Cache, LevelCache};
use super::counters::{Counters, Op, RequestCounts};
use super::queue_reader::QueueReader;
use super::{FileInfo, RemoteFailure, ReplicaClient, ReplicaError, ReplicaResult, check_level};
use crate::config::SftpReplicaConfig;

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

/// One SSH connection with its SFTP session.
struct Conn {
    ssh: russh::client::Handle<Client>,
    sftp: RawSftpSession,
    /// The server offers `posix-rename@openssh.com`.
    posix_rename: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("closed", &self.ssh.is_closed())
            .field("posix_rename", &self.posix_rename)
            .finish_non_exhaustive()
    }
}

/// The SSH client's callbacks: the host-key check.
struct Client {
    host: String,
    port: u16,
    host_key: Option<ssh_key::PublicKey>,
    known_hosts: Option<PathBuf>,
    /// Why the host key was refused, for the error (russh itself only says "unknown
    /// key").
    refused: Arc<Mutex<Option<RemoteFailure>>>,
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let offered = offered.public_key();
        let verdict = check_host_key(
            &self.host,
            self.port,
            &offered,
            self.host_key.as_ref(),
            self.known_hosts.as_deref(),
        );
        let ok = verdict.is_ok();
        if let Err(f) = verdict {
            *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(f);
        }
        Ok(ok)
    }
}

/// Whether `offered` is the server's key: `configured` if set, else the known-hosts
/// file (`None` for `~/.ssh/known_hosts`).
fn check_host_key(
    host: &str,
    port: u16,
    offered: &ssh_key::PublicKey,
    configured: Option<&ssh_key::PublicKey>,
    known_hosts: Option<&Path>,
) -> Result<(), RemoteFailure> {
    let name = if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    };
    let line = authorized_line(offered);
    if let Some(want) = configured {
        return if want.key_data() == offered.key_data() {
            Ok(())
        } else {
            Err(RemoteFailure::HostKeyChanged { offered: line })
        };
    }
    let path = match known_hosts {
        Some(p) => p.to_path_buf(),
        None => match std::env::home_dir() {
            Some(home) => home.join(".ssh").join("known_hosts"),
            None => {
                return Err(RemoteFailure::HostKeyUnknown { offered: line });
            }
        },
    };
    let known = russh::keys::known_hosts::known_host_keys_path(host, port, &path).map_err(|e| {
        RemoteFailure::Other(format!(
            "cannot read {} to check the host key of {name}: {e}; set host-key: {line} in the replica config instead",
            path.display()
        ))
    })?;
    if known
        .iter()
        .any(|(_, k)| k.key_data() == offered.key_data())
    {
        return Ok(());
    }
    // A recorded key of the same type that differs: the server's key changed (what
    // OpenSSH calls "REMOTE HOST IDENTIFICATION HAS CHANGED").
    if known
        .iter()
        .any(|(_, k)| k.algorithm() == offered.algorithm())
    {
        return Err(RemoteFailure::HostKeyChanged { offered: line });
    }
    Err(RemoteFailure::HostKeyUnknown { offered: line })
}

/// `ssh-ed25519 AAAA…`: a key as `host-key:` and `authorized_keys` write it.
fn authorized_line(key: &ssh_key::PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh()
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("<a {} key that cannot be printed: {e}>", key.algorithm()))
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
                counters: Counters::default(),
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

    /// Connects, checks the host key, logs in and starts SFTP.
    async fn connect(&self, op: &'static str, path: &str) -> ReplicaResult<Conn> {
        let inner = &self.inner;
        let config = Arc::new(russh::client::Config {
            // Something tiny every 30 s keeps NAT and firewall state of an idle
            // connection; three unanswered mean it is dead, and the next operation
            // reconnects instead of waiting on it.
            keepalive_interval: Some(TIMEOUT),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let refused = Arc::new(Mutex::new(None));
        let handler = Client {
            host: inner.host.clone(),
            port: inner.port,
            host_key: inner.host_key.clone(),
            known_hosts: inner.known_hosts.clone(),
            refused: Arc::clone(&refused),
        };
        let addr = (inner.host.clone(), inner.port);
        let connected =
            tokio::time::timeout(TIMEOUT, russh::client::connect(config, addr, handler)).await;
        let mut ssh = match connected {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                let why = refused
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                return Err(self.fail(op, path, why.unwrap_or_else(|| ssh_failure(&e))));
            }
            Err(_) => {
                return Err(self.fail(
                    op,
                    path,
                    RemoteFailure::Unreachable(format!(
                        "no SSH answer from {}:{} within {} s",
                        inner.host,
                        inner.port,
                        TIMEOUT.as_secs()
                    )),
                ));
            }
        };
        tokio::time::timeout(TIMEOUT, self.login(&mut ssh))
            .await
            .map_err(|_| {
                self.fail(
                    op,
                    path,
                    RemoteFailure::Unreachable("the login took longer than 30 s".into()),
                )
            })?
            .map_err(|f| self.fail(op, path, f))?;
        let start = async {
            let channel = ssh.channel_open_session().await?;
            channel.request_subsystem(true, "sftp").await?;
            Ok::<_, russh::Error>(channel.into_stream())
        };
        let stream = tokio::time::timeout(TIMEOUT, start)
            .await
            .map_err(|_| {
                self.fail(
                    op,
                    path,
                    RemoteFailure::Unreachable("the SFTP subsystem did not start in 30 s".into()),
                )
            })?
            .map_err(|e| {
                self.fail(
                    op,
                    path,
                    RemoteFailure::Other(format!(
                        "the server does not start SFTP ({e}): is its sftp subsystem enabled?"
                    )),
                )
            })?;
        let sftp = RawSftpSession::new(stream);
        sftp.set_timeout(TIMEOUT.as_secs());
        let version = sftp.init().await.map_err(|e| {
            self.fail(
                op,
                path,
                RemoteFailure::Other(format!("the SFTP session did not start: {e}")),
            )
        })?;
        let posix_rename = version.extensions.contains_key(POSIX_RENAME);
        Ok(Conn {
            ssh,
            sftp,
            posix_rename,
        })
    }

    /// Logs in with the key of `key-path`, then `password`.
    async fn login(&self, ssh: &mut russh::client::Handle<Client>) -> Result<(), RemoteFailure> {
        let inner = &self.inner;
        let lost = |e: russh::Error| ssh_failure(&e);
        let mut tried = Vec::new();
        if let Some(path) = &inner.key_path {
            let key = load_key(path)?;
            let hash = if key.algorithm().is_rsa() {
                ssh.best_supported_rsa_hash().await.map_err(lost)?.flatten()
            } else {
                None
            };
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            let result = ssh
                .authenticate_publickey(&inner.user, key)
                .await
                .map_err(lost)?;
            if result.success() {
                return Ok(());
            }
            tried.push(format!("the key {} was refused", path.display()));
        }
        if let Some(password) = &inner.password {
            let result = ssh
                .authenticate_password(&inner.user, password.expose())
                .await
                .map_err(lost)?;
            if result.success() {
                return Ok(());
            }
            tried.push("the password was refused".to_owned());
        }
        if tried.is_empty() {
            tried.push("neither key-path nor password is set".to_owned());
        }
        Err(RemoteFailure::WrongCredentials {
            keys: LOGIN_KEYS,
            detail: format!("as user {}: {}", inner.user, tried.join(", ")),
        })
    }

    /// The live connection, made if there is none.
    async fn conn(&self, op: &'static str, path: &str) -> ReplicaResult<Arc<Conn>> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.ssh.is_closed()
        {
            return Ok(Arc::clone(c));
        }
        *slot = None;
        let conn = Arc::new(self.connect(op, path).await?);
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Forgets `conn` (if it still is the live one): the next operation reconnects.
    async fn drop_conn(&self, conn: &Arc<Conn>) {
        let mut slot = self.inner.conn.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *slot = None;
        }
        let _ = conn.sftp.close_session();
    }

    /// Runs `f` on the connection. A lost connection (anything but an answer from the
    /// server) is made again and `f` run once more: a server restart costs one retry,
    /// not a failed sync. Refusals by the server are returned for the caller to read.
    async fn run<T, F, Fut>(&self, op: &'static str, path: &str, f: F) -> ReplicaResult<Answer<T>>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, SftpError>>,
    {
        let mut retried = false;
        loop {
            let conn = self.conn(op, path).await?;
            match f(Arc::clone(&conn)).await {
                Ok(v) => return Ok(Ok(v)),
                Err(SftpError::Status(s)) => return Ok(Err(s)),
                Err(e) => {
                    self.drop_conn(&conn).await;
                    if retried {
                        return Err(self.fail(
                            op,
                            path,
                            RemoteFailure::Unreachable(format!("the connection was lost: {e}")),
                        ));
                    }
                    retried = true;
                }
            }
        }
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

    /// Bytes `range` of `file` (clamped to its end).
    async fn read_bytes(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
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

    /// Whether the file system of `dir` has less than `size` bytes left (asked with
    /// `statvfs@openssh.com`). OpenSSH answers a full disk with a bare "Failure" (SFTP
    /// v3 has no code for it), so a failed write asks, once, to tell "server full"
    /// (nothing lost, free space there) from other failures.
    async fn out_of_space(&self, dir: &str, size: u64) -> bool {
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
    async fn mkdir_all(&self, c: &Conn, dir: &str) -> Result<(), SftpError> {
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
    async fn upload(
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
    async fn write_all(&self, c: &Arc<Conn>, handle: &str, src: &Path) -> Result<u64, SftpError> {
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
    async fn open_for_read(
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
    fn reader(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
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
fn too_full(blocks: u64, block_size: u64, size: u64) -> bool {
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

/// Loads the private key of `key-path`.
fn load_key(path: &Path) -> Result<ssh_key::PrivateKey, RemoteFailure> {
    russh::keys::load_secret_key(path, None).map_err(|e| {
        let detail = match e {
            russh::keys::Error::KeyIsEncrypted => format!(
                "the private key {} is encrypted with a passphrase, which Tideline cannot ask for: give key-path a key without a passphrase (e.g. a copy made with ssh-keygen -p -N '' -f COPY)",
                path.display()
            ),
            russh::keys::Error::IO(io) => {
                format!("cannot read the private key {}: {io}", path.display())
            }
            other => format!(
                "the private key {} is not an OpenSSH or PEM private key: {other}",
                path.display()
            ),
        };
        RemoteFailure::WrongCredentials {
            keys: "key-path",
            detail,
        }
    })
}

/// What a failed SSH connection means.
fn ssh_failure(e: &russh::Error) -> RemoteFailure {
    match e {
        russh::Error::IO(io) => RemoteFailure::Unreachable(io.to_string()),
        russh::Error::Disconnect
        | russh::Error::HUP
        | russh::Error::ConnectionTimeout
        | russh::Error::KeepaliveTimeout
        | russh::Error::InactivityTimeout
        | russh::Error::SendError => RemoteFailure::Unreachable(e.to_string()),
        other => RemoteFailure::Other(format!("SSH: {other}")),
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";

    const ED25519_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+yLirbPtGJ4X/vZvYlo4njVqqliXbjKNAEbMcqwSlh";

    fn key(line: &str) -> ssh_key::PublicKey {
        ssh_key::PublicKey::from_openssh(line).unwrap()
    }

    #[test]
    fn a_failed_write_is_server_full_only_when_the_space_left_is_short() {
        assert!(too_full(0, 4096, 1));
        assert!(too_full(1, 4096, 4097));
        assert!(!too_full(1, 4096, 4096));
        assert!(!too_full(u64::MAX, 4096, u64::MAX), "no overflow");
        assert!(too_full(3, 0, 4), "a zero block size counts as 1");
    }

    #[test]
    fn a_configured_host_key_must_match() {
        let a = key(ED25519_A);
        assert_eq!(check_host_key("h", 22, &a, Some(&a), None), Ok(()));
        let b = key(ED25519_B);
        assert!(matches!(
            check_host_key("h", 22, &b, Some(&a), None),
            Err(RemoteFailure::HostKeyChanged { ref offered }) if offered == ED25519_B
        ));
    }

    #[test]
    fn known_hosts_decides_unknown_changed_and_known() {
        let dir = std::env::temp_dir().join(format!("tideline-kh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("known_hosts");
        let a = key(ED25519_A);
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            check_host_key("127.0.0.1", 2222, &a, None, Some(&file)),
            Err(RemoteFailure::HostKeyUnknown { ref offered }) if offered == ED25519_A
        ));
        std::fs::write(&file, format!("[127.0.0.1]:2222 {ED25519_A}\n")).unwrap();
        assert_eq!(
            check_host_key("127.0.0.1", 2222, &a, None, Some(&file)),
            Ok(())
        );
        // The same key for another port is not this server's.
        assert!(check_host_key("127.0.0.1", 2223, &a, None, Some(&file)).is_err());
        let b = key(ED25519_B);
        assert!(matches!(
            check_host_key("127.0.0.1", 2222, &b, None, Some(&file)),
            Err(RemoteFailure::HostKeyChanged { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

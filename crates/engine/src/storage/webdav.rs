//! A folder on a WebDAV server (Nextcloud, ownCloud, Synology, Apache `mod_dav`,
//! `rclone serve webdav`…) in Litestream 0.5's exact `webdav` layout:
//! `<webdav-url>/<path>/ltx/<level>/<min>-<max>.ltx`, each file's creation time its
//! LTX header timestamp (WebDAV keeps only the upload time; Litestream lists that).
//!
//! * **Uploads** stream from the local file with a `Content-Length` (chunked bodies are
//!   dropped or refused by common WebDAV set-ups, which is why Litestream stages its
//!   uploads to a temporary file): to `<name>.tmp`, then `MOVE`d over the final name,
//!   so that a reader never sees part of a file and an interrupted upload leaves only
//!   a `.tmp` that listings ignore. A server without `MOVE` gets a direct `PUT`.
//!   Level folders are created with `MKCOL` once per client.
//! * **Listings** are `PROPFIND` with `Depth: 1`, cached for the replicator as on S3
//!   (the shared listing cache), so an idle database sends nothing.
//! * **Reads** are `GET`s (ranged where a part is wanted); the whole-file reader streams
//!   the body to the decoder through a small bounded queue.
//! * **Retries**: a refused or dropped connection, `423 Locked` (two requests on one
//!   path), `429` and `5xx` are retried with backoff; every transfer takes a permit
//!   from one semaphore per client, and requests are counted for `tideline status`.
//!
//! Failures are named for what to fix ([`RemoteFailure`]): wrong login, no permission,
//! server unreachable, server full — with the server and folder, never the password.

use std::collections::HashSet;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use reqwest::{Method, RequestBuilder, Response, StatusCode};
use tideline_ltx::{HEADER_SIZE, Header, Txid, format_filename, parse_filename};
use tokio::sync::{Semaphore, mpsc};

use super::cache::{Cache, LevelCache};
use super::counters::{Counters, Op, RequestCounts};
use super::queue_reader::QueueReader;
use super::{FileInfo, RemoteFailure, ReplicaClient, ReplicaError, ReplicaResult, check_level};
use crate::config::WebDavReplicaConfig;

/// Litestream's timeout for connecting, and here also for a stalled response.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Transfers in flight per client.
const TRANSFERS: usize = 8;
/// Attempts of a request that failed in a way worth retrying.
const ATTEMPTS: u32 = 5;
/// First retry delay; doubled per attempt.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// Chunks of a whole-file read queued ahead of the decoder.
const READ_QUEUE: usize = 8;

/// The properties a listing asks for.
const PROPFIND_BODY: &str = r#"<?xml version="1.0" encoding="utf-8"?>
<D:propfind xmlns:D="DAV:"><D:prop><D:resourcetype/><D:getcontentlength/><D:getlastmodified/></D:prop></D:propfind>"#;

/// A WebDAV replica client.
#[derive(Debug, Clone)]
pub struct WebDavReplica {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// The server's base URL, no trailing slash.
    base: String,
    /// The replica's folder below `base`, `/`-separated, no slashes around it.
    path: String,
    username: Option<String>,
    password: Option<crate::config::Sensitive<String>>,
    describe: String,
    cache: Cache,
    /// Set by the first write: this client is the replicator and may cache listings.
    writer: AtomicBool,
    counters: Counters,
    transfers: Semaphore,
    /// Folders known to exist (created or found by this client).
    folders: Mutex<HashSet<String>>,
    /// The server answered `MOVE` with "not supported": uploads go straight to the name.
    no_move: AtomicBool,
}

impl WebDavReplica {
    /// A client for the configured server and folder. Nothing is sent until used.
    pub fn new(cfg: &WebDavReplicaConfig) -> ReplicaResult<WebDavReplica> {
        let describe = crate::config::ReplicaTarget::WebDav(Box::new(cfg.clone())).to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .read_timeout(TIMEOUT)
            .user_agent(concat!("tideline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ReplicaError::Remote {
                replica: describe.clone(),
                op: "connect",
                path: String::new(),
                failure: RemoteFailure::Other(format!("cannot set up the HTTP client: {e}")),
            })?;
        Ok(WebDavReplica {
            inner: Arc::new(Inner {
                http,
                base: cfg.url.clone(),
                path: cfg.path.clone(),
                username: cfg.username.clone(),
                password: cfg.password.clone(),
                describe,
                cache: Cache::default(),
                writer: AtomicBool::new(false),
                counters: Counters::new("webdav"),
                transfers: Semaphore::new(TRANSFERS),
                folders: Mutex::new(HashSet::new()),
                no_move: AtomicBool::new(false),
            }),
        })
    }

    /// `<path>/ltx/<level>`, relative to the base URL.
    fn level_dir(&self, level: u8) -> String {
        join(&self.inner.path, &format!("ltx/{level}"))
    }

    /// The server path of a file, relative to the base URL.
    fn file_path(&self, level: u8, min: Txid, max: Txid) -> String {
        format!("{}/{}", self.level_dir(level), format_filename(min, max))
    }

    /// The URL of `rel` (a folder when `folder`, with the trailing slash servers want).
    fn url(&self, rel: &str, folder: bool) -> String {
        let mut out = self.inner.base.clone();
        for segment in rel.split('/').filter(|s| !s.is_empty()) {
            out.push('/');
            out.push_str(&encode_segment(segment));
        }
        if folder {
            out.push('/');
        }
        out
    }

    fn fail(&self, op: &'static str, path: &str, failure: RemoteFailure) -> ReplicaError {
        ReplicaError::Remote {
            replica: self.inner.describe.clone(),
            op,
            path: path.to_owned(),
            failure,
        }
    }

    /// The failure an unexpected answer means.
    fn status_failure(&self, op: &'static str, path: &str, status: StatusCode) -> ReplicaError {
        let message = status.canonical_reason().unwrap_or("").to_owned();
        let failure = match status {
            StatusCode::UNAUTHORIZED => RemoteFailure::WrongCredentials {
                keys: "webdav-username and webdav-password",
                detail: format!("{} {message}", status.as_u16()),
            },
            StatusCode::FORBIDDEN => {
                RemoteFailure::AccessDenied(format!("{} {message}", status.as_u16()))
            }
            StatusCode::INSUFFICIENT_STORAGE => {
                RemoteFailure::ServerFull(format!("{} {message}", status.as_u16()))
            }
            _ => RemoteFailure::Server {
                status: status.as_u16(),
                message,
            },
        };
        self.fail(op, path, failure)
    }

    /// Sends the request `build` makes, retrying refused or dropped connections and
    /// the answers that mean "try again" (`423`, `429`, `5xx` but `507`). Returns the
    /// first other answer, whatever its status.
    async fn send(
        &self,
        op: Op,
        name: &'static str,
        path: &str,
        build: impl Fn() -> ReplicaResult<(RequestBuilder, u64)>,
    ) -> ReplicaResult<Response> {
        let mut delay = RETRY_DELAY;
        let mut attempt = 1;
        loop {
            let (req, bytes_up) = build()?;
            let req = match &self.inner.username {
                Some(user) => {
                    req.basic_auth(user, self.inner.password.as_ref().map(|p| p.expose()))
                }
                None => req,
            };
            self.inner.counters.count(op, bytes_up);
            let outcome = req.send().await;
            let retry = match &outcome {
                Ok(resp) => retryable(resp.status()),
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
            };
            if !retry || attempt >= ATTEMPTS {
                return outcome.map_err(|e| self.fail(name, path, transport_failure(&e)));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            attempt += 1;
        }
    }

    /// Lists `level` from the server (a missing folder is an empty level).
    async fn list_remote(&self, level: u8) -> ReplicaResult<LevelCache> {
        let dir = self.level_dir(level);
        let url = self.url(&dir, true);
        let propfind = Method::from_bytes(b"PROPFIND").expect("a valid method name");
        let resp = self
            .send(Op::List, "list", &dir, || {
                Ok((
                    self.inner
                        .http
                        .request(propfind.clone(), &url)
                        .header("Depth", "1")
                        .header("Content-Type", "application/xml; charset=utf-8")
                        .body(PROPFIND_BODY),
                    PROPFIND_BODY.len() as u64,
                ))
            })
            .await?;
        match resp.status() {
            StatusCode::NOT_FOUND => return Ok(LevelCache::new()),
            s if s == StatusCode::MULTI_STATUS || s.is_success() => {}
            s => return Err(self.status_failure("list", &dir, s)),
        }
        let body = resp
            .text()
            .await
            .map_err(|e| self.fail("list", &dir, transport_failure(&e)))?;
        self.inner.counters.count_download(body.len() as u64);
        let entries = parse_multistatus(&body)
            .map_err(|e| self.fail("list", &dir, RemoteFailure::Other(e)))?;
        let mut out = LevelCache::new();
        for e in entries.into_iter().filter(|e| !e.folder) {
            let Some((min, max)) = last_segment(&e.href).as_deref().and_then(parse_filename) else {
                continue;
            };
            out.insert(
                (min, max),
                FileInfo {
                    level,
                    min_txid: min,
                    max_txid: max,
                    size: e.size,
                    created_at: e.modified.unwrap_or(SystemTime::UNIX_EPOCH),
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

    /// A GET of `file`, ranged when `range` is given.
    async fn get(&self, file: &FileInfo, range: Option<Range<u64>>) -> ReplicaResult<Response> {
        let path = self.file_path(file.level, file.min_txid, file.max_txid);
        let url = self.url(&path, false);
        let resp = self
            .send(Op::Get, "get", &path, || {
                let mut req = self.inner.http.get(&url);
                if let Some(r) = &range {
                    req = req.header("Range", format!("bytes={}-{}", r.start, r.end - 1));
                }
                Ok((req, 0))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(resp),
            StatusCode::NOT_FOUND => {
                // The cache was wrong about this file: list again next time.
                self.inner.cache.invalidate(file.level);
                Err(ReplicaError::NotFound {
                    replica: self.inner.describe.clone(),
                    level: file.level,
                    name: file.filename(),
                })
            }
            s => Err(self.status_failure("get", &path, s)),
        }
    }

    /// The file's creation time from its LTX header (a ranged GET of the header).
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

    async fn read_bytes(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
        let end = range.end.min(file.size);
        if range.start >= end {
            return Ok(Vec::new());
        }
        let _permit = self.inner.transfers.acquire().await;
        let resp = self.get(file, Some(range.start..end)).await?;
        let status = resp.status();
        if status == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(Vec::new());
        }
        let path = self.file_path(file.level, file.min_txid, file.max_txid);
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.fail("get", &path, transport_failure(&e)))?;
        self.inner.counters.count_download(body.len() as u64);
        if status == StatusCode::PARTIAL_CONTENT {
            return Ok(body.to_vec());
        }
        // A server that ignores Range sends the whole file.
        let (start, end) = (range.start as usize, (end as usize).min(body.len()));
        Ok(body.get(start..end).map(<[u8]>::to_vec).unwrap_or_default())
    }

    /// Creates `<path>/ltx/<level>` and the folders above it (below the base URL),
    /// once per client.
    async fn ensure_folders(&self, level: u8) -> ReplicaResult<()> {
        let dir = self.level_dir(level);
        let mut prefix = String::new();
        for segment in dir.split('/').filter(|s| !s.is_empty()) {
            prefix = join(&prefix, segment);
            let known = self
                .inner
                .folders
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .contains(&prefix);
            if known {
                continue;
            }
            let url = self.url(&prefix, true);
            let mkcol = Method::from_bytes(b"MKCOL").expect("a valid method name");
            let resp = self
                .send(Op::Multipart, "create folder", &prefix, || {
                    Ok((self.inner.http.request(mkcol.clone(), &url), 0))
                })
                .await?;
            // 405: it exists already (RFC 4918 §9.3.1); some servers say 301 or 409
            // for an existing folder reached without its slash.
            match resp.status() {
                s if s.is_success() || s == StatusCode::METHOD_NOT_ALLOWED => {}
                s => return Err(self.status_failure("create folder", &prefix, s)),
            }
            self.inner
                .folders
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(prefix.clone());
        }
        Ok(())
    }

    /// A PUT of the whole of `src` to `path`.
    async fn put(&self, path: &str, src: &Path, size: u64) -> ReplicaResult<Response> {
        let url = self.url(path, false);
        self.send(Op::Put, "put", path, || {
            let file = std::fs::File::open(src).map_err(|e| ReplicaError::Io {
                replica: self.inner.describe.clone(),
                op: "read",
                path: src.display().to_string(),
                source: e,
            })?;
            let body = reqwest::Body::from(tokio::fs::File::from_std(file));
            Ok((
                self.inner
                    .http
                    .put(&url)
                    .header("Content-Length", size)
                    .header("Content-Type", "application/octet-stream")
                    .body(body),
                size,
            ))
        })
        .await
    }

    /// Uploads `src` as `path`: to a temporary name and moved over `path`, or straight
    /// to `path` on a server without `MOVE`.
    async fn upload(&self, level: u8, path: &str, src: &Path, size: u64) -> ReplicaResult<()> {
        self.ensure_folders(level).await?;
        let direct = self.inner.no_move.load(Ordering::Relaxed);
        let target = if direct {
            path.to_owned()
        } else {
            format!("{path}.tmp")
        };
        let mut resp = self.put(&target, src, size).await?;
        if resp.status() == StatusCode::CONFLICT {
            // The folder went away since this client made it: make it again, once.
            self.inner
                .folders
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clear();
            self.ensure_folders(level).await?;
            resp = self.put(&target, src, size).await?;
        }
        if !resp.status().is_success() {
            return Err(self.status_failure("put", &target, resp.status()));
        }
        if direct {
            return Ok(());
        }
        let (from, to) = (self.url(&target, false), self.url(path, false));
        let mv = Method::from_bytes(b"MOVE").expect("a valid method name");
        let resp = self
            .send(Op::Multipart, "move", path, || {
                Ok((
                    self.inner
                        .http
                        .request(mv.clone(), &from)
                        .header("Destination", &to)
                        .header("Overwrite", "T"),
                    0,
                ))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::METHOD_NOT_ALLOWED | StatusCode::NOT_IMPLEMENTED => {
                self.inner.no_move.store(true, Ordering::Relaxed);
                self.delete_path(&target).await?;
                let resp = self.put(path, src, size).await?;
                match resp.status() {
                    s if s.is_success() => Ok(()),
                    s => Err(self.status_failure("put", path, s)),
                }
            }
            s => Err(self.status_failure("move", path, s)),
        }
    }

    /// DELETE of one path; already gone is fine.
    async fn delete_path(&self, path: &str) -> ReplicaResult<()> {
        let url = self.url(path, false);
        let resp = self
            .send(Op::Delete, "delete", path, || {
                Ok((self.inner.http.delete(&url), 0))
            })
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s => Err(self.status_failure("delete", path, s)),
        }
    }

    /// A blocking reader of the whole of `file`, fed by a task on the runtime.
    fn reader(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        let path = self.file_path(file.level, file.min_txid, file.max_txid);
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            self.fail(
                "get",
                &path,
                RemoteFailure::Other("WebDAV reads need the tokio runtime".into()),
            )
        })?;
        let (tx, rx) = mpsc::channel::<ReplicaResult<bytes::Bytes>>(READ_QUEUE);
        let (this, file) = (self.clone(), file.clone());
        handle.spawn(async move {
            // The permit covers the request, not the body: a restore merges many files
            // at once, and a reader waiting for the decoder must not hold a permit
            // another file's reader needs (the queue bounds each body's memory).
            let response = {
                let _permit = this.inner.transfers.acquire().await;
                this.get(&file, None).await
            };
            let mut resp = match response {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            loop {
                let next = resp
                    .chunk()
                    .await
                    .map_err(|e| this.fail("get", &path, transport_failure(&e)));
                let done = !matches!(next, Ok(Some(_)));
                let item = match next {
                    Ok(Some(b)) => {
                        this.inner.counters.count_download(b.len() as u64);
                        Ok(b)
                    }
                    Ok(None) => break,
                    Err(e) => Err(e),
                };
                if tx.send(item).await.is_err() || done {
                    break;
                }
            }
        });
        Ok(Box::new(QueueReader::new(rx)))
    }
}

#[async_trait::async_trait]
impl ReplicaClient for WebDavReplica {
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
        let size = tokio::fs::metadata(src)
            .await
            .map_err(|e| ReplicaError::Io {
                replica: self.inner.describe.clone(),
                op: "read",
                path: src.display().to_string(),
                source: e,
            })?
            .len();
        let _permit = self.inner.transfers.acquire().await;
        if let Err(e) = self.upload(level, &path, src, size).await {
            // Whether the file landed is unknown: list this level again next time.
            self.inner.cache.invalidate(level);
            return Err(e);
        }
        let info = FileInfo {
            level,
            min_txid: min,
            max_txid: max,
            size,
            created_at,
        };
        self.inner.cache.wrote(&info);
        Ok(info)
    }

    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for f in files {
            let (this, f) = (self.clone(), f.clone());
            tasks.spawn(async move {
                let _permit = this.inner.transfers.acquire().await;
                let path = this.file_path(f.level, f.min_txid, f.max_txid);
                let result = this.delete_path(&path).await;
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

/// Answers worth another try.
fn retryable(status: StatusCode) -> bool {
    status == StatusCode::LOCKED
        || status == StatusCode::TOO_MANY_REQUESTS
        || (status.is_server_error()
            && status != StatusCode::INSUFFICIENT_STORAGE
            && status != StatusCode::NOT_IMPLEMENTED)
}

/// What a failed request means: the server unreachable, or something else.
fn transport_failure(e: &reqwest::Error) -> RemoteFailure {
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = s.source();
    }
    if e.is_connect() || e.is_timeout() || e.is_request() {
        RemoteFailure::Unreachable(detail)
    } else {
        RemoteFailure::Other(detail)
    }
}

/// `a/b` joined, no empty parts.
fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

/// Percent-encodes one path segment (RFC 3986 unreserved characters stay).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The last non-empty segment of an `href`, percent-decoded.
fn last_segment(href: &str) -> Option<String> {
    let path = href.split(['?', '#']).next()?;
    let seg = path.trim_end_matches('/').rsplit('/').next()?;
    let bytes = seg.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(v) = bytes
                .get(i + 1..i + 3)
                .and_then(|h| std::str::from_utf8(h).ok())
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8(out).ok().filter(|s| !s.is_empty())
}

/// One `<response>` of a `PROPFIND` answer.
#[derive(Debug, Default, PartialEq, Eq)]
struct Entry {
    href: String,
    folder: bool,
    size: u64,
    modified: Option<SystemTime>,
}

/// The entries of a `207 Multi-Status` body; elements matched by local name, since
/// servers choose their own namespace prefixes (`D:`, `d:`, none).
fn parse_multistatus(body: &str) -> Result<Vec<Entry>, String> {
    use quick_xml::events::Event;
    let mut reader = quick_xml::Reader::from_str(body);
    let mut out = Vec::new();
    let mut current: Option<Entry> = None;
    let mut text_of: Option<&'static str> = None;
    loop {
        let event = reader
            .read_event()
            .map_err(|e| format!("the server's PROPFIND answer is not valid XML: {e}"))?;
        match event {
            Event::Start(e) | Event::Empty(e) => match e.local_name().as_ref() {
                "response" => current = Some(Entry::default()),
                "collection" => {
                    if let Some(c) = current.as_mut() {
                        c.folder = true;
                    }
                }
                "href" => text_of = Some("href"),
                "getcontentlength" => text_of = Some("size"),
                "getlastmodified" => text_of = Some("modified"),
                _ => {}
            },
            Event::Text(t) => {
                if let (Some(what), Some(c)) = (text_of, current.as_mut()) {
                    let text = t.xml10_content();
                    let text = text.trim();
                    match what {
                        "href" => c.href.push_str(text),
                        "size" => c.size = text.parse().unwrap_or(0),
                        _ => c.modified = httpdate::parse_http_date(text).ok(),
                    }
                }
            }
            Event::GeneralRef(r) if text_of == Some("href") => {
                let named = match r.as_ref() {
                    "amp" => Some('&'),
                    "lt" => Some('<'),
                    "gt" => Some('>'),
                    "quot" => Some('"'),
                    "apos" => Some('\''),
                    _ => None,
                };
                let c = named.or_else(|| r.resolve_char_ref().ok().flatten());
                if let (Some(c), Some(entry)) = (c, current.as_mut()) {
                    entry.href.push(c);
                }
            }
            Event::End(e) => match e.local_name().as_ref() {
                "response" => out.extend(current.take()),
                "href" | "getcontentlength" | "getlastmodified" => text_of = None,
                _ => {}
            },
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multistatus_answer_gives_files_sizes_and_times() {
        let body = r#"<?xml version="1.0" encoding="UTF-8"?>
<D:multistatus xmlns:D="DAV:">
 <D:response><D:href>/dav/db/ltx/0/</D:href><D:propstat><D:prop>
  <D:resourcetype><D:collection/></D:resourcetype>
  <D:getlastmodified>Tue, 01 Dec 2026 10:00:00 GMT</D:getlastmodified></D:prop></D:propstat></D:response>
 <D:response><D:href>/dav/db/ltx/0/0000000000000001-0000000000000002.ltx</D:href><D:propstat><D:prop>
  <D:resourcetype/><D:getcontentlength>4096</D:getcontentlength>
  <D:getlastmodified>Tue, 01 Dec 2026 10:00:05 GMT</D:getlastmodified></D:prop></D:propstat></D:response>
 <d:response xmlns:d="DAV:"><d:href>/dav/db/ltx/0/a%20b.ltx.tmp</d:href><d:propstat><d:prop>
  <d:getcontentlength>7</d:getcontentlength></d:prop></d:propstat></d:response>
</D:multistatus>"#;
        let entries = parse_multistatus(body).unwrap();
        assert_eq!(entries.len(), 3);
        assert!(entries[0].folder);
        assert_eq!(
            entries[1],
            Entry {
                href: "/dav/db/ltx/0/0000000000000001-0000000000000002.ltx".into(),
                folder: false,
                size: 4096,
                modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_119_205)),
            }
        );
        assert_eq!(
            last_segment(&entries[2].href).as_deref(),
            Some("a b.ltx.tmp")
        );
        assert_eq!(entries[2].size, 7);
    }

    #[test]
    fn bad_xml_is_an_error_naming_propfind() {
        let err = parse_multistatus("<D:multistatus><D:response></D:oops>").unwrap_err();
        assert!(err.contains("PROPFIND"), "{err}");
    }

    #[test]
    fn paths_are_encoded_per_segment() {
        assert_eq!(encode_segment("my backups"), "my%20backups");
        assert_eq!(
            encode_segment("0000000000000001-0000000000000002.ltx"),
            "0000000000000001-0000000000000002.ltx"
        );
        assert_eq!(last_segment("/a/b%2Fc/"), Some("b/c".into()));
        assert_eq!(last_segment("https://h/x/y.ltx?v=1"), Some("y.ltx".into()));
        assert_eq!(join("", "ltx/0"), "ltx/0");
        assert_eq!(join("db", "ltx/0"), "db/ltx/0");
    }

    #[test]
    fn locked_throttled_and_server_errors_are_retried() {
        assert!(retryable(StatusCode::LOCKED));
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::BAD_GATEWAY));
        assert!(
            !retryable(StatusCode::INSUFFICIENT_STORAGE),
            "full stays full"
        );
        assert!(!retryable(StatusCode::UNAUTHORIZED));
        assert!(!retryable(StatusCode::NOT_FOUND));
    }
}

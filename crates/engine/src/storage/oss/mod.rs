//! A bucket in Alibaba Cloud OSS in Litestream 0.5's exact `oss` layout: objects
//! `<path>/<level %04x>/<min>-<max>.ltx` (S3's layout), each one's creation time (the
//! LTX header timestamp) in the user metadata header `x-oss-meta-litestream-timestamp`
//! (RFC 3339 with nanoseconds, as Go's `RFC3339Nano` prints it).
//!
//! Litestream talks to OSS through Alibaba's OSS Go SDK v2, which speaks OSS's own API
//! signed with OSS Signature V4 (`OSS4-HMAC-SHA256`, `x-oss-*` headers), not the S3
//! API. Tideline sends the same requests, over the `reqwest` client the other remote
//! backends use, signed by the pure functions of [`signing`] (checked against the
//! SDK's published vector): one signing scheme, so the test server verifies both
//! tools' requests with the same rules, and no dependence on OSS's S3 compatibility
//! layer (whose metadata and checksum handling differ from the SDK's).
//!
//! * **Endpoint**: `endpoint`, else `https://oss-<region>.aliyuncs.com`; requests are
//!   virtual-hosted (`bucket.<endpoint host>`), or path-style when the endpoint's host
//!   is an IP address, as the SDK does.
//! * **Uploads** are one PutObject streamed from the local file (atomic; OSS takes up
//!   to 5 GiB in one request, beyond any LTX file Litestream writes).
//! * **Listings** are ListObjectsV2 by level prefix with `LastModified` as the time,
//!   cached for the replicator (`storage/cache.rs`); exact listings (restore to a time)
//!   read each object's metadata with HeadObject, as Litestream does.
//! * **Reads** are GetObject, ranged where a part is wanted; the whole-file reader
//!   streams the body to the decoder through a small bounded queue.
//! * **Retries**: refused or dropped connections, `408`, `429` and `5xx` gateways and
//!   errors are retried with backoff; transfers share one semaphore per client.
//!
//! Failures are named for what to fix ([`RemoteFailure`]): a wrong key, no permission,
//! a missing bucket, the endpoint unreachable — never with the secret or a signature.

pub mod signing;
mod xml;

use std::io::Read;
use std::net::IpAddr;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::{Method, Response, StatusCode};
use tideline_ltx::{Txid, format_filename, parse_filename};
use tokio::sync::{Semaphore, mpsc};

use self::signing::{UNSIGNED_PAYLOAD, authorization, canonical_request, uri_encode};
use self::xml::{parse_error, parse_list};
use super::cache::{Cache, LevelCache};
use super::counters::{Counters, Op, RequestCounts};
use super::queue_reader::QueueReader;
use super::{
    FileInfo, MissingBucket, RemoteFailure, ReplicaClient, ReplicaError, ReplicaResult, check_level,
};
use crate::config::{OssReplicaConfig, Sensitive};

/// The user metadata header of the creation time (the SDK adds `x-oss-meta-` to
/// Litestream's `litestream-timestamp`).
pub const TIMESTAMP_HEADER: &str = "x-oss-meta-litestream-timestamp";
/// Timeout for connecting, and for a stalled response.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Transfers in flight per client.
const TRANSFERS: usize = 8;
/// Attempts of a request that failed in a way worth retrying.
const ATTEMPTS: u32 = 5;
/// First retry delay; doubled per attempt.
const RETRY_DELAY: Duration = Duration::from_millis(100);
/// Chunks of a whole-file read queued ahead of the decoder.
const READ_QUEUE: usize = 8;
/// The settings to check when the server refuses the credentials.
const CREDENTIAL_KEYS: &str =
    "access-key-id and secret-access-key (or OSS_ACCESS_KEY_ID and OSS_ACCESS_KEY_SECRET)";

/// An Alibaba Cloud OSS replica client.
#[derive(Debug, Clone)]
pub struct OssReplica {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// `scheme://host[:port]` requests go to (the bucket's host when virtual-hosted).
    origin: String,
    /// Path-style: the bucket is the URL's first segment.
    path_style: bool,
    bucket: String,
    region: String,
    /// Key prefix, no slashes around it.
    path: String,
    access_key_id: String,
    secret: Sensitive<String>,
    describe: String,
    cache: Cache,
    /// Set by the first write: this client is the replicator and may cache listings.
    writer: AtomicBool,
    counters: Counters,
    transfers: Semaphore,
    /// Keys per ListObjectsV2 page; `None` for the server's default.
    list_page: Option<u32>,
}

/// One request, before it is signed.
struct Call {
    method: Method,
    /// The object key, or `None` for the bucket itself.
    key: Option<String>,
    query: Vec<(&'static str, String)>,
    headers: Vec<(&'static str, String)>,
    body: Option<reqwest::Body>,
    bytes_up: u64,
}

impl Call {
    fn new(method: Method, key: Option<&str>) -> Call {
        Call {
            method,
            key: key.map(str::to_owned),
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            bytes_up: 0,
        }
    }
}

impl OssReplica {
    /// A client for the configured bucket and path. Nothing is sent until used.
    pub fn new(cfg: &OssReplicaConfig) -> ReplicaResult<OssReplica> {
        OssReplica::with_list_page(cfg, None)
    }

    /// Like [`new`](Self::new), listing `list_page` keys per page (tests reach the
    /// continuation token with few files).
    pub fn with_list_page(cfg: &OssReplicaConfig, list_page: Option<u32>) -> ReplicaResult<Self> {
        let describe = crate::config::ReplicaTarget::Oss(Box::new(cfg.clone())).to_string();
        let endpoint = cfg.endpoint_url();
        let (scheme, host) = endpoint.split_once("://").unwrap_or(("https", &endpoint));
        let host = host.split('/').next().unwrap_or(host);
        let path_style = host_is_ip(host);
        let origin = if path_style {
            format!("{scheme}://{host}")
        } else {
            format!("{scheme}://{}.{host}", cfg.bucket)
        };
        let http = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .read_timeout(TIMEOUT)
            .user_agent(concat!("tideline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ReplicaError::Remote {
                replica: describe.clone(),
                op: "connect",
                path: String::new(),
                failure: RemoteFailure::Other(format!(
                    "cannot set up the HTTP client: {}",
                    e.without_url()
                )),
            })?;
        Ok(OssReplica {
            inner: Arc::new(Inner {
                http,
                origin,
                path_style,
                bucket: cfg.bucket.clone(),
                region: cfg.region.clone(),
                path: cfg.path.clone(),
                access_key_id: cfg.access_key_id.clone(),
                secret: cfg.access_key_secret.clone(),
                describe,
                cache: Cache::default(),
                writer: AtomicBool::new(false),
                counters: Counters::new("oss"),
                transfers: Semaphore::new(TRANSFERS),
                list_page: list_page.filter(|n| *n > 0),
            }),
        })
    }

    /// Creates the bucket (PutBucket). Litestream never creates one, and neither does
    /// replication; this is for tests and first-time set-up tools.
    pub async fn create_bucket(&self) -> ReplicaResult<()> {
        let resp = self
            .send(Op::Multipart, "create bucket", "", || {
                let mut call = Call::new(Method::PUT, None);
                call.headers.push(("Content-Length", "0".into()));
                Ok(call)
            })
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            _ => Err(self.status_failure("create bucket", "", resp).await),
        }
    }

    /// `<path>/<level %04x>` (Litestream's `ltxPath` prefix).
    fn level_dir(&self, level: u8) -> String {
        format!("{}/{level:04x}", self.inner.path)
    }

    /// The object key of a file.
    fn object_key(&self, level: u8, min: Txid, max: Txid) -> String {
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

    /// The failure an unexpected answer means, from its status and OSS's error code.
    async fn status_failure(&self, op: &'static str, path: &str, resp: Response) -> ReplicaError {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let (code, message) = parse_error(&body);
        let code = code.unwrap_or_default();
        let mut detail = format!("{} {code}", status.as_u16());
        if let Some(m) = message {
            detail.push_str(": ");
            detail.push_str(&m);
        }
        let detail = detail.trim_end().to_owned();
        let failure = match (status, code.as_str()) {
            (_, "SignatureDoesNotMatch" | "InvalidAccessKeyId" | "InvalidSecurityToken")
            | (StatusCode::UNAUTHORIZED, _) => RemoteFailure::WrongCredentials {
                keys: CREDENTIAL_KEYS,
                detail,
            },
            (StatusCode::FORBIDDEN, _) => RemoteFailure::AccessDenied(detail),
            (StatusCode::NOT_FOUND, "NoSuchBucket") => {
                RemoteFailure::NoSuchBucket(Box::new(MissingBucket {
                    what: "bucket",
                    name: self.inner.bucket.clone(),
                    fix: format!(
                        "create it (OSS console, or ossutil mb oss://{}), or fix bucket: and region: in the replica config",
                        self.inner.bucket
                    ),
                }))
            }
            _ => RemoteFailure::Server {
                status: status.as_u16(),
                message: detail,
            },
        };
        self.fail(op, path, failure)
    }

    /// The signed request for `call`: `x-oss-date`, `Date`, the unsigned-payload
    /// marker and the OSS V4 `Authorization` header.
    fn request(&self, call: Call) -> reqwest::RequestBuilder {
        let key = call.key.as_deref().unwrap_or_default();
        let resource = format!("/{}/{key}", self.inner.bucket);
        let url_path = if self.inner.path_style {
            uri_encode(&resource, false)
        } else {
            format!("/{}", uri_encode(key, false))
        };
        let query: Vec<String> = call
            .query
            .iter()
            .map(|(k, v)| format!("{k}={}", uri_encode(v, true)))
            .collect();
        let query = query.join("&");
        let mut url = format!("{}{url_path}", self.inner.origin);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query);
        }
        let now = SystemTime::now();
        let datetime = signing_datetime(now);
        let mut headers = call.headers;
        headers.push(("x-oss-date", datetime.clone()));
        headers.push(("Date", httpdate::fmt_http_date(now)));
        headers.push(("x-oss-content-sha256", UNSIGNED_PAYLOAD.to_owned()));
        let signed: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let canonical = canonical_request(call.method.as_str(), &resource, &query, &signed);
        let auth = authorization(
            &self.inner.access_key_id,
            self.inner.secret.expose(),
            &datetime,
            &self.inner.region,
            &canonical,
        );
        let mut req = self.inner.http.request(call.method, url);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        req = req.header("Authorization", auth);
        if let Some(body) = call.body {
            req = req.body(body);
        }
        req
    }

    /// Sends the request `build` makes, retrying refused or dropped connections and
    /// the answers that mean "try again". Returns the first other answer.
    async fn send(
        &self,
        op: Op,
        name: &'static str,
        path: &str,
        build: impl Fn() -> ReplicaResult<Call>,
    ) -> ReplicaResult<Response> {
        let mut delay = RETRY_DELAY;
        let mut attempt = 1;
        loop {
            let call = build()?;
            self.inner.counters.count(op, call.bytes_up);
            let outcome = self.request(call).send().await;
            let retry = match &outcome {
                Ok(resp) => retryable(resp.status()),
                Err(e) => e.is_connect() || e.is_timeout() || e.is_request() || e.is_body(),
            };
            if !retry || attempt >= ATTEMPTS {
                return outcome.map_err(|e| self.fail(name, path, transport_failure(e)));
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(2));
            attempt += 1;
        }
    }

    /// One ListObjectsV2 page of `prefix`.
    async fn list_page(&self, prefix: &str, token: Option<&str>) -> ReplicaResult<xml::Page> {
        let resp = self
            .send(Op::List, "list", prefix, || {
                let mut call = Call::new(Method::GET, None);
                call.query.push(("list-type", "2".into()));
                call.query.push(("prefix", prefix.to_owned()));
                if let Some(n) = self.inner.list_page {
                    call.query.push(("max-keys", n.to_string()));
                }
                if let Some(t) = token {
                    call.query.push(("continuation-token", t.to_owned()));
                }
                Ok(call)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self.status_failure("list", prefix, resp).await);
        }
        let body = resp
            .text()
            .await
            .map_err(|e| self.fail("list", prefix, transport_failure(e)))?;
        self.inner.counters.count_download(body.len() as u64);
        parse_list(&body).map_err(|e| self.fail("list", prefix, RemoteFailure::Other(e)))
    }

    /// Lists `level` from the server, every page, with `LastModified` as the time.
    async fn list_remote(&self, level: u8) -> ReplicaResult<LevelCache> {
        let prefix = format!("{}/", self.level_dir(level));
        let mut out = LevelCache::new();
        let mut token: Option<String> = None;
        loop {
            let page = self.list_page(&prefix, token.as_deref()).await?;
            for object in page.objects {
                let Some(name) = object.key.strip_prefix(&prefix) else {
                    continue;
                };
                // Only this level's own files (not a deeper folder under the prefix).
                let Some((min, max)) = parse_filename(name).filter(|_| !name.contains('/')) else {
                    continue;
                };
                let created_at = object
                    .last_modified
                    .as_deref()
                    .and_then(|t| crate::time::parse_rfc3339(t).ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                let info = FileInfo {
                    level,
                    min_txid: min,
                    max_txid: max,
                    size: object.size,
                    created_at,
                };
                out.insert((min, max), info);
            }
            match page.next {
                Some(t) => token = Some(t),
                None => return Ok(out),
            }
        }
    }

    /// The creation time in `file`'s metadata (HeadObject), if it has one.
    async fn head_timestamp(&self, file: &FileInfo) -> ReplicaResult<Option<SystemTime>> {
        let key = self.object_key(file.level, file.min_txid, file.max_txid);
        let _permit = self.inner.transfers.acquire().await;
        let resp = self
            .send(Op::Head, "head", &key, || {
                Ok(Call::new(Method::HEAD, Some(&key)))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp
                .headers()
                .get(TIMESTAMP_HEADER)
                .and_then(|v| v.to_str().ok())
                .and_then(|t| crate::time::parse_rfc3339(t).ok())),
            StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.status_failure("head", &key, resp).await),
        }
    }

    /// Lists `level` with each file's creation time from its metadata.
    async fn list_with_metadata(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        let files: Vec<FileInfo> = self.list_remote(level).await?.into_values().collect();
        let mut tasks = tokio::task::JoinSet::new();
        for (i, f) in files.iter().enumerate() {
            let (this, f) = (self.clone(), f.clone());
            tasks.spawn(async move { (i, this.head_timestamp(&f).await) });
        }
        let mut files = files;
        while let Some(done) = tasks.join_next().await {
            let (i, got) = done.map_err(|e| ReplicaError::Internal(e.to_string()))?;
            if let Some(t) = got? {
                files[i].created_at = t;
            }
        }
        Ok(files)
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

    /// A GetObject of `file`, ranged when `range` is given.
    async fn get(&self, file: &FileInfo, range: Option<Range<u64>>) -> ReplicaResult<Response> {
        let key = self.object_key(file.level, file.min_txid, file.max_txid);
        let resp = self
            .send(Op::Get, "get", &key, || {
                let mut call = Call::new(Method::GET, Some(&key));
                if let Some(r) = &range {
                    call.headers
                        .push(("Range", format!("bytes={}-{}", r.start, r.end - 1)));
                    // Out-of-bounds ranges are an error, not the whole object (the SDK's
                    // `RangeBehavior: standard`).
                    call.headers
                        .push(("x-oss-range-behavior", "standard".into()));
                }
                Ok(call)
            })
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::RANGE_NOT_SATISFIABLE => Ok(resp),
            StatusCode::NOT_FOUND => {
                let failure = self.status_failure("get", &key, resp).await;
                if let ReplicaError::Remote {
                    failure: RemoteFailure::NoSuchBucket(_),
                    ..
                } = failure
                {
                    return Err(failure);
                }
                // The cache was wrong about this file: list again next time.
                self.inner.cache.invalidate(file.level);
                Err(ReplicaError::NotFound {
                    replica: self.inner.describe.clone(),
                    level: file.level,
                    name: file.filename(),
                })
            }
            _ => Err(self.status_failure("get", &key, resp).await),
        }
    }

    async fn read_bytes(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
        let end = range.end.min(file.size);
        if range.start >= end {
            return Ok(Vec::new());
        }
        let _permit = self.inner.transfers.acquire().await;
        let resp = self.get(file, Some(range.start..end)).await?;
        if resp.status() == StatusCode::RANGE_NOT_SATISFIABLE {
            return Ok(Vec::new());
        }
        let key = self.object_key(file.level, file.min_txid, file.max_txid);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.fail("get", &key, transport_failure(e)))?;
        self.inner.counters.count_download(bytes.len() as u64);
        Ok(bytes.to_vec())
    }

    /// One PutObject of `src` as `key`, with the creation time in its metadata.
    async fn upload(&self, key: &str, src: &Path, size: u64, at: SystemTime) -> ReplicaResult<()> {
        let resp = self
            .send(Op::Put, "put", key, || {
                let file = std::fs::File::open(src).map_err(|e| ReplicaError::Io {
                    replica: self.inner.describe.clone(),
                    op: "read",
                    path: src.display().to_string(),
                    source: e,
                })?;
                let mut call = Call::new(Method::PUT, Some(key));
                call.headers
                    .push(("Content-Type", "application/octet-stream".into()));
                call.headers.push(("Content-Length", size.to_string()));
                call.headers
                    .push((TIMESTAMP_HEADER, crate::time::format_rfc3339(at)));
                call.body = Some(reqwest::Body::from(tokio::fs::File::from_std(file)));
                call.bytes_up = size;
                Ok(call)
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_failure("put", key, resp).await)
        }
    }

    /// DeleteObject of one key; already gone is fine.
    async fn delete_object(&self, key: &str) -> ReplicaResult<()> {
        let resp = self
            .send(Op::Delete, "delete", key, || {
                Ok(Call::new(Method::DELETE, Some(key)))
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => match self.status_failure("delete", key, resp).await {
                e @ ReplicaError::Remote {
                    failure: RemoteFailure::NoSuchBucket(_),
                    ..
                } => Err(e),
                _ => Ok(()),
            },
            _ => Err(self.status_failure("delete", key, resp).await),
        }
    }

    /// A blocking reader of the whole of `file`, fed by a task on the runtime.
    fn reader(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        let key = self.object_key(file.level, file.min_txid, file.max_txid);
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            self.fail(
                "get",
                &key,
                RemoteFailure::Other("OSS reads need the tokio runtime".into()),
            )
        })?;
        let (tx, rx) = mpsc::channel::<ReplicaResult<bytes::Bytes>>(READ_QUEUE);
        let (this, file) = (self.clone(), file.clone());
        handle.spawn(async move {
            // The permit covers the request, not the body (a restore opens many readers
            // before it drains the first).
            let permit = this.inner.transfers.acquire().await;
            let got = this.get(&file, None).await;
            drop(permit);
            let mut resp = match got {
                Ok(r) => r,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            loop {
                let item = match resp.chunk().await {
                    Ok(Some(b)) => {
                        this.inner.counters.count_download(b.len() as u64);
                        Ok(b)
                    }
                    Ok(None) => break,
                    Err(e) => Err(this.fail("get", &key, transport_failure(e))),
                };
                let failed = item.is_err();
                if tx.send(item).await.is_err() || failed {
                    break;
                }
            }
        });
        Ok(Box::new(QueueReader::new(rx)))
    }
}

#[async_trait::async_trait]
impl ReplicaClient for OssReplica {
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

    /// Listings give `LastModified`; the exact time is in each object's metadata.
    async fn list_exact(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        check_level(level)?;
        self.list_with_metadata(level).await
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
        let key = self.object_key(level, min, max);
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
        if let Err(e) = self.upload(&key, src, size, created_at).await {
            // Whether the object landed is unknown: list this level again next time.
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
        self.inner.cache.lock()[usize::from(level)].record_write(&info);
        Ok(info)
    }

    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for f in files {
            let (this, f) = (self.clone(), f.clone());
            tasks.spawn(async move {
                let _permit = this.inner.transfers.acquire().await;
                let key = this.object_key(f.level, f.min_txid, f.max_txid);
                let result = this.delete_object(&key).await;
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

/// `yyyymmddThhmmssZ` in UTC, the `x-oss-date` form.
fn signing_datetime(t: SystemTime) -> String {
    let s = crate::time::format_rfc3339(t);
    // `2026-12-03T11:45:31[.fff]Z` → `20261203T114531Z`.
    let digits: String = s[..19]
        .chars()
        .filter(|c| c.is_ascii_digit() || *c == 'T')
        .collect();
    format!("{digits}Z")
}

/// True when `host` (with or without a port) is an IP address: the SDK then uses
/// path-style URLs.
fn host_is_ip(host: &str) -> bool {
    let bare = match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => h,
        _ => host,
    };
    let bare = bare.trim_start_matches('[').trim_end_matches(']');
    bare.parse::<IpAddr>().is_ok()
}

/// Answers worth another try.
fn retryable(status: StatusCode) -> bool {
    matches!(
        status,
        StatusCode::REQUEST_TIMEOUT
            | StatusCode::TOO_MANY_REQUESTS
            | StatusCode::INTERNAL_SERVER_ERROR
            | StatusCode::BAD_GATEWAY
            | StatusCode::SERVICE_UNAVAILABLE
            | StatusCode::GATEWAY_TIMEOUT
    )
}

/// What a failed request means: the endpoint unreachable, or something else.
fn transport_failure(e: reqwest::Error) -> RemoteFailure {
    let unreachable = e.is_connect() || e.is_timeout() || e.is_request();
    let e = e.without_url();
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let text = s.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = s.source();
    }
    if unreachable {
        RemoteFailure::Unreachable(detail)
    } else {
        RemoteFailure::Other(detail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(endpoint: Option<&str>) -> OssReplicaConfig {
        OssReplicaConfig {
            bucket: "bkt".into(),
            path: "db".into(),
            region: "cn-shanghai".into(),
            endpoint: endpoint.map(str::to_owned),
            access_key_id: "LTAIexample".into(),
            access_key_secret: Sensitive::new("TOPSECRETvalue".into()),
        }
    }

    #[test]
    fn debug_output_and_descriptions_hold_no_secret() {
        let client = OssReplica::new(&cfg(None)).unwrap();
        let shown = format!("{client:?} {}", client.describe());
        assert!(!shown.contains("TOPSECRET"), "{shown}");
        assert_eq!(client.describe(), "oss://bkt/db");
        assert_eq!(
            client.inner.origin,
            "https://bkt.oss-cn-shanghai.aliyuncs.com"
        );
        assert!(!client.inner.path_style);
    }

    #[test]
    fn ip_endpoints_are_path_style_as_in_the_sdk() {
        let client = OssReplica::new(&cfg(Some("http://127.0.0.1:9000"))).unwrap();
        assert_eq!(client.inner.origin, "http://127.0.0.1:9000");
        assert!(client.inner.path_style);
        assert!(host_is_ip("[::1]:80") && host_is_ip("10.0.0.1"));
        assert!(!host_is_ip("oss-cn-hangzhou.aliyuncs.com") && !host_is_ip("localhost:9000"));
        assert_eq!(
            client.object_key(9, Txid(1), Txid(0x1f)),
            "db/0009/0000000000000001-000000000000001f.ltx"
        );
    }

    #[test]
    fn signing_times_are_compact_utc() {
        let t = std::time::UNIX_EPOCH + Duration::from_millis(1_702_743_657_250);
        assert_eq!(signing_datetime(t), "20231216T162057Z");
    }

    #[test]
    fn throttling_and_server_errors_are_retried() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retryable(StatusCode::FORBIDDEN));
        assert!(!retryable(StatusCode::NOT_FOUND));
    }
}

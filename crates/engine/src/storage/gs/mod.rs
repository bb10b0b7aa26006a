//! A bucket in Google Cloud Storage (or an emulator) in Litestream 0.5's exact `gs`
//! layout: objects `<path>/ltx/<level>/<min>-<max>.ltx`, each one's creation time (the
//! LTX header timestamp) in custom metadata `litestream-timestamp` (RFC 3339 with
//! nanoseconds, as Go's `RFC3339Nano` prints it), which listings return at no extra
//! cost.
//!
//! The JSON API is spoken directly over the `reqwest` client the other remote backends
//! use, rather than through a Google SDK (none is official for Rust): the operations
//! Tideline needs are five (list objects, multipart insert, get media, delete, and
//! bucket insert for tests), and authentication is one signed JWT exchanged for an
//! access token (`auth.rs`).
//!
//! * **Authentication**: with `STORAGE_EMULATOR_HOST`, none (what Go's storage library
//!   does, so Litestream and Tideline reach the same emulator the same way); otherwise
//!   a bearer token from the service-account key `GOOGLE_APPLICATION_CREDENTIALS` names.
//! * **Uploads** are one multipart insert (`uploadType=multipart`: the object's JSON
//!   metadata, then its bytes), streamed from the local file with a `Content-Length`:
//!   atomic (a reader sees the whole object or none), in bounded memory.
//! * **Listings** are object lists by level prefix, every page, cached for the
//!   replicator as on S3 (the shared listing cache), so an idle database sends nothing.
//! * **Reads** are `alt=media` gets, ranged where a part is wanted; the whole-file
//!   reader streams the body to the decoder through a small bounded queue.
//! * **Retries**: a refused or dropped connection, `408`, `429`, `500`, `502`, `503` and
//!   `504` are retried with backoff; every transfer takes a permit from one semaphore
//!   per client, and requests are counted for `tideline status`.
//!
//! Failures are named for what to fix ([`RemoteFailure`]): a key file that cannot be
//! used or is refused, no permission, a missing bucket, the server unreachable — never
//! with the key or a token.

mod auth;

use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::{Method, Response, StatusCode};
use serde::Deserialize;
use tideline_ltx::{Txid, format_filename, parse_filename};
use tokio::io::AsyncReadExt;
use tokio::sync::{Semaphore, mpsc};

use self::auth::{ServiceAccount, TokenError, TokenSource};
use super::cache::{Cache, LevelCache};
use super::counters::{Counters, Op, RequestCounts};
use super::queue_reader::QueueReader;
use super::{
    FileInfo, MissingBucket, RemoteFailure, ReplicaClient, ReplicaError, ReplicaResult, check_level,
};
use crate::config::{CREDENTIALS_VAR, GsReplicaConfig};

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
/// Bytes read from the local file per chunk of an upload's body.
const UPLOAD_CHUNK: usize = 256 << 10;
/// The metadata key of the LTX creation time (Litestream's `MetadataKeyTimestamp`).
const TIMESTAMP_KEY: &str = "litestream-timestamp";
/// The settings to check when the server refuses the credentials.
const CREDENTIAL_KEYS: &str =
    "GOOGLE_APPLICATION_CREDENTIALS (the service-account key file) and the account's roles";

/// Sizes a [`GsReplica`] works in; [`Default`] is what [`GsReplica::new`] uses.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GsLimits {
    /// Objects per list page (`maxResults`); `None` for the server's (1000 on GCS).
    pub list_page: Option<u32>,
}

/// A Google Cloud Storage replica client.
#[derive(Debug, Clone)]
pub struct GsReplica {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// `scheme://host[:port]` of the JSON API.
    origin: String,
    bucket: String,
    /// Object name prefix, no slashes around it.
    path: String,
    /// `None` with an emulator: requests go unauthenticated.
    tokens: Option<TokenSource>,
    describe: String,
    cache: Cache,
    /// Set by the first write: this client is the replicator and may cache listings.
    writer: AtomicBool,
    counters: Counters,
    transfers: Semaphore,
    limits: GsLimits,
}

/// One request.
struct Call {
    method: Method,
    /// The URL's path after the origin, already encoded.
    path: String,
    query: Vec<(&'static str, String)>,
    headers: Vec<(&'static str, String)>,
    body: Option<reqwest::Body>,
    bytes_up: u64,
}

impl Call {
    fn new(method: Method, path: String) -> Call {
        Call {
            method,
            path,
            query: Vec::new(),
            headers: Vec::new(),
            body: None,
            bytes_up: 0,
        }
    }
}

/// What an operation's `404` means.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Missing {
    /// The bucket (lists and uploads name no object that could be missing).
    Bucket,
    /// The object, unless the server says it is the bucket.
    Object,
}

/// One page of an object list.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ListPage {
    #[serde(default)]
    items: Vec<ObjectItem>,
    next_page_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ObjectItem {
    name: String,
    /// A decimal string in the JSON API.
    #[serde(default)]
    size: Option<String>,
    #[serde(default)]
    time_created: Option<String>,
    #[serde(default)]
    metadata: Option<std::collections::HashMap<String, String>>,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<ErrorDetail>,
}

#[derive(Deserialize)]
struct ErrorDetail {
    message: Option<String>,
}

impl GsReplica {
    /// A client for the configured bucket and path; reads the key file, if one is
    /// used. Nothing is sent until used.
    pub fn new(cfg: &GsReplicaConfig) -> ReplicaResult<GsReplica> {
        GsReplica::with_limits(cfg, GsLimits::default())
    }

    /// Like [`new`](Self::new), working in the sizes `limits` gives.
    pub fn with_limits(cfg: &GsReplicaConfig, limits: GsLimits) -> ReplicaResult<GsReplica> {
        let describe = crate::config::ReplicaTarget::Gs(Box::new(cfg.clone())).to_string();
        let fail = |failure| ReplicaError::Remote {
            replica: describe.clone(),
            op: "connect",
            path: String::new(),
            failure,
        };
        let tokens = match (&cfg.emulator, &cfg.credentials_file) {
            (Some(_), _) => None,
            (None, Some(file)) => Some(TokenSource::new(ServiceAccount::load(file).map_err(
                |e| {
                    fail(RemoteFailure::BadCredentialsFile {
                        variable: CREDENTIALS_VAR,
                        detail: e.to_string(),
                    })
                },
            )?)),
            (None, None) => {
                return Err(fail(RemoteFailure::BadCredentialsFile {
                    variable: CREDENTIALS_VAR,
                    detail: "it is not set".into(),
                }));
            }
        };
        let http = reqwest::Client::builder()
            .connect_timeout(TIMEOUT)
            .read_timeout(TIMEOUT)
            .user_agent(concat!("tideline/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| {
                fail(RemoteFailure::Other(format!(
                    "cannot set up the HTTP client: {}",
                    e.without_url()
                )))
            })?;
        Ok(GsReplica {
            inner: Arc::new(Inner {
                http,
                origin: cfg.origin().to_owned(),
                bucket: cfg.bucket.clone(),
                path: cfg.path.clone(),
                tokens,
                describe,
                cache: Cache::default(),
                writer: AtomicBool::new(false),
                counters: Counters::new("gs"),
                transfers: Semaphore::new(TRANSFERS),
                limits: GsLimits {
                    list_page: limits.list_page.filter(|n| *n > 0),
                },
            }),
        })
    }

    /// Creates the bucket in project `project` if it does not exist. Litestream never
    /// creates one, and neither does replication; this is for tests and set-up tools.
    pub async fn create_bucket(&self, project: &str) -> ReplicaResult<()> {
        let body = serde_json::json!({ "name": self.inner.bucket }).to_string();
        let resp = self
            .send(Op::Multipart, "create bucket", "", || {
                let mut call = Call::new(Method::POST, "/storage/v1/b".into());
                call.query.push(("project", project.to_owned()));
                call.headers
                    .push(("Content-Type", "application/json".to_owned()));
                call.body = Some(reqwest::Body::from(body.clone()));
                call.bytes_up = body.len() as u64;
                Ok(call)
            })
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            _ => Err(self
                .status_failure("create bucket", "", resp, Missing::Bucket)
                .await),
        }
    }

    /// `<path>/ltx/<level>`.
    fn level_dir(&self, level: u8) -> String {
        if self.inner.path.is_empty() {
            format!("ltx/{level}")
        } else {
            format!("{}/ltx/{level}", self.inner.path)
        }
    }

    /// The object name of a file (Litestream's `LTXFilePath`).
    fn object_name(&self, level: u8, min: Txid, max: Txid) -> String {
        format!("{}/{}", self.level_dir(level), format_filename(min, max))
    }

    /// `/storage/v1/b/<bucket>/o[/<object>]`, encoded.
    fn object_path(&self, object: Option<&str>) -> String {
        let mut p = format!("/storage/v1/b/{}/o", encode(&self.inner.bucket));
        if let Some(o) = object {
            p.push('/');
            p.push_str(&encode(o));
        }
        p
    }

    fn fail(&self, op: &'static str, path: &str, failure: RemoteFailure) -> ReplicaError {
        ReplicaError::Remote {
            replica: self.inner.describe.clone(),
            op,
            path: path.to_owned(),
            failure,
        }
    }

    /// The failure an unexpected answer means, from its status and Google's message.
    async fn status_failure(
        &self,
        op: &'static str,
        path: &str,
        resp: Response,
        missing: Missing,
    ) -> ReplicaError {
        let status = resp.status();
        let body = resp.text().await.unwrap_or_default();
        let message = serde_json::from_str::<ErrorBody>(&body)
            .ok()
            .and_then(|b| b.error)
            .and_then(|e| e.message)
            .unwrap_or_default();
        let detail = format!("{} {message}", status.as_u16())
            .trim_end()
            .to_owned();
        let bucket_missing = missing == Missing::Bucket || message.contains("bucket");
        let failure = match status {
            StatusCode::UNAUTHORIZED => RemoteFailure::WrongCredentials {
                keys: CREDENTIAL_KEYS,
                detail,
            },
            StatusCode::FORBIDDEN => RemoteFailure::AccessDenied(detail),
            StatusCode::NOT_FOUND if bucket_missing => {
                RemoteFailure::NoSuchBucket(Box::new(MissingBucket {
                    what: "bucket",
                    name: self.inner.bucket.clone(),
                    fix: format!(
                        "create it (Cloud console, or gcloud storage buckets create gs://{}), or fix bucket: in the replica config",
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

    /// What a failed token exchange means.
    fn token_failure(&self, op: &'static str, path: &str, e: TokenError) -> ReplicaError {
        let failure = match &e {
            TokenError::Refused { .. } => RemoteFailure::WrongCredentials {
                keys: CREDENTIAL_KEYS,
                detail: e.to_string(),
            },
            TokenError::Unreachable { .. } => RemoteFailure::Unreachable(e.to_string()),
            TokenError::Malformed { .. } | TokenError::Sign => RemoteFailure::Other(e.to_string()),
        };
        self.fail(op, path, failure)
    }

    /// The request for `call`, with the bearer token when one is used.
    async fn request(
        &self,
        call: Call,
        op: &'static str,
        path: &str,
    ) -> ReplicaResult<reqwest::RequestBuilder> {
        let mut url = format!("{}{}", self.inner.origin, call.path);
        if !call.query.is_empty() {
            let q: Vec<String> = call
                .query
                .iter()
                .map(|(k, v)| format!("{k}={}", encode(v)))
                .collect();
            url.push('?');
            url.push_str(&q.join("&"));
        }
        let mut req = self.inner.http.request(call.method, url);
        if let Some(tokens) = &self.inner.tokens {
            let token = tokens
                .token(&self.inner.http)
                .await
                .map_err(|e| self.token_failure(op, path, e))?;
            req = req.bearer_auth(token);
        }
        for (name, value) in call.headers {
            req = req.header(name, value);
        }
        if let Some(body) = call.body {
            req = req.body(body);
        }
        Ok(req)
    }

    /// Sends the request `build` makes, retrying refused or dropped connections and
    /// the answers that mean "try again". Returns the first other answer, whatever its
    /// status.
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
            let outcome = self.request(call, name, path).await?.send().await;
            let retry = match &outcome {
                Ok(resp) if resp.status() == StatusCode::UNAUTHORIZED => {
                    // A token revoked early: the next request asks for a new one.
                    if let Some(t) = &self.inner.tokens {
                        t.forget().await;
                    }
                    false
                }
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

    /// One page of `prefix`'s objects, after `page`.
    async fn list_page(&self, prefix: &str, page: Option<&str>) -> ReplicaResult<ListPage> {
        let resp = self
            .send(Op::List, "list", prefix, || {
                let mut call = Call::new(Method::GET, self.object_path(None));
                call.query.push(("prefix", prefix.to_owned()));
                call.query.push((
                    "fields",
                    "items(name,size,timeCreated,metadata),nextPageToken".to_owned(),
                ));
                if let Some(n) = self.inner.limits.list_page {
                    call.query.push(("maxResults", n.to_string()));
                }
                if let Some(p) = page {
                    call.query.push(("pageToken", p.to_owned()));
                }
                Ok(call)
            })
            .await?;
        if !resp.status().is_success() {
            return Err(self
                .status_failure("list", prefix, resp, Missing::Bucket)
                .await);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| self.fail("list", prefix, transport_failure(e)))?;
        self.inner.counters.count_download(body.len() as u64);
        serde_json::from_slice(&body).map_err(|e| {
            self.fail(
                "list",
                prefix,
                RemoteFailure::Other(format!("malformed object list: {e}")),
            )
        })
    }

    /// Lists `level` from the server, every page.
    async fn list_remote(&self, level: u8) -> ReplicaResult<LevelCache> {
        let prefix = format!("{}/", self.level_dir(level));
        let mut out = LevelCache::new();
        let mut page: Option<String> = None;
        loop {
            let answer = self.list_page(&prefix, page.as_deref()).await?;
            for item in answer.items {
                if let Some(info) = file_info(level, &prefix, item) {
                    out.insert((info.min_txid, info.max_txid), info);
                }
            }
            match answer.next_page_token {
                Some(p) if !p.is_empty() => page = Some(p),
                _ => return Ok(out),
            }
        }
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

    /// A media get of `file`, ranged when `range` is given.
    async fn get(&self, file: &FileInfo, range: Option<Range<u64>>) -> ReplicaResult<Response> {
        let name = self.object_name(file.level, file.min_txid, file.max_txid);
        let resp = self
            .send(Op::Get, "get", &name, || {
                let mut call = Call::new(Method::GET, self.object_path(Some(&name)));
                call.query.push(("alt", "media".to_owned()));
                if let Some(r) = &range {
                    call.headers
                        .push(("Range", format!("bytes={}-{}", r.start, r.end - 1)));
                }
                Ok(call)
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(resp),
            StatusCode::NOT_FOUND => {
                let e = self
                    .status_failure("get", &name, resp, Missing::Object)
                    .await;
                if matches!(
                    &e,
                    ReplicaError::Remote {
                        failure: RemoteFailure::NoSuchBucket(_),
                        ..
                    }
                ) {
                    return Err(e);
                }
                // The cache was wrong about this file: list again next time.
                self.inner.cache.invalidate(file.level);
                Err(ReplicaError::NotFound {
                    replica: self.inner.describe.clone(),
                    level: file.level,
                    name: file.filename(),
                })
            }
            _ => Err(self
                .status_failure("get", &name, resp, Missing::Object)
                .await),
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
        let name = self.object_name(file.level, file.min_txid, file.max_txid);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.fail("get", &name, transport_failure(e)))?;
        self.inner.counters.count_download(bytes.len() as u64);
        Ok(bytes.to_vec())
    }

    /// Uploads `src` as object `name` in one multipart insert: the JSON metadata (with
    /// `litestream-timestamp`), then the file, streamed.
    async fn upload(
        &self,
        name: &str,
        src: &Path,
        size: u64,
        created_at: SystemTime,
    ) -> ReplicaResult<()> {
        let (head, tail, boundary) = multipart_frame(name, created_at);
        let total = head.len() as u64 + size + tail.len() as u64;
        let resp = self
            .send(Op::Put, "put", name, || {
                let file = std::fs::File::open(src).map_err(|e| ReplicaError::Io {
                    replica: self.inner.describe.clone(),
                    op: "read",
                    path: src.display().to_string(),
                    source: e,
                })?;
                let reader = AsyncReadExt::chain(
                    AsyncReadExt::chain(
                        std::io::Cursor::new(head.clone()),
                        tokio::fs::File::from_std(file).take(size),
                    ),
                    std::io::Cursor::new(tail.clone()),
                );
                let stream = tokio_util::io::ReaderStream::with_capacity(reader, UPLOAD_CHUNK);
                let mut call =
                    Call::new(Method::POST, format!("/upload{}", self.object_path(None)));
                call.query.push(("uploadType", "multipart".to_owned()));
                call.query.push(("fields", "name".to_owned()));
                call.headers.push((
                    "Content-Type",
                    format!("multipart/related; boundary={boundary}"),
                ));
                call.headers.push(("Content-Length", total.to_string()));
                call.body = Some(reqwest::Body::wrap_stream(stream));
                call.bytes_up = size;
                Ok(call)
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self
                .status_failure("put", name, resp, Missing::Bucket)
                .await)
        }
    }

    /// Deletes one object; already gone is fine.
    async fn delete_object(&self, name: &str) -> ReplicaResult<()> {
        let resp = self
            .send(Op::Delete, "delete", name, || {
                Ok(Call::new(Method::DELETE, self.object_path(Some(name))))
            })
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self
                .status_failure("delete", name, resp, Missing::Object)
                .await),
        }
    }

    /// A blocking reader of the whole of `file`, fed by a task on the runtime.
    fn reader(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        let name = self.object_name(file.level, file.min_txid, file.max_txid);
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            self.fail(
                "get",
                &name,
                RemoteFailure::Other("Google Cloud Storage reads need the tokio runtime".into()),
            )
        })?;
        let (tx, rx) = mpsc::channel::<ReplicaResult<bytes::Bytes>>(READ_QUEUE);
        let (this, file) = (self.clone(), file.clone());
        handle.spawn(async move {
            // The permit covers the request, not the body: a restore opens the readers of
            // many files before it drains the first, and a body that waits on the decoder
            // while holding a permit would starve the reader being drained.
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
                    Err(e) => Err(this.fail("get", &name, transport_failure(e))),
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
impl ReplicaClient for GsReplica {
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

    /// Listings carry the metadata timestamps, so they are exact already.
    async fn list_exact(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        check_level(level)?;
        Ok(self.list_remote(level).await?.into_values().collect())
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
        let name = self.object_name(level, min, max);
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
        if let Err(e) = self.upload(&name, src, size, created_at).await {
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
                let name = this.object_name(f.level, f.min_txid, f.max_txid);
                let result = this.delete_object(&name).await;
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

/// A listed object as a file of `level`, or `None` for anything else under the prefix
/// (another name, a deeper folder). The creation time is the metadata's, else the
/// object's own.
fn file_info(level: u8, prefix: &str, item: ObjectItem) -> Option<FileInfo> {
    let base = item.name.strip_prefix(prefix)?;
    let (min, max) = parse_filename(base)?;
    let created_at = item
        .metadata
        .as_ref()
        .and_then(|m| m.get(TIMESTAMP_KEY))
        .and_then(|t| crate::time::parse_rfc3339(t).ok())
        .or_else(|| {
            item.time_created
                .as_deref()
                .and_then(|t| crate::time::parse_rfc3339(t).ok())
        })
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Some(FileInfo {
        level,
        min_txid: min,
        max_txid: max,
        size: item.size.and_then(|s| s.parse().ok()).unwrap_or(0),
        created_at,
    })
}

/// The parts of a multipart insert around the file's bytes: the opening boundary and
/// the object's JSON metadata, the closing boundary, and the boundary itself.
fn multipart_frame(name: &str, created_at: SystemTime) -> (Vec<u8>, Vec<u8>, String) {
    let nanos = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_nanos();
    let boundary = format!("tideline-{nanos:x}");
    let meta = serde_json::json!({
        "name": name,
        "contentType": "application/octet-stream",
        "metadata": { TIMESTAMP_KEY: crate::time::format_rfc3339(created_at) },
    });
    let head = format!(
        "--{boundary}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{meta}\r\n\
         --{boundary}\r\nContent-Type: application/octet-stream\r\n\r\n"
    );
    let tail = format!("\r\n--{boundary}--\r\n");
    (head.into_bytes(), tail.into_bytes(), boundary)
}

/// Percent-encoding of a path segment or query value: everything but RFC 3986's
/// unreserved characters (so `/` in an object name is `%2F`, as the JSON API wants).
fn encode(s: &str) -> String {
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

/// What a failed request means: the server unreachable, or something else.
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

    #[test]
    fn object_names_are_encoded_whole_and_frames_carry_the_timestamp() {
        assert_eq!(encode("db/ltx/0/a b+c.ltx"), "db%2Fltx%2F0%2Fa%20b%2Bc.ltx");
        let t = SystemTime::UNIX_EPOCH + Duration::from_millis(1_800_000_000_123);
        let (head, tail, boundary) = multipart_frame("p/ltx/0/x.ltx", t);
        let head = String::from_utf8(head).unwrap();
        assert!(head.starts_with(&format!("--{boundary}\r\n")), "{head}");
        assert!(
            head.contains(r#""litestream-timestamp":"2027-01-15T08:00:00.123Z""#),
            "{head}"
        );
        assert!(head.ends_with("application/octet-stream\r\n\r\n"));
        assert_eq!(tail, format!("\r\n--{boundary}--\r\n").into_bytes());
    }

    #[test]
    fn listed_objects_take_the_metadata_time_and_only_this_level() {
        let item = |name: &str, meta: Option<&str>| ObjectItem {
            name: name.to_owned(),
            size: Some("42".into()),
            time_created: Some("2026-01-01T00:00:00.5Z".into()),
            metadata: meta.map(|m| [(TIMESTAMP_KEY.to_owned(), m.to_owned())].into()),
        };
        let p = "db/ltx/0/";
        let f = file_info(
            0,
            p,
            item(
                "db/ltx/0/0000000000000001-0000000000000002.ltx",
                Some("2026-02-02T00:00:00.25Z"),
            ),
        )
        .unwrap();
        assert_eq!((f.min_txid, f.max_txid, f.size), (Txid(1), Txid(2), 42));
        assert_eq!(
            f.created_at,
            crate::time::parse_rfc3339("2026-02-02T00:00:00.25Z").unwrap()
        );
        let g = file_info(
            0,
            p,
            item("db/ltx/0/0000000000000003-0000000000000003.ltx", None),
        )
        .unwrap();
        assert_eq!(
            g.created_at,
            crate::time::parse_rfc3339("2026-01-01T00:00:00.5Z").unwrap()
        );
        assert!(
            file_info(
                0,
                p,
                item("db/ltx/0/x/0000000000000003-0000000000000003.ltx", None)
            )
            .is_none()
        );
        assert!(file_info(0, p, item("db/ltx/0/notes.txt", None)).is_none());
    }

    #[test]
    fn throttling_and_server_errors_are_retried() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retryable(StatusCode::FORBIDDEN));
        assert!(!retryable(StatusCode::NOT_FOUND));
    }

    /// A JSON API stand-in on 127.0.0.1 for what the emulator lacks: it answers the
    /// first request `503`, then lists in two pages (the second asked by `pageToken`),
    /// keeping the request lines it got.
    fn paging_server() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
        use std::io::{BufRead, BufReader, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let origin = format!("http://{}", listener.local_addr().unwrap());
        let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let seen = std::sync::Arc::clone(&got);
        std::thread::spawn(move || {
            let item = |n: u64| {
                format!(
                    r#"{{"name":"db/ltx/0/{}","size":"{n}","metadata":{{"litestream-timestamp":"2026-01-01T00:00:0{n}Z"}}}}"#,
                    format_filename(Txid(n), Txid(n))
                )
            };
            for (i, stream) in listener.incoming().enumerate() {
                let Ok(mut stream) = stream else { return };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut first = String::new();
                let _ = reader.read_line(&mut first);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                seen.lock().unwrap().push(first.clone());
                let (status, body) = match i {
                    0 => (503, String::new()),
                    _ if first.contains("pageToken=p%2B2") => {
                        (200, format!(r#"{{"items":[{}]}}"#, item(3)))
                    }
                    _ => (
                        200,
                        format!(
                            r#"{{"items":[{},{}],"nextPageToken":"p+2"}}"#,
                            item(1),
                            item(2)
                        ),
                    ),
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        (origin, got)
    }

    #[tokio::test]
    async fn listings_follow_next_page_tokens_after_a_retried_503() {
        let (origin, got) = paging_server();
        let cfg = GsReplicaConfig {
            bucket: "b-1".into(),
            path: "db".into(),
            credentials_file: None,
            emulator: Some(origin),
        };
        let c = GsReplica::new(&cfg).unwrap();
        let files = c.list(0).await.unwrap();
        assert_eq!(
            files
                .iter()
                .map(|f| (f.max_txid.0, f.size))
                .collect::<Vec<_>>(),
            [(1, 1), (2, 2), (3, 3)]
        );
        assert_eq!(
            files[2].created_at,
            crate::time::parse_rfc3339("2026-01-01T00:00:03Z").unwrap()
        );
        let lines = got.lock().unwrap().clone();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[0].starts_with("GET /storage/v1/b/b-1/o?prefix=db%2Fltx%2F0%2F&"),
            "{lines:?}"
        );
        assert!(lines[2].contains("pageToken=p%2B2"), "{lines:?}");
        assert_eq!(c.request_counts().unwrap().list, 3);
    }

    #[test]
    fn a_key_file_that_cannot_be_used_names_the_variable() {
        let dir = std::env::temp_dir().join(format!("tideline-gs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let junk = dir.join("sa.json");
        std::fs::write(
            &junk,
            "{\"type\":\"service_account\",\"private_key\":\"SECRET\"}",
        )
        .unwrap();
        let cfg = GsReplicaConfig {
            bucket: "b-1".into(),
            path: "db".into(),
            credentials_file: Some(junk),
            emulator: None,
        };
        let e = GsReplica::new(&cfg).unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("GOOGLE_APPLICATION_CREDENTIALS"), "{msg}");
        assert!(msg.contains("private_key"), "{msg}");
        assert!(!msg.contains("SECRET"), "{msg}");
        assert!(e.needs_config_fix());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

//! A container in Azure Blob Storage (or Azurite, Microsoft's emulator) in Litestream
//! 0.5's exact `abs` layout: blobs `<path>/ltx/<level>/<min>-<max>.ltx`, each one's
//! creation time (the LTX header timestamp) in blob metadata `litestreamtimestamp`
//! (RFC 3339 with nanoseconds, as Go's `RFC3339Nano` prints it), which listings return
//! with `include=metadata` at no extra cost.
//!
//! The Blob REST API is spoken directly over the `reqwest` client the other remote
//! backends use, rather than through Azure's Rust SDK (pre-1.0, with an HTTP pipeline
//! of its own): the operations Tideline needs (Put Blob, Put Block / Put Block List,
//! List Blobs, Get Blob, Delete Blob) and Shared Key signing are small, and the
//! signing is a pure function tested on its own (`string_to_sign`).
//!
//! * **Authentication**: a SAS token is appended to every request's query (it wins
//!   over a key, as in Litestream); otherwise each request is signed with the account
//!   key (Shared Key: HMAC-SHA256 of the canonical request, `string_to_sign`).
//! * **Uploads** stream from the local file with a `Content-Length` (Put Blob, atomic:
//!   a reader sees the whole blob or none). Files above 256 MiB go up in 8 MiB blocks,
//!   a few in flight, committed by one Put Block List (also atomic).
//! * **Listings** are List Blobs by level prefix, cached for the replicator as on S3
//!   (the shared listing cache, `storage/cache.rs`), so an idle database sends nothing.
//! * **Reads** are Get Blob, ranged where a part is wanted; the whole-file reader
//!   streams the body to the decoder through a small bounded queue.
//! * **Retries**: a refused or dropped connection, `408`, `429`, `500`, `502`, `503`
//!   and `504` (Litestream's list) are retried with backoff; every transfer takes a
//!   permit from one semaphore per client, and requests are counted for
//!   `tideline status`.
//!
//! Failures are named for what to fix ([`RemoteFailure`]): a wrong key or token, no
//! permission, a missing container, the endpoint unreachable — never with the key, the
//! token or a request's signature.

mod signing;
mod xml;

use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use reqwest::{Method, Response, StatusCode};
use tideline_ltx::{Txid, format_filename, parse_filename};
use tokio::io::{AsyncReadExt, AsyncSeekExt};
use tokio::sync::{Semaphore, mpsc};

use self::signing::{encode_segment, sign, split_endpoint, string_to_sign};
use self::xml::{parse_error, parse_list};
use super::cache::{Cache, LevelCache};
use super::counters::{Counters, Op, RequestCounts};
use super::queue_reader::QueueReader;
use super::{
    FileInfo, MissingBucket, RemoteFailure, ReplicaClient, ReplicaError, ReplicaResult, check_level,
};
use crate::config::{AbsReplicaConfig, Sensitive};

/// The REST API version requests ask for (every operation used here has it).
const API_VERSION: &str = "2021-08-06";
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
/// Files up to this size go up in one Put Blob (Azure allows 5000 MiB; a retry of a
/// larger single request would resend too much).
const SINGLE_PUT_LIMIT: u64 = 256 << 20;
/// Block size above [`SINGLE_PUT_LIMIT`].
const BLOCK_SIZE: u64 = 8 << 20;
/// Blocks of one file in flight at once (memory: this many blocks).
const BLOCKS_IN_FLIGHT: usize = 4;
/// The settings to check when the server refuses the credentials.
const CREDENTIAL_KEYS: &str = "account-name and account-key (or sas-token)";

/// Sizes an [`AbsReplica`] works in; [`Default`] is what [`AbsReplica::new`] uses.
/// Tests lower them to reach the block upload and listing pages with little data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbsLimits {
    /// Files above this many bytes go up in blocks (default 256 MiB).
    pub single_put_limit: u64,
    /// The block size above it (default 8 MiB).
    pub block_size: u64,
    /// Blobs per List Blobs page (`maxresults`); `None` for the server's (5000 on Azure).
    pub list_page: Option<u32>,
}

impl Default for AbsLimits {
    fn default() -> AbsLimits {
        AbsLimits {
            single_put_limit: SINGLE_PUT_LIMIT,
            block_size: BLOCK_SIZE,
            list_page: None,
        }
    }
}

/// An Azure Blob Storage replica client.
#[derive(Debug, Clone)]
pub struct AbsReplica {
    inner: Arc<Inner>,
}

/// How requests prove who sends them.
#[derive(Debug)]
enum Auth {
    /// Shared Key: the account and its decoded key.
    SharedKey {
        account: String,
        key: Sensitive<Vec<u8>>,
    },
    /// A SAS token, appended to the query (no leading `?`).
    Sas(Sensitive<String>),
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// `scheme://host[:port]`.
    origin: String,
    /// The endpoint's own path (`/devstoreaccount1` for Azurite), or empty.
    base_path: String,
    container: String,
    /// Blob name prefix, no slashes around it.
    path: String,
    auth: Auth,
    describe: String,
    cache: Cache,
    /// Set by the first write: this client is the replicator and may cache listings.
    writer: AtomicBool,
    counters: Counters,
    transfers: Semaphore,
    limits: AbsLimits,
}

/// One request, before it is signed.
struct Call {
    method: Method,
    /// The blob name (unencoded), or `None` for the container itself.
    blob: Option<String>,
    query: Vec<(&'static str, String)>,
    headers: Vec<(&'static str, String)>,
    body: Option<reqwest::Body>,
    bytes_up: u64,
}

impl AbsReplica {
    /// A client for the configured container and path. Nothing is sent until used.
    pub fn new(cfg: &AbsReplicaConfig) -> ReplicaResult<AbsReplica> {
        AbsReplica::with_limits(cfg, AbsLimits::default())
    }

    /// Like [`new`](Self::new), working in the sizes `limits` gives.
    pub fn with_limits(cfg: &AbsReplicaConfig, limits: AbsLimits) -> ReplicaResult<AbsReplica> {
        let describe = crate::config::ReplicaTarget::Abs(Box::new(cfg.clone())).to_string();
        let fail = |failure| ReplicaError::Remote {
            replica: describe.clone(),
            op: "connect",
            path: String::new(),
            failure,
        };
        let auth = match (&cfg.sas_token, &cfg.account_name, &cfg.account_key) {
            (Some(token), _, _) => Auth::Sas(token.clone()),
            (None, Some(account), Some(key)) => {
                let raw = aws_smithy_types::base64::decode(key.expose().trim()).map_err(|_| {
                    fail(RemoteFailure::WrongCredentials {
                        keys: "account-key",
                        detail: "the account key is not valid base64".into(),
                    })
                })?;
                Auth::SharedKey {
                    account: account.clone(),
                    key: Sensitive::new(raw),
                }
            }
            _ => {
                return Err(fail(RemoteFailure::WrongCredentials {
                    keys: CREDENTIAL_KEYS,
                    detail: "no account key or SAS token".into(),
                }));
            }
        };
        let endpoint = cfg.endpoint_url();
        let (origin, base_path) = split_endpoint(&endpoint);
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
        Ok(AbsReplica {
            inner: Arc::new(Inner {
                http,
                origin,
                base_path,
                container: cfg.bucket.clone(),
                path: cfg.path.clone(),
                auth,
                describe,
                cache: Cache::default(),
                writer: AtomicBool::new(false),
                counters: Counters::new("abs"),
                transfers: Semaphore::new(TRANSFERS),
                limits: AbsLimits {
                    single_put_limit: limits.single_put_limit.max(1),
                    block_size: limits.block_size.max(1),
                    list_page: limits.list_page.filter(|n| *n > 0),
                },
            }),
        })
    }

    /// Creates the container if it does not exist. Litestream never creates one, and
    /// neither does replication; this is for tests and first-time set-up tools.
    pub async fn create_container(&self) -> ReplicaResult<()> {
        let resp = self
            .send(Op::Multipart, "create container", "", || {
                Ok(Call {
                    method: Method::PUT,
                    blob: None,
                    query: vec![("restype", "container".into())],
                    headers: vec![("Content-Length", "0".into())],
                    body: None,
                    bytes_up: 0,
                })
            })
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::CONFLICT => Ok(()),
            _ => Err(self.status_failure("create container", "", resp).await),
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

    /// The blob name of a file (Litestream's `LTXFilePath`).
    fn blob_name(&self, level: u8, min: Txid, max: Txid) -> String {
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

    /// The failure an unexpected answer means, from its status and Azure's error code.
    async fn status_failure(&self, op: &'static str, path: &str, resp: Response) -> ReplicaError {
        let status = resp.status();
        let header_code = resp
            .headers()
            .get("x-ms-error-code")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let body = resp.text().await.unwrap_or_default();
        let (body_code, message) = parse_error(&body);
        let code = header_code.or(body_code).unwrap_or_default();
        let mut detail = format!("{} {code}", status.as_u16());
        if let Some(m) = message {
            detail.push_str(": ");
            detail.push_str(&m);
        }
        let detail = self.scrub(detail.trim_end());
        // Azure says AuthenticationFailed for a wrong key or token; Azurite says
        // AuthorizationFailure with Azure's "failed to authenticate" message.
        let refused = status == StatusCode::UNAUTHORIZED
            || code == "AuthenticationFailed"
            || detail.contains("failed to authenticate");
        let failure = match (status, code.as_str()) {
            (StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED, _) if refused => {
                RemoteFailure::WrongCredentials {
                    keys: CREDENTIAL_KEYS,
                    detail,
                }
            }
            (StatusCode::FORBIDDEN, _) => RemoteFailure::AccessDenied(detail),
            (StatusCode::NOT_FOUND, "ContainerNotFound") => {
                RemoteFailure::NoSuchBucket(Box::new(MissingBucket {
                    what: "container",
                    name: self.inner.container.clone(),
                    fix: format!(
                        "create it (Azure portal, or az storage container create --name {}), or fix bucket: in the replica config",
                        self.inner.container
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

    /// `text` with the SAS token, if any, replaced.
    fn scrub(&self, text: &str) -> String {
        match &self.inner.auth {
            Auth::Sas(token) if !token.expose().is_empty() => {
                text.replace(token.expose().as_str(), "<redacted>")
            }
            _ => text.to_owned(),
        }
    }

    /// The request for `call`: its URL (with the SAS token, if that is the
    /// credential), `x-ms-date` and `x-ms-version`, and the Shared Key signature.
    fn request(&self, call: Call) -> reqwest::RequestBuilder {
        let mut resource = format!("/{}", encode_segment(&self.inner.container));
        if let Some(blob) = &call.blob {
            for segment in blob.split('/') {
                resource.push('/');
                resource.push_str(&encode_segment(segment));
            }
        }
        let path = format!("{}{resource}", self.inner.base_path);
        let mut query: Vec<String> = call
            .query
            .iter()
            .map(|(k, v)| format!("{k}={}", encode_segment(v)))
            .collect();
        if let Auth::Sas(token) = &self.inner.auth {
            query.push(token.expose().clone());
        }
        let mut url = format!("{}{path}", self.inner.origin);
        if !query.is_empty() {
            url.push('?');
            url.push_str(&query.join("&"));
        }
        let mut headers = call.headers;
        headers.push(("x-ms-date", httpdate::fmt_http_date(SystemTime::now())));
        headers.push(("x-ms-version", API_VERSION.to_owned()));
        if let Auth::SharedKey { account, key } = &self.inner.auth {
            let query: Vec<(&str, &str)> =
                call.query.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let hdrs: Vec<(&str, &str)> = headers.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let sts = string_to_sign(call.method.as_str(), account, &path, &query, &hdrs);
            headers.push((
                "Authorization",
                format!("SharedKey {account}:{}", sign(key.expose(), &sts)),
            ));
        }
        let mut req = self.inner.http.request(call.method, url);
        for (name, value) in headers {
            req = req.header(name, value);
        }
        if let Some(body) = call.body {
            req = req.body(body);
        }
        req
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

    /// Lists `level` from the server, every page.
    async fn list_remote(&self, level: u8) -> ReplicaResult<LevelCache> {
        let prefix = format!("{}/", self.level_dir(level));
        let mut out = LevelCache::new();
        let mut marker: Option<String> = None;
        loop {
            let resp = self
                .send(Op::List, "list", &prefix, || {
                    let mut query = vec![
                        ("restype", "container".to_owned()),
                        ("comp", "list".to_owned()),
                        ("prefix", prefix.clone()),
                        ("include", "metadata".to_owned()),
                    ];
                    if let Some(n) = self.inner.limits.list_page {
                        query.push(("maxresults", n.to_string()));
                    }
                    if let Some(m) = &marker {
                        query.push(("marker", m.clone()));
                    }
                    Ok(Call {
                        method: Method::GET,
                        blob: None,
                        query,
                        headers: Vec::new(),
                        body: None,
                        bytes_up: 0,
                    })
                })
                .await?;
            if !resp.status().is_success() {
                return Err(self.status_failure("list", &prefix, resp).await);
            }
            let body = resp
                .text()
                .await
                .map_err(|e| self.fail("list", &prefix, transport_failure(e)))?;
            self.inner.counters.count_download(body.len() as u64);
            let page = parse_list(&body)
                .map_err(|e| self.fail("list", &prefix, RemoteFailure::Other(e)))?;
            for blob in page.blobs {
                let name = blob.name.rsplit('/').next().unwrap_or_default();
                let Some((min, max)) = parse_filename(name) else {
                    continue;
                };
                // Only this level's own blobs (not a deeper folder under the prefix).
                if blob.name.len() != prefix.len() + name.len() {
                    continue;
                }
                let created_at = blob
                    .timestamp
                    .as_deref()
                    .and_then(|t| crate::time::parse_rfc3339(t).ok())
                    .or_else(|| {
                        blob.creation_time
                            .as_deref()
                            .and_then(|t| httpdate::parse_http_date(t).ok())
                    })
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.insert(
                    (min, max),
                    FileInfo {
                        level,
                        min_txid: min,
                        max_txid: max,
                        size: blob.size,
                        created_at,
                    },
                );
            }
            match page.next_marker {
                Some(m) if !m.is_empty() => marker = Some(m),
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

    /// A Get Blob of `file`, ranged when `range` is given.
    async fn get(&self, file: &FileInfo, range: Option<Range<u64>>) -> ReplicaResult<Response> {
        let name = self.blob_name(file.level, file.min_txid, file.max_txid);
        let resp = self
            .send(Op::Get, "get", &name, || {
                let mut headers = Vec::new();
                if let Some(r) = &range {
                    headers.push(("Range", format!("bytes={}-{}", r.start, r.end - 1)));
                }
                Ok(Call {
                    method: Method::GET,
                    blob: Some(name.clone()),
                    query: Vec::new(),
                    headers,
                    body: None,
                    bytes_up: 0,
                })
            })
            .await?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            StatusCode::RANGE_NOT_SATISFIABLE => Ok(resp),
            StatusCode::NOT_FOUND
                if resp
                    .headers()
                    .get("x-ms-error-code")
                    .is_none_or(|c| c.as_bytes() == b"BlobNotFound") =>
            {
                // The cache was wrong about this file: list again next time.
                self.inner.cache.invalidate(file.level);
                Err(ReplicaError::NotFound {
                    replica: self.inner.describe.clone(),
                    level: file.level,
                    name: file.filename(),
                })
            }
            _ => Err(self.status_failure("get", &name, resp).await),
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
        let name = self.blob_name(file.level, file.min_txid, file.max_txid);
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| self.fail("get", &name, transport_failure(e)))?;
        self.inner.counters.count_download(bytes.len() as u64);
        Ok(bytes.to_vec())
    }

    /// The headers every upload carries: the content type and the creation time.
    fn blob_headers(
        created_at: SystemTime,
        content_type_key: &'static str,
    ) -> Vec<(&'static str, String)> {
        vec![
            (content_type_key, "application/octet-stream".to_owned()),
            (
                "x-ms-meta-litestreamtimestamp",
                crate::time::format_rfc3339(created_at),
            ),
        ]
    }

    /// Uploads `src` as blob `name`: one Put Blob, or blocks and a block list.
    async fn upload(
        &self,
        name: &str,
        src: &Path,
        size: u64,
        created_at: SystemTime,
    ) -> ReplicaResult<()> {
        if size > self.inner.limits.single_put_limit {
            return self.upload_blocks(name, src, size, created_at).await;
        }
        let resp = self
            .send(Op::Put, "put", name, || {
                let file = std::fs::File::open(src).map_err(|e| ReplicaError::Io {
                    replica: self.inner.describe.clone(),
                    op: "read",
                    path: src.display().to_string(),
                    source: e,
                })?;
                let mut headers = AbsReplica::blob_headers(created_at, "Content-Type");
                headers.push(("Content-Length", size.to_string()));
                headers.push(("x-ms-blob-type", "BlockBlob".to_owned()));
                headers.push(("x-ms-access-tier", "Hot".to_owned()));
                Ok(Call {
                    method: Method::PUT,
                    blob: Some(name.to_owned()),
                    query: Vec::new(),
                    headers,
                    body: Some(reqwest::Body::from(tokio::fs::File::from_std(file))),
                    bytes_up: size,
                })
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_failure("put", name, resp).await)
        }
    }

    /// Put Block for each `block_size` part (a few in flight), then Put Block List.
    async fn upload_blocks(
        &self,
        name: &str,
        src: &Path,
        size: u64,
        created_at: SystemTime,
    ) -> ReplicaResult<()> {
        let block_size = self.inner.limits.block_size;
        let count = size.div_ceil(block_size);
        let ids: Vec<String> = (0..count)
            .map(|i| aws_smithy_types::base64::encode(format!("tideline-block-{i:08}")))
            .collect();
        let mut tasks = tokio::task::JoinSet::new();
        let mut next = 0u64;
        let mut first_error = None;
        while next < count || !tasks.is_empty() {
            while next < count && tasks.len() < BLOCKS_IN_FLIGHT && first_error.is_none() {
                let (this, src, name, id) = (
                    self.clone(),
                    src.to_owned(),
                    name.to_owned(),
                    ids[usize::try_from(next).unwrap_or(usize::MAX)].clone(),
                );
                let offset = next * block_size;
                let len = block_size.min(size - offset);
                tasks.spawn(async move { this.put_block(&name, &src, offset, len, id).await });
                next += 1;
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            let result = done.map_err(|e| ReplicaError::Internal(e.to_string()))?;
            if let Err(e) = result {
                first_error.get_or_insert(e);
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let mut body = String::from(r#"<?xml version="1.0" encoding="utf-8"?><BlockList>"#);
        for id in &ids {
            body.push_str("<Latest>");
            body.push_str(id);
            body.push_str("</Latest>");
        }
        body.push_str("</BlockList>");
        let resp = self
            .send(Op::Multipart, "put block list", name, || {
                let mut headers = AbsReplica::blob_headers(created_at, "x-ms-blob-content-type");
                headers.push(("Content-Length", body.len().to_string()));
                headers.push(("Content-Type", "application/xml".to_owned()));
                headers.push(("x-ms-access-tier", "Hot".to_owned()));
                Ok(Call {
                    method: Method::PUT,
                    blob: Some(name.to_owned()),
                    query: vec![("comp", "blocklist".to_owned())],
                    headers,
                    body: Some(reqwest::Body::from(body.clone())),
                    bytes_up: body.len() as u64,
                })
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_failure("put block list", name, resp).await)
        }
    }

    /// One Put Block of bytes `offset..offset + len` of `src`.
    async fn put_block(
        &self,
        name: &str,
        src: &Path,
        offset: u64,
        len: u64,
        id: String,
    ) -> ReplicaResult<()> {
        let io = |e| ReplicaError::Io {
            replica: self.inner.describe.clone(),
            op: "read",
            path: src.display().to_string(),
            source: e,
        };
        let mut file = tokio::fs::File::open(src).await.map_err(io)?;
        file.seek(std::io::SeekFrom::Start(offset))
            .await
            .map_err(io)?;
        let mut buf = vec![0u8; usize::try_from(len).unwrap_or(usize::MAX)];
        file.read_exact(&mut buf).await.map_err(io)?;
        let data = bytes::Bytes::from(buf);
        let resp = self
            .send(Op::Put, "put block", name, || {
                Ok(Call {
                    method: Method::PUT,
                    blob: Some(name.to_owned()),
                    query: vec![("comp", "block".to_owned()), ("blockid", id.clone())],
                    headers: vec![("Content-Length", len.to_string())],
                    body: Some(reqwest::Body::from(data.clone())),
                    bytes_up: len,
                })
            })
            .await?;
        if resp.status().is_success() {
            Ok(())
        } else {
            Err(self.status_failure("put block", name, resp).await)
        }
    }

    /// Delete Blob of one name; already gone is fine.
    async fn delete_blob(&self, name: &str) -> ReplicaResult<()> {
        let resp = self
            .send(Op::Delete, "delete", name, || {
                Ok(Call {
                    method: Method::DELETE,
                    blob: Some(name.to_owned()),
                    query: Vec::new(),
                    headers: Vec::new(),
                    body: None,
                    bytes_up: 0,
                })
            })
            .await?;
        match resp.status() {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            _ => Err(self.status_failure("delete", name, resp).await),
        }
    }

    /// A blocking reader of the whole of `file`, fed by a task on the runtime.
    fn reader(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        let name = self.blob_name(file.level, file.min_txid, file.max_txid);
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            self.fail(
                "get",
                &name,
                RemoteFailure::Other("Azure Blob Storage reads need the tokio runtime".into()),
            )
        })?;
        let (tx, rx) = mpsc::channel::<ReplicaResult<bytes::Bytes>>(READ_QUEUE);
        let (this, file) = (self.clone(), file.clone());
        handle.spawn(async move {
            // The permit covers the request, not the body: a restore opens the readers of
            // many files before it drains the first, and a body that waits on the decoder
            // while holding a permit would starve the reader being drained (a deadlock
            // once more files are open than there are permits).
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
                let next = resp
                    .chunk()
                    .await
                    .map_err(|e| this.fail("get", &name, transport_failure(e)));
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
impl ReplicaClient for AbsReplica {
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
        let name = self.blob_name(level, min, max);
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
            // Whether the blob landed is unknown: list this level again next time.
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
                let name = this.blob_name(f.level, f.min_txid, f.max_txid);
                let result = this.delete_blob(&name).await;
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

/// Answers worth another try (Litestream's list).
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

/// What a failed request means: the endpoint unreachable, or something else. The URL
/// is dropped from the message: with a SAS token it holds the token.
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

    /// Azurite's well-known development account key (public, from Microsoft's docs).
    const DEV_KEY: &str =
        "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

    #[test]
    fn debug_output_and_descriptions_hold_no_key_or_token() {
        let mut cfg = AbsReplicaConfig {
            account_name: Some("acct".into()),
            account_key: Some(Sensitive::new(DEV_KEY.into())),
            sas_token: None,
            bucket: "ctr".into(),
            path: "db".into(),
            endpoint: None,
        };
        let keyed = AbsReplica::new(&cfg).unwrap();
        let shown = format!("{keyed:?} {}", keyed.describe());
        assert!(!shown.contains(&DEV_KEY[..12]), "{shown}");
        assert!(!shown.contains("[17, 188"), "no key bytes: {shown}");
        assert!(shown.contains("<redacted>"), "{shown}");
        assert_eq!(keyed.describe(), "abs://acct@ctr/db");
        cfg.sas_token = Some(Sensitive::new("sv=2019-12-12&sig=SECRETSIG".into()));
        let sas = AbsReplica::new(&cfg).unwrap();
        assert!(!format!("{sas:?}").contains("SECRETSIG"));
        // A key that is not base64 is named, and not shown.
        cfg.sas_token = None;
        cfg.account_key = Some(Sensitive::new("not base64!".into()));
        let e = AbsReplica::new(&cfg).unwrap_err().to_string();
        assert!(
            e.contains("account-key") && !e.contains("not base64!"),
            "{e}"
        );
    }

    #[test]
    fn throttling_and_server_errors_are_retried() {
        assert!(retryable(StatusCode::TOO_MANY_REQUESTS));
        assert!(retryable(StatusCode::INTERNAL_SERVER_ERROR));
        assert!(retryable(StatusCode::SERVICE_UNAVAILABLE));
        assert!(!retryable(StatusCode::FORBIDDEN));
        assert!(!retryable(StatusCode::NOT_FOUND));
        assert!(!retryable(StatusCode::NOT_IMPLEMENTED));
    }
}

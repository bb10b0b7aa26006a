//! An S3 or S3-compatible bucket (AWS, MinIO, R2, B2, Tigris, Spaces…) in Litestream
//! 0.5's exact S3 layout: `<path>/<level as %04x>/<min>-<max>.ltx`, with the LTX
//! header timestamp kept as user metadata `litestream-timestamp`.
//!
//! Cost is a feature here, so the client is careful about requests:
//! * **Listing cache.** Tideline is the only writer of its replica while it runs, so
//!   once a client has written (it is the replicator), each level is listed once and
//!   then kept true by the client's own writes and deletes; an idle database makes no
//!   requests at all. A level is listed again after something went wrong with it (a
//!   failed request, a missing file), and whenever asked for a fresh listing
//!   ([`ReplicaClient::list_fresh`], the maintainer's periodic re-list), which is how
//!   another writer or a lifecycle rule is noticed. Writes and deletes made while a
//!   listing is in flight are applied over it. Clients that only read (restores,
//!   status) never cache: someone else is writing.
//! * **Uploads** stream from the local file: one PUT below `part-size`, else a
//!   multipart upload with `concurrency` parts in flight, its parts grown past
//!   `part-size` where needed to stay within S3's 10,000 parts, and aborted when a
//!   part or the completion fails.
//! * **Deletes** go in `DeleteObjects` batches of 1000.
//! * **Reads** are ranged GETs; a whole-file reader fetches large files in chunks,
//!   several at once, ahead of the decoder, with memory bounded by the chunks in
//!   flight. Every transfer takes a permit from one semaphore per client.
//! * **Counters** of requests (every attempt, retries included) and bytes, by
//!   operation, are kept for `tideline status`.
//!
//! Failures are named for what the user must fix (wrong credentials, missing bucket,
//! unreachable endpoint, clock skew, access denied, wrong region), always with the
//! bucket and endpoint and never the secret. Throttling and dropped connections are
//! retried with backoff by the SDK (and by the chunk reader for bodies cut short).

use std::collections::BTreeMap;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use aws_credential_types::provider::{ProvideCredentials, future};
use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::{
    BehaviorVersion, ConfigBag, Credentials, Intercept, Region, RequestChecksumCalculation,
    ResponseChecksumValidation, RuntimeComponents, SharedCredentialsProvider,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, ObjectIdentifier};
use serde::{Deserialize, Serialize};
use tideline_ltx::{Txid, format_filename, parse_filename};
use tokio::sync::{Semaphore, mpsc};

use super::{FileInfo, ReplicaClient, ReplicaError, ReplicaResult, check_level};
use crate::config::S3ReplicaConfig;
use crate::time::{format_rfc3339, parse_rfc3339};

/// User metadata key holding the LTX header timestamp (RFC 3339, Go's RFC3339Nano).
const TIMESTAMP_KEY: &str = "litestream-timestamp";
/// DeleteObjects takes at most this many keys.
const DELETE_BATCH: usize = 1000;
/// Size of one ranged GET of a whole-file read.
const READ_CHUNK: u64 = 4 * 1024 * 1024;
/// Ranged GETs of one file in flight ahead of the reader. Servers serve one stream at
/// a rate well below what the decoder takes (the test server ~110 MB/s, S3 itself
/// tens of MB/s per connection); measured on a 277 MB restore from the test server:
/// 2 in flight 2.46 s, 4 1.86 s, 8 1.35 s. At most `READ_AHEAD + 2` chunks are held.
const READ_AHEAD: usize = 6;
/// Env override of READ_AHEAD for measurements (`TIDELINE_S3_READ_AHEAD`).
fn read_ahead() -> usize {
    std::env::var("TIDELINE_S3_READ_AHEAD")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|&n| (1..=64).contains(&n))
        .unwrap_or(READ_AHEAD)
}
/// Attempts at a chunk whose body was cut short (the SDK retries the rest).
const BODY_ATTEMPTS: u32 = 4;
/// HEADs in flight when listing with exact creation times.
const HEAD_CONCURRENCY: usize = 32;
/// S3's most parts in one multipart upload.
pub const MAX_PARTS: u64 = 10_000;
/// S3's smallest part (all but the last).
const MIN_PART_SIZE: u64 = 5 << 20;
const MIB: u64 = 1 << 20;

/// The part size for a file of `size` bytes: the configured one, grown (in whole
/// MiB) just enough for the file to fit in `max_parts` parts. With the default 5 MiB
/// that happens above 48.8 GiB; without it S3 rejects part 10,001 and the upload of a
/// large snapshot fails forever.
pub fn part_size_for(configured: u64, size: u64, max_parts: u64) -> u64 {
    let needed = size.div_ceil(max_parts.max(1)).div_ceil(MIB) * MIB;
    configured.max(needed)
}

/// Why an S3 request failed, in terms of what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum S3Failure {
    /// The access key is unknown or the secret is wrong (`InvalidAccessKeyId`,
    /// `SignatureDoesNotMatch`, expired tokens).
    WrongCredentials {
        /// The server's error code.
        code: String,
    },
    /// No credentials were found anywhere.
    NoCredentials(String),
    /// The credentials are valid but not allowed to do this.
    AccessDenied,
    /// The bucket does not exist.
    NoSuchBucket,
    /// The endpoint could not be reached (refused, timed out, DNS, TLS).
    Unreachable(String),
    /// This machine's clock is too far from the server's for signatures to be valid.
    ClockSkew,
    /// The bucket lives in another region.
    WrongRegion(Option<String>),
    /// The server kept throttling (`SlowDown`, 503) after every retry.
    Throttled,
    /// Any other error the server returned.
    Server {
        /// HTTP status.
        status: u16,
        /// S3 error code, if any.
        code: String,
        /// The server's message.
        message: String,
    },
    /// Anything else (a body cut short after retries, a malformed response…).
    Other(String),
}

impl std::fmt::Display for S3Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S3Failure::WrongCredentials { code } => write!(
                f,
                "wrong credentials (the server said {code}): check access-key-id and secret-access-key in the config, or LITESTREAM_ACCESS_KEY_ID / LITESTREAM_SECRET_ACCESS_KEY / AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY"
            ),
            S3Failure::NoCredentials(detail) => write!(
                f,
                "no S3 credentials found ({detail}): set access-key-id and secret-access-key in the config, or LITESTREAM_ACCESS_KEY_ID and LITESTREAM_SECRET_ACCESS_KEY"
            ),
            S3Failure::AccessDenied => f.write_str(
                "access denied: the credentials were accepted but lack permission; allow s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on the bucket and path",
            ),
            S3Failure::NoSuchBucket => {
                f.write_str("the bucket does not exist: create it, or fix `bucket:` in the config")
            }
            S3Failure::Unreachable(detail) => write!(
                f,
                "cannot reach the endpoint ({detail}): check `endpoint:` and that the server is running and reachable"
            ),
            S3Failure::ClockSkew => f.write_str(
                "this machine's clock is too far from the server's (RequestTimeTooSkewed): fix the system time, e.g. enable NTP",
            ),
            S3Failure::WrongRegion(Some(r)) => {
                write!(f, "the bucket is in region {r}: set `region: {r}` in the config")
            }
            S3Failure::WrongRegion(None) => {
                f.write_str("the bucket is in another region: set `region:` in the config")
            }
            S3Failure::Throttled => f.write_str(
                "the server kept throttling requests (SlowDown) after retries; it will be tried again",
            ),
            S3Failure::Server {
                status,
                code,
                message,
            } => {
                write!(f, "the server answered HTTP {status}")?;
                if !code.is_empty() {
                    write!(f, " {code}")?;
                }
                if !message.is_empty() {
                    write!(f, ": {message}")?;
                }
                Ok(())
            }
            S3Failure::Other(detail) => f.write_str(detail),
        }
    }
}

/// Requests and bytes a replica client has used since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// LIST requests.
    pub list: u64,
    /// GET requests (whole or ranged).
    pub get: u64,
    /// HEAD requests.
    pub head: u64,
    /// PUT requests: whole objects and multipart parts.
    pub put: u64,
    /// Multipart create, complete and abort requests.
    pub multipart: u64,
    /// DELETE and DeleteObjects requests.
    pub delete: u64,
    /// Bytes sent in request bodies.
    pub bytes_up: u64,
    /// Bytes received in response bodies.
    pub bytes_down: u64,
}

impl RequestCounts {
    /// Every request.
    pub fn total(&self) -> u64 {
        self.list + self.get + self.head + self.put + self.multipart + self.delete
    }
}

#[derive(Debug, Default)]
struct Counters {
    list: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    multipart: AtomicU64,
    delete: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Counters {
    fn snapshot(&self) -> RequestCounts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            list: l(&self.list),
            get: l(&self.get),
            head: l(&self.head),
            put: l(&self.put),
            multipart: l(&self.multipart),
            delete: l(&self.delete),
            bytes_up: l(&self.bytes_up),
            bytes_down: l(&self.bytes_down),
        }
    }
}

/// Counts every attempt the SDK transmits (retries included), as the provider bills.
#[derive(Debug)]
struct CountRequests(Arc<Counters>);

fn content_length(headers: &aws_sdk_s3::config::http::HttpResponse) -> u64 {
    headers
        .headers()
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "tideline-request-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let req = context.request();
        let (path, query) = req.uri().split_once('?').unwrap_or((req.uri(), ""));
        let has = |k: &str| {
            query
                .split('&')
                .any(|p| p == k || p.starts_with(&format!("{k}=")))
        };
        // Path-style and virtual-hosted requests both end in the key for objects;
        // listings are the only GETs with `list-type` (or `prefix`) in the query.
        let counter = match req.method() {
            "GET" if has("list-type") || has("prefix") => &self.0.list,
            "GET" => &self.0.get,
            "HEAD" => &self.0.head,
            "PUT" => &self.0.put,
            "POST" if has("delete") => &self.0.delete,
            "POST" => &self.0.multipart,
            "DELETE" if has("uploadId") => &self.0.multipart,
            "DELETE" => &self.0.delete,
            _ => &self.0.list,
        };
        let _ = path;
        counter.fetch_add(1, Ordering::Relaxed);
        let up = req
            .headers()
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        self.0.bytes_up.fetch_add(up, Ordering::Relaxed);
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        self.0
            .bytes_down
            .fetch_add(content_length(context.response()), Ordering::Relaxed);
        Ok(())
    }
}

/// The standard AWS credential chain (environment, profile files, web identity,
/// container and instance metadata), built on first use because building it is async.
#[derive(Debug, Default)]
struct StandardChain(
    tokio::sync::OnceCell<aws_config::default_provider::credentials::DefaultCredentialsChain>,
);

impl ProvideCredentials for StandardChain {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            let chain = self
                .0
                .get_or_init(|| async {
                    aws_config::default_provider::credentials::DefaultCredentialsChain::builder()
                        .build()
                        .await
                })
                .await;
            chain.provide_credentials().await
        })
    }
}

/// Server-side encryption settings applied to every request that needs them.
#[derive(Clone, Default)]
struct Sse {
    /// (algorithm, base64 key, base64 MD5 of the key) for SSE-C.
    customer: Option<(String, String, String)>,
    kms_key_id: Option<String>,
}

impl std::fmt::Debug for Sse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sse")
            .field("customer", &self.customer.as_ref().map(|_| "<redacted>"))
            .field("kms_key_id", &self.kms_key_id)
            .finish()
    }
}

/// Sets the SSE-C headers (algorithm, key, key MD5) on any request builder that takes
/// them: S3 needs them on every read and write of an SSE-C object.
macro_rules! sse_customer {
    ($req:expr, $sse:expr) => {
        match &$sse.customer {
            Some((alg, key, md5)) => $req
                .sse_customer_algorithm(alg)
                .sse_customer_key(key)
                .sse_customer_key_md5(md5),
            None => $req,
        }
    };
}

/// One level's listing, kept true by this client's own writes and deletes.
type LevelCache = BTreeMap<(Txid, Txid), FileInfo>;

/// An S3 replica.
#[derive(Debug, Clone)]
pub struct S3Replica {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: aws_sdk_s3::Client,
    bucket: String,
    /// Key prefix without leading or trailing slashes; empty for the bucket root.
    prefix: String,
    /// Without URL credentials.
    endpoint: Option<String>,
    /// The configured part size (at least [`MIN_PART_SIZE`]); grown per file by
    /// [`part_size_for`].
    part_size: u64,
    /// [`MAX_PARTS`], lowered only by tests ([`S3Replica::with_max_parts`]).
    max_parts: u64,
    concurrency: usize,
    storage_class: Option<aws_sdk_s3::types::StorageClass>,
    sse: Sse,
    transfers: Arc<Semaphore>,
    counters: Arc<Counters>,
    cache: Mutex<[Listing; 10]>,
    /// Set by the first write: from then on this client is the replica's writer and
    /// its listings may be cached.
    writer: std::sync::atomic::AtomicBool,
}

/// Per level: the listing if known, and files written before it was listed (whose
/// exact creation times the next listing keeps; LIST only gives upload times).
#[derive(Debug, Default)]
struct Listing {
    files: Option<LevelCache>,
    written: LevelCache,
    /// Listings of this level under way.
    in_flight: u32,
    /// This client's writes and deletes while a listing was under way: the listing
    /// may or may not show them, so they are applied over it.
    changes: Changes,
}

#[derive(Debug, Default, Clone)]
struct Changes {
    written: LevelCache,
    deleted: std::collections::BTreeSet<(Txid, Txid)>,
}

impl Listing {
    /// Ends one listing under way: the changes to apply over it (kept for the others
    /// still under way, dropped after the last).
    fn end_listing(&mut self) -> Changes {
        self.in_flight = self.in_flight.saturating_sub(1);
        if self.in_flight == 0 {
            std::mem::take(&mut self.changes)
        } else {
            self.changes.clone()
        }
    }
}

/// Ends a listing whose future was dropped half way (a shutdown past its deadline),
/// so that writes stop being recorded for a listing that will never arrive.
struct ListingInFlight<'a> {
    /// `None` once the listing ended normally.
    replica: Option<&'a S3Replica>,
    level: u8,
}

impl Drop for ListingInFlight<'_> {
    fn drop(&mut self) {
        if let Some(r) = self.replica {
            r.cache()[usize::from(self.level)].end_listing();
        }
    }
}

impl S3Replica {
    /// A client for the configured bucket. Makes no request: the first one tells
    /// whether the bucket and credentials work (see [`S3Replica::check`]).
    pub fn new(cfg: &S3ReplicaConfig) -> crate::Result<S3Replica> {
        let region = cfg
            .region
            .clone()
            .or_else(|| std::env::var("AWS_REGION").ok())
            .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
            .unwrap_or_else(|| "us-east-1".to_string());
        let credentials = match (&cfg.access_key_id, &cfg.secret_access_key) {
            // The token was resolved with the keys (never an environment token with
            // keys from the config): see `config::resolve_s3_credentials`.
            (Some(id), Some(secret)) => SharedCredentialsProvider::new(Credentials::new(
                id.expose().clone(),
                secret.expose().clone(),
                cfg.session_token.as_ref().map(|t| t.expose().clone()),
                None,
                "tideline-config",
            )),
            _ => SharedCredentialsProvider::new(StandardChain::default()),
        };
        // A config built by hand (not parsed) may still carry URL credentials.
        let endpoint = cfg.endpoint.as_deref().map(crate::config::strip_userinfo);
        if cfg.skip_verify && endpoint.as_deref().is_some_and(|e| e.starts_with("https:")) {
            return Err(crate::config::ConfigError::invalid(
                format!(
                    "replica {}: skip-verify",
                    crate::config::redact_url(endpoint.as_deref().unwrap_or_default())
                ),
                "skip-verify is not supported for https endpoints",
                "add the server's certificate to the system's trusted certificates instead",
            )
            .into());
        }
        let counters = Arc::new(Counters::default());
        let mut builder = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .credentials_provider(credentials)
            .force_path_style(cfg.force_path_style)
            // Third-party stores differ in which checksum headers they accept; LTX files
            // carry their own CRC-64, verified on every read.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(
                aws_sdk_s3::config::retry::RetryConfig::standard()
                    .with_max_attempts(5)
                    .with_initial_backoff(Duration::from_millis(200))
                    .with_max_backoff(Duration::from_secs(10)),
            )
            .timeout_config(
                aws_sdk_s3::config::timeout::TimeoutConfig::builder()
                    .connect_timeout(Duration::from_secs(5))
                    .read_timeout(Duration::from_secs(60))
                    .build(),
            )
            .stalled_stream_protection(StalledStreamProtectionConfig::enabled().build())
            .interceptor(CountRequests(Arc::clone(&counters)));
        if let Some(endpoint) = &endpoint {
            builder = builder.endpoint_url(endpoint);
        }
        let sse = Sse {
            customer: sse_customer(cfg)?,
            kms_key_id: cfg.sse_kms_key_id.clone(),
        };
        let concurrency = cfg.concurrency.max(1);
        Ok(S3Replica {
            inner: Arc::new(Inner {
                client: aws_sdk_s3::Client::from_conf(builder.build()),
                bucket: cfg.bucket.clone(),
                prefix: cfg.path.trim_matches('/').to_string(),
                endpoint,
                part_size: cfg.part_size.max(MIN_PART_SIZE),
                max_parts: MAX_PARTS,
                concurrency,
                storage_class: cfg
                    .storage_class
                    .as_deref()
                    .map(aws_sdk_s3::types::StorageClass::from),
                sse,
                transfers: Arc::new(Semaphore::new(concurrency)),
                counters,
                cache: Mutex::new(Default::default()),
                writer: std::sync::atomic::AtomicBool::new(false),
            }),
        })
    }

    /// This client with S3's 10,000-part limit lowered to `max_parts`, so tests can
    /// exercise the part-size growth with files of a few MiB instead of 50 GiB.
    #[doc(hidden)]
    pub fn with_max_parts(cfg: &S3ReplicaConfig, max_parts: u64) -> crate::Result<S3Replica> {
        let mut r = S3Replica::new(cfg)?;
        if let Some(inner) = Arc::get_mut(&mut r.inner) {
            inner.max_parts = max_parts.max(1);
        }
        Ok(r)
    }

    /// Tries the bucket with one small listing: the "test connection" of the app and
    /// the first thing `replicate` does. Errors say what to fix.
    pub async fn check(&self) -> ReplicaResult<()> {
        let prefix = self.level_prefix(0);
        self.inner
            .client
            .list_objects_v2()
            .bucket(&self.inner.bucket)
            .prefix(&prefix)
            .max_keys(1)
            .send()
            .await
            .map_err(|e| self.error("list", &prefix, e))?;
        Ok(())
    }

    /// Forgets the cached listings: the next `list` of each level asks the server.
    pub fn invalidate(&self) {
        for l in self.cache().iter_mut() {
            l.files = None;
        }
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, [Listing; 10]> {
        self.inner
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn level_prefix(&self, level: u8) -> String {
        if self.inner.prefix.is_empty() {
            format!("{level:04x}/")
        } else {
            format!("{}/{level:04x}/", self.inner.prefix)
        }
    }

    fn key(&self, level: u8, min: Txid, max: Txid) -> String {
        format!("{}{}", self.level_prefix(level), format_filename(min, max))
    }

    fn error<E>(
        &self,
        op: &'static str,
        key: &str,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> ReplicaError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        ReplicaError::S3 {
            replica: self.describe(),
            op,
            key: key.to_string(),
            failure: classify(err),
        }
    }

    fn fail(&self, op: &'static str, key: &str, failure: S3Failure) -> ReplicaError {
        ReplicaError::S3 {
            replica: self.describe(),
            op,
            key: key.to_string(),
            failure,
        }
    }

    /// Lists `level` from the server; a writer's client then caches the listing, with
    /// the exact creation times it knows and its own changes made meanwhile.
    async fn relist(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        if !self.inner.writer.load(Ordering::Acquire) {
            return Ok(self.list_remote(level).await?.into_values().collect());
        }
        self.cache()[usize::from(level)].in_flight += 1;
        let mut flight = ListingInFlight {
            replica: Some(self),
            level,
        };
        let result = self.list_remote(level).await;
        flight.replica = None;
        let mut cache = self.cache();
        let entry = &mut cache[usize::from(level)];
        let changes = entry.end_listing();
        let mut listed = result?;
        // LIST gives upload times; files this client wrote keep their LTX timestamps.
        let known = entry.files.take().into_iter().flatten();
        for (k, mine) in known.chain(std::mem::take(&mut entry.written)) {
            if let Some(f) = listed.get_mut(&k) {
                f.created_at = mine.created_at;
            }
        }
        for (k, f) in changes.written {
            listed.insert(k, f);
        }
        for k in &changes.deleted {
            listed.remove(k);
        }
        let out = listed.values().cloned().collect();
        entry.files = Some(listed);
        Ok(out)
    }

    async fn list_remote(&self, level: u8) -> ReplicaResult<LevelCache> {
        let prefix = self.level_prefix(level);
        let mut out = LevelCache::new();
        let mut token: Option<String> = None;
        loop {
            let resp = self
                .inner
                .client
                .list_objects_v2()
                .bucket(&self.inner.bucket)
                .prefix(&prefix)
                .set_continuation_token(token.take())
                .send()
                .await
                .map_err(|e| self.error("list", &prefix, e))?;
            for obj in resp.contents() {
                let Some(key) = obj.key() else { continue };
                let Some((min, max)) = key
                    .strip_prefix(&prefix)
                    .filter(|name| !name.contains('/'))
                    .and_then(parse_filename)
                else {
                    continue;
                };
                let created_at = obj
                    .last_modified()
                    .and_then(|t| SystemTime::try_from(*t).ok())
                    .unwrap_or(SystemTime::UNIX_EPOCH);
                out.insert(
                    (min, max),
                    FileInfo {
                        level,
                        min_txid: min,
                        max_txid: max,
                        size: obj.size().unwrap_or(0).max(0) as u64,
                        created_at,
                    },
                );
            }
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// The creation time kept in the object's metadata (the LTX header timestamp).
    async fn head_created_at(&self, file: &FileInfo) -> ReplicaResult<SystemTime> {
        let key = self.key(file.level, file.min_txid, file.max_txid);
        let mut req = self
            .inner
            .client
            .head_object()
            .bucket(&self.inner.bucket)
            .key(&key);
        req = sse_customer!(req, self.inner.sse);
        let resp = req
            .send()
            .await
            .map_err(|e| self.not_found_or(file, "head", &key, e))?;
        Ok(resp
            .metadata()
            .and_then(|m| m.get(TIMESTAMP_KEY))
            .and_then(|t| parse_rfc3339(t).ok())
            .unwrap_or(file.created_at))
    }

    fn not_found_or<E>(
        &self,
        file: &FileInfo,
        op: &'static str,
        key: &str,
        err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>,
    ) -> ReplicaError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let status = err.raw_response().map(|r| r.status().as_u16());
        let code = err.code().map(str::to_string);
        if code.as_deref() == Some("NoSuchKey")
            || (status == Some(404) && code.as_deref() != Some("NoSuchBucket"))
        {
            // The cache was wrong about this file: list again next time.
            self.cache()[usize::from(file.level)].files = None;
            return ReplicaError::NotFound {
                replica: self.describe(),
                level: file.level,
                name: file.filename(),
            };
        }
        self.error(op, key, err)
    }

    async fn get_range(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Chunk> {
        let key = self.key(file.level, file.min_txid, file.max_txid);
        let mut last = None;
        for attempt in 0..BODY_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(Duration::from_millis(100 << attempt)).await;
            }
            let _permit = self.inner.transfers.acquire().await;
            let mut req = self
                .inner
                .client
                .get_object()
                .bucket(&self.inner.bucket)
                .key(&key)
                .range(format!("bytes={}-{}", range.start, range.end - 1));
            req = sse_customer!(req, self.inner.sse);
            let resp = req
                .send()
                .await
                .map_err(|e| self.not_found_or(file, "get", &key, e))?;
            match resp.body.collect().await {
                // The body's own buffers, not a contiguous copy of them.
                Ok(data) => return Ok(data.into_segments().collect()),
                // The connection dropped mid-body: the SDK does not retry that.
                Err(e) => last = Some(e.to_string()),
            }
        }
        Err(self.fail(
            "get",
            &key,
            S3Failure::Other(format!(
                "the download was cut short {BODY_ATTEMPTS} times: {}",
                last.unwrap_or_default()
            )),
        ))
    }

    /// Bytes `offset..offset + len` of `src` as a request body, streamed from the file
    /// (and re-read from it when the SDK retries).
    async fn file_body(
        &self,
        key: &str,
        src: &Path,
        offset: u64,
        len: u64,
    ) -> ReplicaResult<ByteStream> {
        ByteStream::read_from()
            .path(src)
            .offset(offset)
            .length(Length::Exact(len))
            .build()
            .await
            .map_err(|e| {
                self.fail(
                    "read",
                    key,
                    S3Failure::Other(format!("{}: {e}", src.display())),
                )
            })
    }

    async fn put_whole(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        created_at: SystemTime,
    ) -> ReplicaResult<()> {
        let body = self.file_body(key, src, 0, size).await?;
        let _permit = self.inner.transfers.acquire().await;
        let mut req = self
            .inner
            .client
            .put_object()
            .bucket(&self.inner.bucket)
            .key(key)
            .content_length(size as i64)
            .metadata(TIMESTAMP_KEY, format_rfc3339(created_at))
            .body(body);
        req = self.apply_put_options(req);
        req.send().await.map_err(|e| self.error("put", key, e))?;
        Ok(())
    }

    fn apply_put_options(
        &self,
        mut req: aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder,
    ) -> aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder {
        if let Some(c) = &self.inner.storage_class {
            req = req.storage_class(c.clone());
        }
        req = sse_customer!(req, self.inner.sse);
        if let Some(kms) = &self.inner.sse.kms_key_id {
            req = req
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        req
    }

    async fn put_multipart(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        created_at: SystemTime,
    ) -> ReplicaResult<()> {
        let mut create = self
            .inner
            .client
            .create_multipart_upload()
            .bucket(&self.inner.bucket)
            .key(key)
            .metadata(TIMESTAMP_KEY, format_rfc3339(created_at));
        if let Some(c) = &self.inner.storage_class {
            create = create.storage_class(c.clone());
        }
        create = sse_customer!(create, self.inner.sse);
        if let Some(kms) = &self.inner.sse.kms_key_id {
            create = create
                .server_side_encryption(aws_sdk_s3::types::ServerSideEncryption::AwsKms)
                .ssekms_key_id(kms);
        }
        let upload = create
            .send()
            .await
            .map_err(|e| self.error("start multipart upload", key, e))?;
        let Some(upload_id) = upload.upload_id().map(str::to_string) else {
            return Err(self.fail(
                "start multipart upload",
                key,
                S3Failure::Other("the server returned no upload id".into()),
            ));
        };
        // Should this future be dropped half way (a shutdown past its deadline), the
        // guard aborts the upload in the background.
        let guard = AbortOnDrop {
            client: self.inner.client.clone(),
            bucket: self.inner.bucket.clone(),
            key: key.to_string(),
            upload_id: Some(upload_id.clone()),
        };
        let result = match self.upload_parts(key, &upload_id, src, size).await {
            Ok(parts) => self
                .inner
                .client
                .complete_multipart_upload()
                .bucket(&self.inner.bucket)
                .key(key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map(|_| ())
                .map_err(|e| self.error("complete multipart upload", key, e)),
            Err(e) => Err(e),
        };
        guard.disarm();
        if result.is_err() {
            // Parts of an unfinished upload are billed until aborted, and a failed
            // completion leaves the upload unfinished just as a failed part does. (An
            // upload that did complete despite the error is unaffected: S3 answers
            // NoSuchUpload.) The write's own error is the one to report.
            let _ = self
                .inner
                .client
                .abort_multipart_upload()
                .bucket(&self.inner.bucket)
                .key(key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    async fn upload_parts(
        &self,
        key: &str,
        upload_id: &str,
        src: &Path,
        size: u64,
    ) -> ReplicaResult<Vec<CompletedPart>> {
        let part_size = part_size_for(self.inner.part_size, size, self.inner.max_parts);
        let count = size.div_ceil(part_size);
        let mut tasks = tokio::task::JoinSet::new();
        let mut parts = Vec::with_capacity(count as usize);
        let mut next = 0u64;
        // At most `concurrency` parts in flight; each streams its range from the file.
        loop {
            while next < count && tasks.len() < self.inner.concurrency {
                let offset = next * part_size;
                let len = part_size.min(size - offset);
                let number = (next + 1) as i32;
                let this = self.clone();
                let (key, upload_id, src) =
                    (key.to_string(), upload_id.to_string(), src.to_path_buf());
                tasks.spawn(async move {
                    this.upload_part(&key, &upload_id, &src, offset, len, number)
                        .await
                });
                next += 1;
            }
            let Some(done) = tasks.join_next().await else {
                break;
            };
            let part =
                done.map_err(|e| self.fail("upload part", key, S3Failure::Other(e.to_string())))??;
            parts.push(part);
        }
        parts.sort_by_key(|p| p.part_number());
        Ok(parts)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        src: &Path,
        offset: u64,
        len: u64,
        number: i32,
    ) -> ReplicaResult<CompletedPart> {
        let body = self.file_body(key, src, offset, len).await?;
        let _permit = self.inner.transfers.acquire().await;
        let mut req = self
            .inner
            .client
            .upload_part()
            .bucket(&self.inner.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .content_length(len as i64)
            .body(body);
        req = sse_customer!(req, self.inner.sse);
        let resp = req
            .send()
            .await
            .map_err(|e| self.error("upload part", key, e))?;
        Ok(CompletedPart::builder()
            .part_number(number)
            .set_e_tag(resp.e_tag().map(str::to_string))
            .build())
    }
}

/// Aborts a multipart upload when dropped armed: its parts are billed until then.
struct AbortOnDrop {
    client: aws_sdk_s3::Client,
    bucket: String,
    key: String,
    upload_id: Option<String>,
}

impl AbortOnDrop {
    fn disarm(mut self) {
        self.upload_id = None;
    }
}

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        let Some(upload_id) = self.upload_id.take() else {
            return;
        };
        // Best effort: a runtime shutting down may not run it.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let req = self
                .client
                .abort_multipart_upload()
                .bucket(&self.bucket)
                .key(&self.key)
                .upload_id(upload_id);
            handle.spawn(async move {
                let _ = req.send().await;
            });
        }
    }
}

fn sse_customer(cfg: &S3ReplicaConfig) -> crate::Result<Option<(String, String, String)>> {
    use md5::Digest;
    let key = if let Some(path) = &cfg.sse_customer_key_path {
        let text = std::fs::read_to_string(path).map_err(|source| crate::Error::Io {
            op: "read sse-customer-key-path",
            path: path.clone(),
            source,
        })?;
        Some(text.trim().to_string())
    } else {
        cfg.sse_customer_key.as_ref().map(|k| k.expose().clone())
    };
    let Some(key) = key else { return Ok(None) };
    // The config holds the key base64-encoded, as Litestream's does; S3 wants the
    // base64 key and the base64 MD5 of the raw key.
    let raw = aws_smithy_types::base64::decode(key.trim()).map_err(|_| {
        crate::Error::from(crate::config::ConfigError::invalid(
            "sse-customer-key",
            "the key is not valid base64",
            "set a base64-encoded 256-bit key (e.g. from `openssl rand -base64 32`)",
        ))
    })?;
    let md5 = aws_smithy_types::base64::encode(md5::Md5::digest(&raw));
    let alg = cfg
        .sse_customer_algorithm
        .clone()
        .unwrap_or_else(|| "AES256".to_string());
    Ok(Some((alg, key, md5)))
}

/// Names an SDK error for what the user must fix.
fn classify<E>(err: SdkError<E, aws_sdk_s3::config::http::HttpResponse>) -> S3Failure
where
    E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
{
    let chain = error_chain(&err);
    match &err {
        SdkError::DispatchFailure(_) | SdkError::TimeoutError(_) => {
            if chain.contains("credentials") || chain.contains("Credentials") {
                return S3Failure::NoCredentials(chain);
            }
            return S3Failure::Unreachable(chain);
        }
        SdkError::ConstructionFailure(_) => {
            if chain.contains("credentials") || chain.contains("Credentials") {
                return S3Failure::NoCredentials(chain);
            }
            return S3Failure::Other(chain);
        }
        _ => {}
    }
    let status = err.raw_response().map_or(0, |r| r.status().as_u16());
    let region = err
        .raw_response()
        .and_then(|r| r.headers().get("x-amz-bucket-region"))
        .map(str::to_string);
    let code = err.code().unwrap_or_default().to_string();
    let message = err.message().unwrap_or_default().to_string();
    match code.as_str() {
        "InvalidAccessKeyId"
        | "SignatureDoesNotMatch"
        | "InvalidToken"
        | "ExpiredToken"
        | "TokenRefreshRequired"
        | "InvalidSecurity" => S3Failure::WrongCredentials { code },
        "AccessDenied" | "AllAccessDisabled" | "AccountProblem" => S3Failure::AccessDenied,
        "NoSuchBucket" => S3Failure::NoSuchBucket,
        "RequestTimeTooSkewed" => S3Failure::ClockSkew,
        "PermanentRedirect"
        | "AuthorizationHeaderMalformed"
        | "IllegalLocationConstraintException" => S3Failure::WrongRegion(region),
        "SlowDown" | "Throttling" | "ThrottlingException" | "RequestLimitExceeded" => {
            S3Failure::Throttled
        }
        _ => match status {
            // HEAD responses have no body, so no code: go by the status.
            301 => S3Failure::WrongRegion(region),
            403 => S3Failure::AccessDenied,
            503 => S3Failure::Throttled,
            0 => S3Failure::Other(chain),
            _ => S3Failure::Server {
                status,
                code,
                message,
            },
        },
    }
}

fn error_chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        source = s.source();
    }
    out
}

#[async_trait::async_trait]
impl ReplicaClient for S3Replica {
    fn describe(&self) -> String {
        let mut out = format!("s3://{}/{}", self.inner.bucket, self.inner.prefix);
        if let Some(e) = &self.inner.endpoint {
            // Already without user-info; the redaction also covers query credentials.
            out.push_str(&format!(" (endpoint {})", crate::config::redact_url(e)));
        }
        out
    }

    async fn list(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        check_level(level)?;
        if let Some(cached) = &self.cache()[usize::from(level)].files {
            return Ok(cached.values().cloned().collect());
        }
        self.relist(level).await
    }

    async fn list_fresh(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        check_level(level)?;
        self.relist(level).await
    }

    async fn list_exact(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        check_level(level)?;
        // LIST gives LastModified; the creation time is in each object's metadata.
        // A fresh listing, then HEADs in parallel, bounded.
        let listed = self.list_remote(level).await?;
        let files: Vec<FileInfo> = listed.into_values().collect();
        let sem = Arc::new(Semaphore::new(HEAD_CONCURRENCY));
        let mut tasks = tokio::task::JoinSet::new();
        for (i, f) in files.iter().enumerate() {
            let (this, f, sem) = (self.clone(), f.clone(), Arc::clone(&sem));
            tasks.spawn(async move {
                let _p = sem.acquire().await;
                (i, this.head_created_at(&f).await)
            });
        }
        let mut out = files;
        while let Some(done) = tasks.join_next().await {
            let (i, t) =
                done.map_err(|e| self.fail("head", "", S3Failure::Other(e.to_string())))?;
            out[i].created_at = t?;
        }
        Ok(out)
    }

    async fn read_range(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
        let end = range.end.min(file.size);
        if range.start >= end {
            return Ok(Vec::new());
        }
        let chunk = self.get_range(file, range.start..end).await?;
        Ok(chunk.iter().flat_map(|b| b.iter().copied()).collect())
    }

    fn open(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            self.fail(
                "get",
                &self.key(file.level, file.min_txid, file.max_txid),
                S3Failure::Other(
                    "S3 reads need the tokio runtime (open() was called outside it)".into(),
                ),
            )
        })?;
        // One finished chunk waits for the reader; the rest of the read-ahead is the
        // requests in flight (a longer queue would only hold more memory).
        let (tx, rx) = mpsc::channel(1);
        let (this, file) = (self.clone(), file.clone());
        handle.spawn(async move { this.feed_chunks(file, tx).await });
        Ok(Box::new(ChunkReader {
            rx,
            current: std::collections::VecDeque::new(),
            done: false,
        }))
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
        let key = self.key(level, min, max);
        self.inner.writer.store(true, Ordering::Release);
        let size = tokio::fs::metadata(src)
            .await
            .map_err(|e| {
                self.fail(
                    "read",
                    &key,
                    S3Failure::Other(format!("{}: {e}", src.display())),
                )
            })?
            .len();
        let result = if size <= self.inner.part_size {
            self.put_whole(&key, src, size, created_at).await
        } else {
            self.put_multipart(&key, src, size, created_at).await
        };
        if let Err(e) = result {
            // Whether the object landed is unknown: list this level again next time.
            self.cache()[usize::from(level)].files = None;
            return Err(e);
        }
        let info = FileInfo {
            level,
            min_txid: min,
            max_txid: max,
            size,
            created_at,
        };
        let mut cache = self.cache();
        let entry = &mut cache[usize::from(level)];
        match &mut entry.files {
            Some(cached) => cached.insert((min, max), info.clone()),
            None => entry.written.insert((min, max), info.clone()),
        };
        if entry.in_flight > 0 {
            entry.changes.deleted.remove(&(min, max));
            entry.changes.written.insert((min, max), info.clone());
        }
        Ok(info)
    }

    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()> {
        for batch in files.chunks(DELETE_BATCH) {
            let mut objects = Vec::with_capacity(batch.len());
            for f in batch {
                let key = self.key(f.level, f.min_txid, f.max_txid);
                objects.push(
                    ObjectIdentifier::builder()
                        .key(&key)
                        .build()
                        .map_err(|e| self.fail("delete", &key, S3Failure::Other(e.to_string())))?,
                );
            }
            let first = batch
                .first()
                .map(|f| self.key(f.level, f.min_txid, f.max_txid))
                .unwrap_or_default();
            let delete = Delete::builder()
                .set_objects(Some(objects))
                .quiet(true)
                .build()
                .map_err(|e| self.fail("delete", &first, S3Failure::Other(e.to_string())))?;
            let result = self
                .inner
                .client
                .delete_objects()
                .bucket(&self.inner.bucket)
                .delete(delete)
                .send()
                .await;
            let mut levels: Vec<u8> = batch.iter().map(|f| f.level).collect();
            levels.dedup();
            let resp = match result {
                Ok(r) => r,
                Err(e) => {
                    for l in levels {
                        self.cache()[usize::from(l)].files = None;
                    }
                    return Err(self.error("delete", &first, e));
                }
            };
            {
                let mut cache = self.cache();
                for f in batch {
                    let entry = &mut cache[usize::from(f.level)];
                    entry.written.remove(&(f.min_txid, f.max_txid));
                    if let Some(c) = &mut entry.files {
                        c.remove(&(f.min_txid, f.max_txid));
                    }
                    if entry.in_flight > 0 {
                        entry.changes.written.remove(&(f.min_txid, f.max_txid));
                        entry.changes.deleted.insert((f.min_txid, f.max_txid));
                    }
                }
            }
            if let Some(err) = resp.errors().iter().find(|e| e.code() != Some("NoSuchKey")) {
                for l in levels {
                    self.cache()[usize::from(l)].files = None;
                }
                return Err(self.fail(
                    "delete",
                    err.key().unwrap_or(&first),
                    S3Failure::Server {
                        status: 200,
                        code: err.code().unwrap_or_default().to_string(),
                        message: err.message().unwrap_or_default().to_string(),
                    },
                ));
            }
        }
        Ok(())
    }

    fn request_counts(&self) -> Option<RequestCounts> {
        Some(self.inner.counters.snapshot())
    }
}

impl S3Replica {
    /// Fetches `file` in order, `READ_AHEAD` chunks at once, into `tx`. Stops early
    /// when the reader is dropped.
    async fn feed_chunks(self, file: FileInfo, tx: mpsc::Sender<ReplicaResult<Chunk>>) {
        let mut pending = std::collections::VecDeque::new();
        let mut offset = 0u64;
        let ahead = read_ahead();
        loop {
            while offset < file.size && pending.len() < ahead {
                let end = (offset + READ_CHUNK).min(file.size);
                let (this, f) = (self.clone(), file.clone());
                pending.push_back(tokio::spawn(async move {
                    this.get_range(&f, offset..end).await
                }));
                offset = end;
            }
            let Some(next) = pending.pop_front() else {
                break;
            };
            let chunk = match next.await {
                Ok(r) => r,
                Err(e) => Err(self.fail("get", "", S3Failure::Other(e.to_string()))),
            };
            let failed = chunk.is_err();
            if tx.send(chunk).await.is_err() || failed {
                for p in pending {
                    p.abort();
                }
                return;
            }
        }
    }
}

/// One ranged GET's body, as the buffers it arrived in.
type Chunk = std::collections::VecDeque<bytes::Bytes>;

/// A blocking reader over chunks fetched by a task on the runtime.
struct ChunkReader {
    rx: mpsc::Receiver<ReplicaResult<Chunk>>,
    current: Chunk,
    done: bool,
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        loop {
            match self.current.front_mut() {
                Some(seg) if seg.is_empty() => {
                    self.current.pop_front();
                }
                Some(seg) => {
                    let n = buf.len().min(seg.len());
                    buf[..n].copy_from_slice(&seg[..n]);
                    let _ = seg.split_to(n);
                    return Ok(n);
                }
                None if self.done => return Ok(0),
                None => match self.rx.blocking_recv() {
                    Some(Ok(chunk)) => self.current = chunk,
                    Some(Err(e)) => return Err(std::io::Error::other(e)),
                    None => self.done = true,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dropped_listing_stops_recording_changes() {
        let cfg = crate::config::ReplicaConfig::from_url_with_env("s3://b/p", &|_| None).unwrap();
        let crate::config::ReplicaTarget::S3(s3) = cfg.target else {
            unreachable!()
        };
        let r = S3Replica::new(&s3).unwrap();
        r.cache()[3].in_flight += 1;
        let flight = ListingInFlight {
            replica: Some(&r),
            level: 3,
        };
        r.cache()[3].changes.deleted.insert((Txid(1), Txid(1)));
        drop(flight);
        let cache = r.cache();
        assert_eq!(cache[3].in_flight, 0);
        assert!(cache[3].changes.deleted.is_empty());
    }

    #[test]
    fn parts_grow_to_stay_within_the_part_limit() {
        const GIB: u64 = 1 << 30;
        let five = 5 * MIB;
        // Small and ordinary files keep the configured size.
        assert_eq!(part_size_for(five, 12 * MIB, MAX_PARTS), five);
        assert_eq!(part_size_for(five, 10_000 * five, MAX_PARTS), five);
        // One byte more needs a bigger part, in whole MiB.
        assert_eq!(part_size_for(five, 10_000 * five + 1, MAX_PARTS), 6 * MIB);
        // A larger configured size is kept when it is enough.
        assert_eq!(part_size_for(64 * MIB, 100 * GIB, MAX_PARTS), 64 * MIB);
        for size in [50 * GIB, 100 * GIB + 7, 4 << 40, 5 << 40] {
            let part = part_size_for(five, size, MAX_PARTS);
            assert!(size.div_ceil(part) <= MAX_PARTS, "{size}: {part}");
            assert_eq!(part % MIB, 0);
            // Not grown more than a MiB past what is needed.
            assert!(size.div_ceil(part - MIB) > MAX_PARTS, "{size}: {part}");
        }
        assert_eq!(part_size_for(five, 12 * MIB, 2), 6 * MIB);
    }
}

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
//!
//! This module is the glue: [`S3Replica`], its client set-up and the
//! [`ReplicaClient`] impl. Each concern has its own file: `failure` (what went
//! wrong), `counters` (requests and bytes), `credentials`, `sse` (encryption),
//! `list`, `upload`, `read` and `delete`; the listing cache is [`storage::cache`](crate::storage),
//! shared with the SFTP and WebDAV clients.

// First, so that its `sse_customer!` macro is in scope in the modules after it.
#[macro_use]
mod sse;
mod counters;
mod credentials;
mod delete;
mod failure;
mod list;
mod read;
mod upload;

use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::config::{
    BehaviorVersion, Region, RequestChecksumCalculation, ResponseChecksumValidation,
    StalledStreamProtectionConfig,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use tideline_ltx::{Txid, format_filename};
use tokio::sync::Semaphore;

pub use failure::S3Failure;
pub(crate) use upload::MAX_PARTS;

use super::{FileInfo, ReplicaClient, ReplicaError, ReplicaResult, check_level};
use crate::config::S3ReplicaConfig;
use crate::storage::cache::Cache;
use crate::storage::counters::{Counters, RequestCounts};
use counters::CountRequests;
use upload::MIN_PART_SIZE;

/// User metadata key holding the LTX header timestamp (RFC 3339, Go's RFC3339Nano).
const TIMESTAMP_KEY: &str = "litestream-timestamp";

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
    sse: sse::Sse,
    transfers: Arc<Semaphore>,
    counters: Arc<Counters>,
    cache: Cache,
    /// Set by the first write: from then on this client is the replica's writer and
    /// its listings may be cached.
    writer: std::sync::atomic::AtomicBool,
}

impl S3Replica {
    /// A client for the configured bucket. Makes no request: the first one tells
    /// whether the bucket and credentials work (see [`S3Replica::check`]).
    pub fn new(cfg: &S3ReplicaConfig) -> crate::Result<S3Replica> {
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
        let counters = Arc::new(Counters::new("s3"));
        let sdk_config = sdk_config(cfg, endpoint.as_deref(), &counters);
        let sse = sse::Sse::from_config(cfg)?;
        let concurrency = cfg.concurrency.max(1);
        Ok(S3Replica {
            inner: Arc::new(Inner {
                client: aws_sdk_s3::Client::from_conf(sdk_config),
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
                cache: Cache::default(),
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

    /// The SDK error `err` of `op` on `key`, named for what to fix.
    fn error<E>(&self, op: &'static str, key: &str, err: SdkError<E, HttpResponse>) -> ReplicaError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        self.fail(op, key, failure::classify(err))
    }

    fn fail(&self, op: &'static str, key: &str, failure: S3Failure) -> ReplicaError {
        ReplicaError::S3 {
            replica: self.describe(),
            op,
            key: key.to_string(),
            failure,
        }
    }
}

/// The SDK client's configuration: region, credentials, endpoint, retries, timeouts,
/// and the request counter.
fn sdk_config(
    cfg: &S3ReplicaConfig,
    endpoint: Option<&str>,
    counters: &Arc<Counters>,
) -> aws_sdk_s3::Config {
    let mut builder = aws_sdk_s3::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(credentials::region(cfg)))
        .credentials_provider(credentials::provider(cfg))
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
        .interceptor(CountRequests(Arc::clone(counters)));
    if let Some(endpoint) = endpoint {
        builder = builder.endpoint_url(endpoint);
    }
    builder.build()
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
        self.list_with_created_at(level).await
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
        self.write_file(level, (min, max), created_at, src).await
    }

    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()> {
        for batch in files.chunks(delete::DELETE_BATCH) {
            self.delete_batch(batch).await?;
        }
        Ok(())
    }

    fn request_counts(&self) -> Option<RequestCounts> {
        Some(self.inner.counters.snapshot())
    }
}

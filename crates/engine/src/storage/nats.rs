//! A NATS JetStream object-store bucket in Litestream 0.5's exact `nats` layout:
//! objects named `ltx/<level>/<min>-<max>.ltx` at the bucket's root (Litestream's NATS
//! client has no path inside a bucket), each one's creation time (the LTX header
//! timestamp) in object header `Litestream-Timestamp` (RFC 3339 with nanoseconds, as
//! Go's `RFC3339Nano` prints it), which listings return at no extra cost.
//!
//! The client is `async-nats`, NATS's official Rust client, whose object store is the
//! one Litestream's Go client speaks (chunks on `$O.<bucket>.C.<nuid>`, metadata on
//! `$O.<bucket>.M.<name>`), so either tool reads the other's objects.
//!
//! * **Connection**: made at the first request and kept; the client reconnects by
//!   itself (`max-reconnects`, `reconnect-wait`). A request that fails while the
//!   connection is down drops it, so the next request connects afresh: a server that
//!   is down at start is waited for as any unreachable destination is.
//! * **Uploads** stream from the local file in the object store's 128 KiB chunks
//!   (bounded memory); the object appears when its metadata is published after the last
//!   chunk, so a reader sees the whole object or none.
//! * **Listings** read the last metadata message of every object through a consumer
//!   made for the listing and deleted after it (async-nats's own `list` leaves its
//!   consumer for 30 s, and nats-server allows 1000), keep one level, and are cached
//!   for the replicator (the shared listing cache, `storage/cache.rs`), so an idle database
//!   sends nothing.
//! * **Reads** get the object's metadata, then its chunks through a consumer made for
//!   the read and deleted after it (`read.rs`: async-nats's own `get` leaves one behind
//!   for 30 s, so a restore of many files ran into the server's limit); the whole-file
//!   reader holds a transfer permit only while the read starts, and streams the chunks
//!   to the decoder through a small bounded queue.
//!
//! Failures are named for what to fix ([`RemoteFailure`]): the credentials refused
//! (naming the keys that hold them), a missing bucket, the server unreachable, JetStream
//! off — never with a password, token or seed.

use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime};

use async_nats::jetstream::object_store::{ObjectInfo, ObjectMetadata, ObjectStore};
use futures_util::StreamExt;
use tideline_ltx::{Txid, format_filename, parse_filename};
use tokio::sync::{Mutex, Semaphore, mpsc};

use super::cache::{Cache, LevelCache};
use super::counters::{Counters, Op, RequestCounts};
use super::queue_reader::QueueReader;
use super::{FileInfo, RemoteFailure, ReplicaClient, ReplicaError, ReplicaResult, check_level};
use crate::config::{NatsAuth, NatsReplicaConfig};

mod errors;
mod read;

use self::errors::{connect_failure, is_down, store_failure};

/// The object header holding the LTX creation time (Litestream's `HeaderKeyTimestamp`).
pub const TIMESTAMP_HEADER: &str = "Litestream-Timestamp";
/// Transfers in flight per client.
const TRANSFERS: usize = 8;
/// Chunks of a whole-file read queued ahead of the decoder.
const READ_QUEUE: usize = 8;

/// A NATS JetStream object-store replica client.
#[derive(Debug, Clone)]
pub struct NatsReplica {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cfg: NatsReplicaConfig,
    describe: String,
    /// The connection and the bucket's handle, once connected.
    conn: Mutex<Option<Conn>>,
    cache: Cache,
    /// Set by the first write: this client is the replicator and may cache listings.
    writer: AtomicBool,
    counters: Counters,
    transfers: Semaphore,
}

#[derive(Clone)]
struct Conn {
    client: async_nats::Client,
    store: ObjectStore,
    /// The bucket's stream (`OBJ_<bucket>`), which listings read directly.
    stream: async_nats::jetstream::stream::Stream,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("state", &self.client.connection_state())
            .finish_non_exhaustive()
    }
}

impl NatsReplica {
    /// A client for the configured bucket. Nothing is sent until used.
    pub fn new(cfg: &NatsReplicaConfig) -> NatsReplica {
        NatsReplica {
            inner: Arc::new(Inner {
                cfg: cfg.clone(),
                describe: crate::config::ReplicaTarget::Nats(Box::new(cfg.clone())).to_string(),
                conn: Mutex::new(None),
                cache: Cache::default(),
                writer: AtomicBool::new(false),
                counters: Counters::new("nats"),
                transfers: Semaphore::new(TRANSFERS),
            }),
        }
    }

    /// Creates the object-store bucket if it does not exist. Litestream never creates
    /// one, and neither does replication; this is for tests and first-time set-up
    /// tools.
    pub async fn create_bucket(&self) -> ReplicaResult<()> {
        let fail = |failure| self.fail("create bucket", "", failure);
        let options = self.options().await.map_err(fail)?;
        let client = options
            .connect(format!("nats://{}", self.inner.cfg.server))
            .await
            .map_err(|e| fail(connect_failure(&e, self.inner.cfg.auth.keys())))?;
        let js = async_nats::jetstream::new(client);
        js.create_object_store(async_nats::jetstream::object_store::Config {
            bucket: self.inner.cfg.bucket.clone(),
            ..Default::default()
        })
        .await
        .map_err(|e| fail(RemoteFailure::Other(errors::chain(&e))))?;
        Ok(())
    }

    fn fail(&self, op: &'static str, path: &str, failure: RemoteFailure) -> ReplicaError {
        ReplicaError::Remote {
            replica: self.inner.describe.clone(),
            op,
            path: path.to_owned(),
            failure,
        }
    }

    /// The object name of a file (Litestream's `LTXFilePath` with no root).
    fn object_name(level: u8, min: Txid, max: Txid) -> String {
        format!("ltx/{level}/{}", format_filename(min, max))
    }

    /// The bucket, connecting first if need be.
    async fn store(&self) -> ReplicaResult<ObjectStore> {
        Ok(self.store_and_stream().await?.0)
    }

    /// The bucket and its stream (`OBJ_<bucket>`), connecting first if need be.
    async fn store_and_stream(
        &self,
    ) -> ReplicaResult<(ObjectStore, async_nats::jetstream::stream::Stream)> {
        let mut conn = self.inner.conn.lock().await;
        if let Some(c) = conn.as_ref() {
            return Ok((c.store.clone(), c.stream.clone()));
        }
        let c = self.connect().await?;
        let both = (c.store.clone(), c.stream.clone());
        *conn = Some(c);
        Ok(both)
    }

    /// After a failed request: if the connection is down, forget it, so that the next
    /// request connects again rather than wait on a client that may have given up.
    async fn after_failure(&self) {
        let mut conn = self.inner.conn.lock().await;
        if conn.as_ref().is_some_and(|c| is_down(&c.client)) {
            *conn = None;
        }
    }

    /// Connects, logs in and opens the bucket (which must exist).
    async fn connect(&self) -> ReplicaResult<Conn> {
        let cfg = &self.inner.cfg;
        let fail = |failure| self.fail("connect", "", failure);
        let options = self.options().await.map_err(fail)?;
        let client = options
            .connect(format!("nats://{}", cfg.server))
            .await
            .map_err(|e| fail(connect_failure(&e, cfg.auth.keys())))?;
        let js = async_nats::jetstream::new(client.clone());
        let stream = js
            .get_stream(format!("OBJ_{}", cfg.bucket))
            .await
            .map_err(|e| fail(errors::stream_failure(&e, &cfg.bucket)))?;
        let store = js
            .get_object_store(&cfg.bucket)
            .await
            .map_err(|e| fail(RemoteFailure::Other(errors::chain(&e))))?;
        Ok(Conn {
            client,
            store,
            stream,
        })
    }

    /// The connect options: the login, TLS and the reconnection settings.
    async fn options(&self) -> Result<async_nats::ConnectOptions, RemoteFailure> {
        let cfg = &self.inner.cfg;
        let refused = |detail: String| RemoteFailure::WrongCredentials {
            keys: cfg.auth.keys(),
            detail,
        };
        let mut o = match &cfg.auth {
            NatsAuth::Jwt { jwt, seed } => {
                let kp = Arc::new(
                    nkeys::KeyPair::from_seed(seed.expose())
                        .map_err(|_| refused("the seed is not a valid nkey seed".into()))?,
                );
                async_nats::ConnectOptions::with_jwt(jwt.expose().clone(), move |nonce| {
                    let kp = kp.clone();
                    async move { kp.sign(&nonce).map_err(async_nats::AuthError::new) }
                })
            }
            NatsAuth::Creds(path) => async_nats::ConnectOptions::with_credentials_file(path)
                .await
                .map_err(|e| refused(format!("cannot read {}: {e}", path.display())))?,
            NatsAuth::Nkey(seed) => {
                nkeys::KeyPair::from_seed(seed.expose())
                    .map_err(|_| refused("the nkey is not a valid nkey seed".into()))?;
                async_nats::ConnectOptions::with_nkey(seed.expose().clone())
            }
            NatsAuth::UserPassword { username, password } => {
                async_nats::ConnectOptions::with_user_and_password(
                    username.clone(),
                    password.expose().clone(),
                )
            }
            NatsAuth::Token(t) => async_nats::ConnectOptions::with_token(t.expose().clone()),
            _ => async_nats::ConnectOptions::new(),
        };
        if cfg.tls {
            o = o.require_tls(true);
        }
        if let Some(ca) = &cfg.root_ca {
            o = o.add_root_certificates(ca.clone());
        }
        if let Some((cert, key)) = &cfg.client_cert {
            o = o.add_client_certificate(cert.clone(), key.clone());
        }
        let wait = cfg.reconnect_wait;
        Ok(o.name(concat!("tideline/", env!("CARGO_PKG_VERSION")))
            .connection_timeout(cfg.timeout)
            .max_reconnects(cfg.max_reconnects)
            .reconnect_delay_callback(move |_| wait))
    }

    /// Lists `level` from the server: every object's metadata, this level's kept.
    async fn list_remote(&self, level: u8) -> ReplicaResult<LevelCache> {
        let prefix = format!("ltx/{level}/");
        let result = self.list_objects(&prefix).await;
        if result.is_err() {
            self.after_failure().await;
        }
        let mut out = LevelCache::new();
        for info in result? {
            let Some(name) = info.name.strip_prefix(&prefix) else {
                continue;
            };
            let Some((min, max)) = parse_filename(name) else {
                continue;
            };
            out.insert(
                (min, max),
                FileInfo {
                    level,
                    min_txid: min,
                    max_txid: max,
                    size: info.size as u64,
                    created_at: created_at(&info),
                },
            );
        }
        Ok(out)
    }

    /// Every live object's metadata whose name starts with `prefix`: the last
    /// metadata message of every object, read by a consumer made for this listing and
    /// deleted after it (async-nats's own listing leaves its consumer for 30 s, and a
    /// server allows 1000).
    async fn list_objects(&self, prefix: &str) -> ReplicaResult<Vec<ObjectInfo>> {
        use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, pull};
        let (_, stream) = self.store_and_stream().await?;
        self.inner.counters.count(Op::List, 0);
        let fail = |e: &dyn std::error::Error| {
            self.fail("list", prefix, RemoteFailure::Unreachable(errors::chain(e)))
        };
        let consumer: async_nats::jetstream::consumer::PullConsumer = stream
            .create_consumer(pull::Config {
                deliver_policy: DeliverPolicy::LastPerSubject,
                filter_subject: format!("$O.{}.M.>", self.inner.cfg.bucket),
                ack_policy: AckPolicy::None,
                inactive_threshold: Duration::from_secs(30),
                ..Default::default()
            })
            .await
            .map_err(|e| fail(&e))?;
        let name = consumer.cached_info().name.clone();
        let result = self.read_metadata(&consumer, prefix).await;
        let _ = stream.delete_consumer(&name).await;
        result
    }

    /// The metadata messages a fresh listing consumer holds, those under `prefix` kept.
    async fn read_metadata(
        &self,
        consumer: &async_nats::jetstream::consumer::PullConsumer,
        prefix: &str,
    ) -> ReplicaResult<Vec<ObjectInfo>> {
        let fail = |detail: String| self.fail("list", prefix, RemoteFailure::Unreachable(detail));
        let mut left = consumer.cached_info().num_pending;
        let mut out = Vec::new();
        while left > 0 {
            let batch = usize::try_from(left.min(10_000)).unwrap_or(10_000);
            let mut messages = consumer
                .fetch()
                .max_messages(batch)
                .messages()
                .await
                .map_err(|e| fail(errors::chain(&e)))?;
            let mut got = 0;
            while let Some(m) = messages.next().await {
                let m = m.map_err(|e| fail(errors::chain(&*e)))?;
                got += 1;
                let Ok(info) = serde_json::from_slice::<ObjectInfo>(&m.payload) else {
                    continue;
                };
                if !info.deleted && info.name.starts_with(prefix) {
                    out.push(info);
                }
            }
            if got == 0 {
                return Err(fail("the listing stopped short".into()));
            }
            left = left.saturating_sub(got);
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

    async fn read_bytes(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
        let end = range.end.min(file.size);
        if range.start >= end {
            return Ok(Vec::new());
        }
        let _permit = self.inner.transfers.acquire().await;
        let mut chunks = self.open_chunks(file).await?;
        let result = self.read_span(&mut chunks, range.start, end).await;
        chunks.close().await;
        result
    }

    /// Bytes `start..end` of an object being read (chunks past `end` are not fetched).
    async fn read_span(
        &self,
        chunks: &mut read::Chunks,
        start: u64,
        end: u64,
    ) -> ReplicaResult<Vec<u8>> {
        let mut out = Vec::with_capacity(usize::try_from(end - start).unwrap_or(0));
        let mut at = 0u64;
        while at < end {
            let batch = chunks.next(self).await?;
            if batch.is_empty() {
                break;
            }
            for c in batch {
                let (from, to) = (at, at + c.len() as u64);
                at = to;
                if to > start && from < end {
                    let lo = usize::try_from(start.saturating_sub(from)).unwrap_or(0);
                    let hi = usize::try_from(end.min(to) - from).unwrap_or(c.len());
                    out.extend_from_slice(&c[lo..hi]);
                }
            }
        }
        self.inner.counters.count_download(at);
        Ok(out)
    }

    /// A blocking reader of the whole of `file`, fed by a task on the runtime.
    fn reader(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        let name = Self::object_name(file.level, file.min_txid, file.max_txid);
        let handle = tokio::runtime::Handle::try_current().map_err(|_| {
            self.fail(
                "get",
                &name,
                RemoteFailure::Other("NATS reads need the tokio runtime".into()),
            )
        })?;
        let (tx, rx) = mpsc::channel::<ReplicaResult<bytes::Bytes>>(READ_QUEUE);
        let (this, file) = (self.clone(), file.clone());
        handle.spawn(async move {
            // The permit covers starting the read, not the chunks: a restore opens the
            // readers of many files before it drains the first, and a reader that waits
            // on the decoder while holding a permit would starve the one being drained.
            let permit = this.inner.transfers.acquire().await;
            let got = this.open_chunks(&file).await;
            drop(permit);
            let mut chunks = match got {
                Ok(c) => c,
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            };
            this.feed(&mut chunks, &tx).await;
            chunks.close().await;
        });
        Ok(Box::new(QueueReader::new(rx)))
    }

    /// Sends every chunk of an object to a whole-file reader, until the end, an error,
    /// or the reader goes away.
    async fn feed(
        &self,
        chunks: &mut read::Chunks,
        tx: &mpsc::Sender<ReplicaResult<bytes::Bytes>>,
    ) {
        loop {
            match chunks.next(self).await {
                Ok(batch) if batch.is_empty() => return,
                Ok(batch) => {
                    for c in batch {
                        self.inner.counters.count_download(c.len() as u64);
                        if tx.send(Ok(c)).await.is_err() {
                            return;
                        }
                    }
                }
                Err(e) => {
                    let _ = tx.send(Err(e)).await;
                    return;
                }
            }
        }
    }

    /// Uploads `src` as object `name`, streamed from the file, with its creation time.
    async fn upload(
        &self,
        name: &str,
        src: &Path,
        created_at: SystemTime,
        size: u64,
    ) -> ReplicaResult<()> {
        use async_nats::jetstream::object_store::PutErrorKind;
        let mut file = tokio::fs::File::open(src)
            .await
            .map_err(|e| ReplicaError::Io {
                replica: self.inner.describe.clone(),
                op: "read",
                path: src.display().to_string(),
                source: e,
            })?;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            TIMESTAMP_HEADER,
            crate::time::format_rfc3339(created_at).as_str(),
        );
        let meta = ObjectMetadata {
            name: name.to_owned(),
            headers: Some(headers),
            ..Default::default()
        };
        let store = self.store().await?;
        self.inner.counters.count(Op::Put, size);
        match store.put(meta, &mut file).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == PutErrorKind::ReadChunks => Err(ReplicaError::Io {
                replica: self.inner.describe.clone(),
                op: "read",
                path: src.display().to_string(),
                source: std::io::Error::other(errors::chain(&e)),
            }),
            Err(e) => {
                self.after_failure().await;
                let down = matches!(
                    e.kind(),
                    PutErrorKind::TimedOut
                        | PutErrorKind::PublishChunks
                        | PutErrorKind::PublishMetadata
                );
                Err(self.fail("put", name, store_failure(down, &e)))
            }
        }
    }

    /// Deletes one object; already gone is fine.
    async fn delete_object(&self, name: &str) -> ReplicaResult<()> {
        use async_nats::jetstream::object_store::DeleteErrorKind;
        let store = self.store().await?;
        self.inner.counters.count(Op::Delete, 0);
        match store.delete(name).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == DeleteErrorKind::NotFound => Ok(()),
            Err(e) => {
                self.after_failure().await;
                let timed_out = e.kind() == DeleteErrorKind::TimedOut;
                Err(self.fail("delete", name, store_failure(timed_out, &e)))
            }
        }
    }
}

/// The creation time of an object: its `Litestream-Timestamp` header, else its
/// modification time.
fn created_at(info: &ObjectInfo) -> SystemTime {
    let from_header = info
        .headers
        .as_ref()
        .and_then(|h| h.get(TIMESTAMP_HEADER))
        .and_then(|v| crate::time::parse_rfc3339(v.as_str()).ok());
    from_header
        .or_else(|| {
            info.modified.map(|m| {
                let nanos = m.unix_timestamp_nanos();
                let nanos = u64::try_from(nanos).unwrap_or(0);
                SystemTime::UNIX_EPOCH + Duration::from_nanos(nanos)
            })
        })
        .unwrap_or(SystemTime::UNIX_EPOCH)
}

#[async_trait::async_trait]
impl ReplicaClient for NatsReplica {
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

    /// Listings carry the header timestamps, so they are exact already.
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
        let name = Self::object_name(level, min, max);
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
        if let Err(e) = self.upload(&name, src, created_at, size).await {
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
        self.inner.cache.wrote(&info);
        Ok(info)
    }

    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()> {
        let mut tasks = tokio::task::JoinSet::new();
        for f in files {
            let (this, f) = (self.clone(), f.clone());
            tasks.spawn(async move {
                let _permit = this.inner.transfers.acquire().await;
                let name = Self::object_name(f.level, f.min_txid, f.max_txid);
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

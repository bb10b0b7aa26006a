//! Reading an object's chunks through a pull consumer made for the read and deleted
//! after it. async-nats's own `get` reads through an ordered consumer that the server
//! keeps for 30 s after the read, and a server allows 1000 consumers per stream by
//! default: a restore that reads many files (or a few restores in a row) ran into that
//! limit ("maximum consumers limit reached").
//!
//! Reason to change: how object bytes come back from the object store.

use std::time::Duration;

use async_nats::jetstream::consumer::{AckPolicy, DeliverPolicy, PullConsumer, pull};
use async_nats::jetstream::object_store::InfoErrorKind;
use async_nats::jetstream::stream::Stream;
use futures_util::StreamExt;

use super::NatsReplica;
use super::errors::chain;
use crate::storage::counters::Op;
use crate::storage::{FileInfo, RemoteFailure, ReplicaError, ReplicaResult};

/// Chunks fetched per pull: 16 × 128 KiB (the store's chunk size) = 2 MiB in memory.
const BATCH: usize = 16;
/// How long the server keeps a consumer nobody pulls from (a read abandoned halfway).
const INACTIVE: Duration = Duration::from_secs(30);

/// An object being read: its chunks, in order, through a consumer of its own.
pub(super) struct Chunks {
    stream: Stream,
    consumer: Option<PullConsumer>,
    /// Chunks not fetched yet.
    left: usize,
    /// The object's name, for errors.
    name: String,
}

impl NatsReplica {
    /// Starts reading `file`: its metadata (a direct get, no consumer), then a consumer
    /// of its chunk subject.
    pub(super) async fn open_chunks(&self, file: &FileInfo) -> ReplicaResult<Chunks> {
        let name = Self::object_name(file.level, file.min_txid, file.max_txid);
        let (store, stream) = self.store_and_stream().await?;
        self.inner.counters.count(Op::Get, 0);
        let info = match store.info(&name).await {
            Ok(i) if !i.deleted => i,
            Ok(_) => return Err(self.not_found(file)),
            Err(e) if e.kind() == InfoErrorKind::NotFound => return Err(self.not_found(file)),
            Err(e) => {
                self.after_failure().await;
                let timed_out = e.kind() == InfoErrorKind::TimedOut;
                return Err(self.fail("get", &name, super::store_failure(timed_out, &e)));
            }
        };
        let consumer = if info.chunks == 0 {
            None
        } else {
            let config = pull::Config {
                deliver_policy: DeliverPolicy::All,
                filter_subject: format!("$O.{}.C.{}", info.bucket, info.nuid),
                ack_policy: AckPolicy::None,
                inactive_threshold: INACTIVE,
                ..Default::default()
            };
            let created = stream.create_consumer(config).await;
            Some(
                created
                    .map_err(|e| self.fail("get", &name, RemoteFailure::Unreachable(chain(&e))))?,
            )
        };
        Ok(Chunks {
            stream,
            consumer,
            left: info.chunks,
            name,
        })
    }

    /// The error for a file the listing had but the store does not (any more).
    fn not_found(&self, file: &FileInfo) -> ReplicaError {
        // The cache was wrong about this file: list again next time.
        self.inner.cache.invalidate(file.level);
        ReplicaError::NotFound {
            replica: self.inner.describe.clone(),
            level: file.level,
            name: file.filename(),
        }
    }
}

impl Chunks {
    /// The next chunks, in order; empty once the whole object is read (the consumer is
    /// then deleted).
    pub(super) async fn next(&mut self, replica: &NatsReplica) -> ReplicaResult<Vec<bytes::Bytes>> {
        let Some(consumer) = self.consumer.as_ref() else {
            return Ok(Vec::new());
        };
        if self.left == 0 {
            self.close().await;
            return Ok(Vec::new());
        }
        let fail =
            |detail: String| replica.fail("get", &self.name, RemoteFailure::Unreachable(detail));
        let mut messages = consumer
            .fetch()
            .max_messages(self.left.min(BATCH))
            .messages()
            .await
            .map_err(|e| fail(chain(&e)))?;
        let mut out = Vec::new();
        while let Some(m) = messages.next().await {
            out.push(m.map_err(|e| fail(chain(&*e)))?.payload.clone());
        }
        if out.is_empty() {
            return Err(fail("the object's chunks stopped short".into()));
        }
        self.left = self.left.saturating_sub(out.len());
        Ok(out)
    }

    /// Deletes the consumer (also after a read given up early).
    pub(super) async fn close(&mut self) {
        if let Some(consumer) = self.consumer.take() {
            let name = consumer.cached_info().name.clone();
            let _ = self.stream.delete_consumer(&name).await;
        }
    }
}

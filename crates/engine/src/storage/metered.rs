//! A replica client timed: each operation the engine asks of a remote replica is
//! recorded in `litestream_replica_operation_duration_seconds` and, when it fails, in
//! `litestream_replica_operation_errors_total` with its error code. Wrapped around every
//! remote client by [`open_client`](super::open_client) while metrics are on; the
//! request counts themselves are kept by each client (see `counters`).
//!
//! Reason to change: what is timed.

use std::fmt;
use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::{Instant, SystemTime};

use tideline_ltx::Txid;

use super::{FileInfo, ReplicaClient, ReplicaResult, RequestCounts};
use crate::metrics;

/// `inner`, timed under the label `replica_type`.
pub(crate) struct Metered {
    inner: Arc<dyn ReplicaClient>,
    replica_type: &'static str,
}

impl Metered {
    pub(crate) fn wrap(inner: Arc<dyn ReplicaClient>, replica_type: &'static str) -> Metered {
        Metered {
            inner,
            replica_type,
        }
    }

    async fn timed<T>(
        &self,
        operation: &'static str,
        call: impl Future<Output = ReplicaResult<T>>,
    ) -> ReplicaResult<T> {
        let started = Instant::now();
        let out = call.await;
        let code = out.as_ref().err().map(|e| e.code());
        metrics::replica_call(self.replica_type, operation, started.elapsed(), code);
        out
    }
}

impl fmt::Debug for Metered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait::async_trait]
impl ReplicaClient for Metered {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    async fn list(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        self.timed("LIST", self.inner.list(level)).await
    }

    async fn read_range(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
        self.timed("GET", self.inner.read_range(file, range)).await
    }

    fn open(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        // A streaming read: its time is the reader's, spent by whoever reads it; only
        // a failure to start it is recorded.
        let out = self.inner.open(file);
        if let Err(e) = &out {
            metrics::replica_call(self.replica_type, "GET", Default::default(), Some(e.code()));
        }
        out
    }

    async fn write(
        &self,
        level: u8,
        min: Txid,
        max: Txid,
        created_at: SystemTime,
        src: &Path,
    ) -> ReplicaResult<FileInfo> {
        self.timed("PUT", self.inner.write(level, min, max, created_at, src))
            .await
    }

    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()> {
        self.timed("DELETE", self.inner.delete(files)).await
    }

    async fn list_fresh(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        self.timed("LIST", self.inner.list_fresh(level)).await
    }

    async fn list_exact(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        self.timed("LIST", self.inner.list_exact(level)).await
    }

    fn start_new_backup(&self) {
        self.inner.start_new_backup();
    }

    fn request_counts(&self) -> Option<RequestCounts> {
        self.inner.request_counts()
    }
}

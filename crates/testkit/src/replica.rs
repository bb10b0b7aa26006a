//! Replica wrappers for tests: one that counts the requests a replicator makes, and
//! one whose chosen operations fail, stall or slow down, around any real replica.

use std::io::Read;
use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use tideline_engine::storage::{ReplicaError, ReplicaResult};
use tideline_engine::{FileInfo, ReplicaClient};
use tideline_ltx::Txid;

/// Requests a [`CountingReplica`] passed on, by kind.
#[derive(Debug, Default)]
pub struct ReplicaCounts {
    /// Listings.
    pub list: AtomicU64,
    /// Reads (ranged or whole).
    pub get: AtomicU64,
    /// Writes.
    pub put: AtomicU64,
    /// Delete calls.
    pub delete: AtomicU64,
}

impl ReplicaCounts {
    /// `[list, get, put, delete]` now.
    pub fn snapshot(&self) -> [u64; 4] {
        [&self.list, &self.get, &self.put, &self.delete].map(|c| c.load(Ordering::SeqCst))
    }

    /// Every request so far.
    pub fn total(&self) -> u64 {
        self.snapshot().iter().sum()
    }
}

/// A replica that counts the requests it passes on to `inner`.
#[derive(Debug)]
pub struct CountingReplica {
    inner: Arc<dyn ReplicaClient>,
    counts: Arc<ReplicaCounts>,
}

impl CountingReplica {
    /// Wraps `inner`; the counts are shared with the caller.
    pub fn new(inner: Arc<dyn ReplicaClient>) -> (CountingReplica, Arc<ReplicaCounts>) {
        let counts = Arc::new(ReplicaCounts::default());
        let replica = CountingReplica {
            inner,
            counts: Arc::clone(&counts),
        };
        (replica, counts)
    }
}

#[async_trait::async_trait]
impl ReplicaClient for CountingReplica {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn list(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        self.counts.list.fetch_add(1, Ordering::SeqCst);
        self.inner.list(level).await
    }
    async fn read_range(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
        self.counts.get.fetch_add(1, Ordering::SeqCst);
        self.inner.read_range(file, range).await
    }
    fn open(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        self.counts.get.fetch_add(1, Ordering::SeqCst);
        self.inner.open(file)
    }
    async fn write(
        &self,
        level: u8,
        min: Txid,
        max: Txid,
        at: SystemTime,
        src: &Path,
    ) -> ReplicaResult<FileInfo> {
        self.counts.put.fetch_add(1, Ordering::SeqCst);
        self.inner.write(level, min, max, at, src).await
    }
    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()> {
        self.counts.delete.fetch_add(1, Ordering::SeqCst);
        self.inner.delete(files).await
    }
    fn start_new_backup(&self) {
        self.inner.start_new_backup();
    }
}

/// What a [`FaultyReplica`] does to an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicaFault {
    /// Fails at once with permission denied (a bucket policy, a read-only folder).
    Forbidden,
    /// Never answers (a server that accepted the connection and went silent).
    Stall,
    /// Answers after this long (a slow link).
    Delay(Duration),
}

impl ReplicaFault {
    async fn strike(self, op: &'static str) -> ReplicaResult<()> {
        match self {
            ReplicaFault::Forbidden => Err(ReplicaError::Io {
                replica: "test".into(),
                op,
                path: "faulty replica".into(),
                source: std::io::Error::new(std::io::ErrorKind::PermissionDenied, "forbidden"),
            }),
            ReplicaFault::Stall => std::future::pending().await,
            ReplicaFault::Delay(d) => {
                tokio::time::sleep(d).await;
                Ok(())
            }
        }
    }
}

/// A replica whose writes (by level) and deletes meet a [`ReplicaFault`]; everything else is
/// `inner`'s.
#[derive(Debug)]
pub struct FaultyReplica {
    inner: Arc<dyn ReplicaClient>,
    /// Writes to levels at or above this meet `write_fault` (0: every write).
    from_level: u8,
    write_fault: Option<ReplicaFault>,
    delete_fault: Option<ReplicaFault>,
}

impl FaultyReplica {
    /// `inner` with no faults yet.
    pub fn new(inner: Arc<dyn ReplicaClient>) -> FaultyReplica {
        FaultyReplica {
            inner,
            from_level: 0,
            write_fault: None,
            delete_fault: None,
        }
    }

    /// Writes to `from_level` and above meet `fault`.
    pub fn writes(mut self, from_level: u8, fault: ReplicaFault) -> FaultyReplica {
        self.from_level = from_level;
        self.write_fault = Some(fault);
        self
    }

    /// Deletes meet `fault`.
    pub fn deletes(mut self, fault: ReplicaFault) -> FaultyReplica {
        self.delete_fault = Some(fault);
        self
    }
}

#[async_trait::async_trait]
impl ReplicaClient for FaultyReplica {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    async fn list(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        self.inner.list(level).await
    }
    async fn read_range(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
        self.inner.read_range(file, range).await
    }
    fn open(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        self.inner.open(file)
    }
    async fn write(
        &self,
        level: u8,
        min: Txid,
        max: Txid,
        at: SystemTime,
        src: &Path,
    ) -> ReplicaResult<FileInfo> {
        if let Some(fault) = self.write_fault.filter(|_| level >= self.from_level) {
            fault.strike("write").await?;
        }
        self.inner.write(level, min, max, at, src).await
    }
    async fn delete(&self, files: &[FileInfo]) -> ReplicaResult<()> {
        if let Some(fault) = self.delete_fault {
            fault.strike("delete").await?;
        }
        self.inner.delete(files).await
    }
    fn start_new_backup(&self) {
        self.inner.start_new_backup();
    }
}

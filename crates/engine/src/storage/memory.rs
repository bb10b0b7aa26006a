//! An in-memory replica for fast unit tests of the replication logic. Real backends
//! are tested against real storage; this one only stands in where storage is not the
//! point.

use std::collections::BTreeMap;
use std::io::{Cursor, Read};
use std::ops::Range;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use tideline_ltx::Txid;

use super::{FileInfo, ReplicaClient, ReplicaError, ReplicaResult, check_level};

type Key = (u8, Txid, Txid);
/// A stored file: its bytes and creation time.
type Stored = (Arc<Vec<u8>>, SystemTime);

/// A replica held in memory; clones share the same contents.
#[derive(Debug, Clone, Default)]
pub struct MemoryReplica {
    files: Arc<Mutex<BTreeMap<Key, Stored>>>,
}

impl MemoryReplica {
    /// An empty replica.
    pub fn new() -> Self {
        Self::default()
    }

    fn get(&self, file: &FileInfo) -> ReplicaResult<Arc<Vec<u8>>> {
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files
            .get(&(file.level, file.min_txid, file.max_txid))
            .map(|(b, _)| Arc::clone(b))
            .ok_or_else(|| ReplicaError::NotFound {
                replica: self.describe(),
                level: file.level,
                name: file.filename(),
            })
    }
}

/// A reader over shared bytes.
struct SharedBytes(Arc<Vec<u8>>);

impl AsRef<[u8]> for SharedBytes {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[async_trait::async_trait]
impl ReplicaClient for MemoryReplica {
    fn describe(&self) -> String {
        "memory:".into()
    }

    async fn list(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        check_level(level)?;
        let files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        Ok(files
            .range((level, Txid(0), Txid(0))..=(level, Txid(u64::MAX), Txid(u64::MAX)))
            .map(|(&(level, min, max), (b, t))| FileInfo {
                level,
                min_txid: min,
                max_txid: max,
                size: b.len() as u64,
                created_at: *t,
            })
            .collect())
    }

    async fn read_range(&self, file: &FileInfo, range: Range<u64>) -> ReplicaResult<Vec<u8>> {
        let b = self.get(file)?;
        let len = b.len() as u64;
        Ok(b[range.start.min(len) as usize..range.end.min(len) as usize].to_vec())
    }

    fn open(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
        Ok(Box::new(Cursor::new(SharedBytes(self.get(file)?))))
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
        let bytes = tokio::fs::read(src)
            .await
            .map_err(|source| ReplicaError::Io {
                replica: self.describe(),
                op: "read",
                path: src.display().to_string(),
                source,
            })?;
        let size = bytes.len() as u64;
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        files.insert((level, min, max), (Arc::new(bytes), created_at));
        Ok(FileInfo {
            level,
            min_txid: min,
            max_txid: max,
            size,
            created_at,
        })
    }

    async fn delete(&self, del: &[FileInfo]) -> ReplicaResult<()> {
        let mut files = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        for f in del {
            files.remove(&(f.level, f.min_txid, f.max_txid));
        }
        Ok(())
    }
}

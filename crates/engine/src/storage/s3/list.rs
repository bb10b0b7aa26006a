//! Listing a level from the server: LIST pages into a level's files, through the
//! listing cache for a writer's client, and HEADs for exact creation times.
//!
//! Reason to change: how the replica's layout is listed or read back as files.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use tideline_ltx::parse_filename;
use tokio::sync::Semaphore;

use super::{FileInfo, ReplicaResult, S3Failure, S3Replica, TIMESTAMP_KEY};
use crate::storage::cache::LevelCache;
use crate::time::parse_rfc3339;

/// HEADs in flight when listing with exact creation times.
const HEAD_CONCURRENCY: usize = 32;

impl S3Replica {
    /// Lists `level` from the server; a writer's client then caches the listing, with
    /// the exact creation times it knows and its own changes made meanwhile.
    pub(super) async fn relist(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
        if !self.inner.writer.load(Ordering::Acquire) {
            return Ok(self.list_remote(level).await?.into_values().collect());
        }
        let flight = self.inner.cache.begin_listing(level);
        let result = self.list_remote(level).await;
        flight.finish(result)
    }

    /// One fresh listing of `level`, every page of it.
    pub(super) async fn list_remote(&self, level: u8) -> ReplicaResult<LevelCache> {
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
                if let Some(f) = listed_file(level, &prefix, obj) {
                    out.insert((f.min_txid, f.max_txid), f);
                }
            }
            match resp.next_continuation_token() {
                Some(t) if resp.is_truncated() == Some(true) => token = Some(t.to_string()),
                _ => break,
            }
        }
        Ok(out)
    }

    /// A fresh listing of `level` with each file's creation time from its metadata
    /// (LIST gives LastModified): HEADs in parallel, bounded.
    pub(super) async fn list_with_created_at(&self, level: u8) -> ReplicaResult<Vec<FileInfo>> {
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
}

/// The LTX file a listed object is, if it is one directly under `prefix`.
fn listed_file(level: u8, prefix: &str, obj: &aws_sdk_s3::types::Object) -> Option<FileInfo> {
    let (min, max) = obj
        .key()?
        .strip_prefix(prefix)
        .filter(|name| !name.contains('/'))
        .and_then(parse_filename)?;
    let created_at = obj
        .last_modified()
        .and_then(|t| SystemTime::try_from(*t).ok())
        .unwrap_or(SystemTime::UNIX_EPOCH);
    Some(FileInfo {
        level,
        min_txid: min,
        max_txid: max,
        size: obj.size().unwrap_or(0).max(0) as u64,
        created_at,
    })
}

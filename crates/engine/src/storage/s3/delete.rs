//! Deletes, in `DeleteObjects` batches of 1000, and what they do to the listing cache.
//!
//! Reason to change: how files are removed from the bucket.

use aws_sdk_s3::types::{Delete, ObjectIdentifier};

use super::{FileInfo, ReplicaResult, S3Failure, S3Replica};

/// DeleteObjects takes at most this many keys.
pub(super) const DELETE_BATCH: usize = 1000;

impl S3Replica {
    /// Deletes one batch of at most [`DELETE_BATCH`] files. A missing file is not an
    /// error; any other failure makes the levels involved list again.
    pub(super) async fn delete_batch(&self, batch: &[FileInfo]) -> ReplicaResult<()> {
        let first = batch
            .first()
            .map(|f| self.key(f.level, f.min_txid, f.max_txid))
            .unwrap_or_default();
        let delete = self.delete_request(batch, &first)?;
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
        let invalidate = || {
            for &l in &levels {
                self.inner.cache.invalidate(l);
            }
        };
        let resp = match result {
            Ok(r) => r,
            Err(e) => {
                invalidate();
                return Err(self.error("delete", &first, e));
            }
        };
        {
            let mut cache = self.inner.cache.lock();
            for f in batch {
                cache[usize::from(f.level)].record_delete(f.min_txid, f.max_txid);
            }
        }
        if let Some(err) = resp.errors().iter().find(|e| e.code() != Some("NoSuchKey")) {
            invalidate();
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
        Ok(())
    }

    fn delete_request(&self, batch: &[FileInfo], first: &str) -> ReplicaResult<Delete> {
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
        Delete::builder()
            .set_objects(Some(objects))
            .quiet(true)
            .build()
            .map_err(|e| self.fail("delete", first, S3Failure::Other(e.to_string())))
    }
}

//! Uploads, streamed from the local file: one PUT up to `part-size`, else a multipart
//! upload with `concurrency` parts in flight, its parts grown past `part-size` where
//! needed to stay within S3's 10,000 parts, and aborted when a part or the completion
//! fails. Every new object gets the same settings ([`NewObject`]) either way.
//!
//! Reason to change: how objects are written to S3.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use aws_sdk_s3::operation::create_multipart_upload::builders::CreateMultipartUploadFluentBuilder;
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{
    CompletedMultipartUpload, CompletedPart, ServerSideEncryption, StorageClass,
};
use tideline_ltx::Txid;

use super::sse::Sse;
use super::{FileInfo, ReplicaResult, S3Failure, S3Replica, TIMESTAMP_KEY};
use crate::time::format_rfc3339;

/// S3's most parts in one multipart upload.
pub(crate) const MAX_PARTS: u64 = 10_000;
/// S3's smallest part (all but the last).
pub(super) const MIN_PART_SIZE: u64 = 5 << 20;
const MIB: u64 = 1 << 20;

/// The part size for a file of `size` bytes: the configured one, grown (in whole
/// MiB) just enough for the file to fit in `max_parts` parts. With the default 5 MiB
/// that happens above 48.8 GiB; without it S3 rejects part 10,001 and the upload of a
/// large snapshot fails forever.
pub(crate) fn part_size_for(configured: u64, size: u64, max_parts: u64) -> u64 {
    let needed = size.div_ceil(max_parts.max(1)).div_ceil(MIB) * MIB;
    configured.max(needed)
}

/// A request that creates an object: a PutObject or a CreateMultipartUpload. Both
/// take the same settings, applied in one place by [`S3Replica::new_object`].
trait NewObject: Sized {
    fn with_metadata(self, key: &str, value: String) -> Self;
    fn with_storage_class(self, class: StorageClass) -> Self;
    fn with_sse_customer(self, sse: &Sse) -> Self;
    fn with_kms_key(self, key_id: &str) -> Self;
}

macro_rules! new_object {
    ($($builder:ty),*) => {$(
        impl NewObject for $builder {
            fn with_metadata(self, key: &str, value: String) -> Self {
                self.metadata(key, value)
            }
            fn with_storage_class(self, class: StorageClass) -> Self {
                self.storage_class(class)
            }
            fn with_sse_customer(self, sse: &Sse) -> Self {
                sse_customer!(self, sse)
            }
            fn with_kms_key(self, key_id: &str) -> Self {
                self.server_side_encryption(ServerSideEncryption::AwsKms)
                    .ssekms_key_id(key_id)
            }
        }
    )*};
}

new_object!(PutObjectFluentBuilder, CreateMultipartUploadFluentBuilder);

impl S3Replica {
    /// Writes `src` as the file `min..=max` of `level` and records it in the cache.
    pub(super) async fn write_file(
        &self,
        level: u8,
        (min, max): (Txid, Txid),
        created_at: SystemTime,
        src: &Path,
    ) -> ReplicaResult<FileInfo> {
        let key = self.key(level, min, max);
        self.inner.writer.store(true, Ordering::Release);
        let size = tokio::fs::metadata(src)
            .await
            .map_err(|e| self.read_failed(&key, src, e))?
            .len();
        let result = if size <= self.inner.part_size {
            self.put_whole(&key, src, size, created_at).await
        } else {
            self.put_multipart(&key, src, size, created_at).await
        };
        if let Err(e) = result {
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

    /// The settings of every new object: its creation time as metadata, the storage
    /// class and server-side encryption.
    fn new_object<B: NewObject>(&self, req: B, created_at: SystemTime) -> B {
        let mut req = req.with_metadata(TIMESTAMP_KEY, format_rfc3339(created_at));
        if let Some(c) = &self.inner.storage_class {
            req = req.with_storage_class(c.clone());
        }
        req = req.with_sse_customer(&self.inner.sse);
        if let Some(kms) = &self.inner.sse.kms_key_id {
            req = req.with_kms_key(kms);
        }
        req
    }

    fn read_failed(&self, key: &str, src: &Path, e: impl std::fmt::Display) -> super::ReplicaError {
        self.fail(
            "read",
            key,
            S3Failure::Other(format!("{}: {e}", src.display())),
        )
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
            .map_err(|e| self.read_failed(key, src, e))
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
        let req = self
            .inner
            .client
            .put_object()
            .bucket(&self.inner.bucket)
            .key(key)
            .content_length(size as i64)
            .body(body);
        let req = self.new_object(req, created_at);
        req.send().await.map_err(|e| self.error("put", key, e))?;
        Ok(())
    }

    async fn put_multipart(
        &self,
        key: &str,
        src: &Path,
        size: u64,
        created_at: SystemTime,
    ) -> ReplicaResult<()> {
        let upload_id = self.start_multipart(key, created_at).await?;
        // Should this future be dropped half way (a shutdown past its deadline), the
        // guard aborts the upload in the background.
        let guard = AbortOnDrop {
            client: self.inner.client.clone(),
            bucket: self.inner.bucket.clone(),
            key: key.to_string(),
            upload_id: Some(upload_id.clone()),
        };
        let result = match self.upload_parts(key, &upload_id, src, size).await {
            Ok(parts) => self.complete_multipart(key, &upload_id, parts).await,
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

    /// Creates a multipart upload; its id.
    async fn start_multipart(&self, key: &str, created_at: SystemTime) -> ReplicaResult<String> {
        let create = self
            .inner
            .client
            .create_multipart_upload()
            .bucket(&self.inner.bucket)
            .key(key);
        let upload = self
            .new_object(create, created_at)
            .send()
            .await
            .map_err(|e| self.error("start multipart upload", key, e))?;
        upload.upload_id().map(str::to_string).ok_or_else(|| {
            self.fail(
                "start multipart upload",
                key,
                S3Failure::Other("the server returned no upload id".into()),
            )
        })
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: Vec<CompletedPart>,
    ) -> ReplicaResult<()> {
        self.inner
            .client
            .complete_multipart_upload()
            .bucket(&self.inner.bucket)
            .key(key)
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await
            .map(|_| ())
            .map_err(|e| self.error("complete multipart upload", key, e))
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

#[cfg(test)]
mod tests {
    use super::*;

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

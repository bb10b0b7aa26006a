//! Reads: ranged GETs (retried when a body is cut short), and the whole-file reader
//! that fetches large files in chunks, several at once, ahead of the decoder, with
//! memory bounded by the chunks in flight.
//!
//! Reason to change: how objects are read back (chunk size, read-ahead, retries).

use std::collections::VecDeque;
use std::io::Read;
use std::ops::Range;
use std::time::Duration;

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use tokio::sync::mpsc;

use super::{FileInfo, ReplicaClient, ReplicaError, ReplicaResult, S3Failure, S3Replica};

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

/// One ranged GET's body, as the buffers it arrived in.
type Chunk = VecDeque<bytes::Bytes>;

impl S3Replica {
    /// Bytes `range` of `file`, clipped to its size.
    pub(super) async fn read_bytes(
        &self,
        file: &FileInfo,
        range: Range<u64>,
    ) -> ReplicaResult<Vec<u8>> {
        let end = range.end.min(file.size);
        if range.start >= end {
            return Ok(Vec::new());
        }
        let chunk = self.get_range(file, range.start..end).await?;
        Ok(chunk.iter().flat_map(|b| b.iter().copied()).collect())
    }

    /// A blocking reader of the whole of `file`, fed by a task on the runtime.
    pub(super) fn reader(&self, file: &FileInfo) -> ReplicaResult<Box<dyn Read + Send>> {
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
            current: VecDeque::new(),
            done: false,
        }))
    }

    /// A missing object is [`ReplicaError::NotFound`] (and the cache was wrong about
    /// its level); anything else is named by [`S3Replica::error`].
    pub(super) fn not_found_or<E>(
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
            self.inner.cache.invalidate(file.level);
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

    /// Fetches `file` in order, `READ_AHEAD` chunks at once, into `tx`. Stops early
    /// when the reader is dropped.
    async fn feed_chunks(self, file: FileInfo, tx: mpsc::Sender<ReplicaResult<Chunk>>) {
        let mut pending = VecDeque::new();
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

//! Counters of the requests (every attempt, retries included) and bytes a client has
//! used, by operation, for `tideline status` and the request report: the figures of
//! the backends that bill or wait by request (S3, SFTP, WebDAV). Each request is also
//! recorded in `litestream_replica_operation_total` / `_bytes` when metrics are on.
//!
//! Reason to change: what is counted.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// The kind of a request, as the counts group them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Op {
    /// A listing (S3 LIST, WebDAV PROPFIND, SFTP READDIR).
    List,
    /// A read of a file's bytes.
    Get,
    /// A look at one file's metadata.
    Head,
    /// A write of a file's bytes.
    Put,
    /// S3 multipart bookkeeping; directory creation and renames elsewhere.
    Multipart,
    /// A delete.
    Delete,
}

impl Op {
    /// The `operation` label of the metrics, in Litestream's words where it has them.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Op::List => "LIST",
            Op::Get => "GET",
            Op::Head => "HEAD",
            Op::Put => "PUT",
            Op::Multipart => "MULTIPART",
            Op::Delete => "DELETE",
        }
    }
}

/// Requests and bytes a replica client has used since it was created.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    /// LIST requests.
    pub list: u64,
    /// GET requests (whole or ranged).
    pub get: u64,
    /// HEAD requests.
    pub head: u64,
    /// PUT requests: whole objects and multipart parts.
    pub put: u64,
    /// Multipart create, complete and abort requests.
    pub multipart: u64,
    /// DELETE and DeleteObjects requests.
    pub delete: u64,
    /// Bytes sent in request bodies.
    pub bytes_up: u64,
    /// Bytes received in response bodies.
    pub bytes_down: u64,
}

impl RequestCounts {
    /// Every request.
    pub fn total(&self) -> u64 {
        self.list + self.get + self.head + self.put + self.multipart + self.delete
    }
}

/// The live counts, shared by a client and its interceptor.
#[derive(Debug)]
pub(crate) struct Counters {
    /// The `replica_type` label: `s3`, `gs`, `abs`, `sftp`, `webdav`, `nats`, `oss`.
    replica_type: &'static str,
    list: AtomicU64,
    get: AtomicU64,
    head: AtomicU64,
    put: AtomicU64,
    multipart: AtomicU64,
    delete: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
}

impl Counters {
    /// Zero counts of a client of `replica_type`.
    pub(crate) fn new(replica_type: &'static str) -> Counters {
        let zero = AtomicU64::new;
        Counters {
            replica_type,
            list: zero(0),
            get: zero(0),
            head: zero(0),
            put: zero(0),
            multipart: zero(0),
            delete: zero(0),
            bytes_up: zero(0),
            bytes_down: zero(0),
        }
    }

    pub(crate) fn snapshot(&self) -> RequestCounts {
        let l = |a: &AtomicU64| a.load(Ordering::Relaxed);
        RequestCounts {
            list: l(&self.list),
            get: l(&self.get),
            head: l(&self.head),
            put: l(&self.put),
            multipart: l(&self.multipart),
            delete: l(&self.delete),
            bytes_up: l(&self.bytes_up),
            bytes_down: l(&self.bytes_down),
        }
    }

    /// Counts one request of kind `op` that sent `bytes_up` bytes.
    pub(crate) fn count(&self, op: Op, bytes_up: u64) {
        let counter = match op {
            Op::List => &self.list,
            Op::Get => &self.get,
            Op::Head => &self.head,
            Op::Put => &self.put,
            Op::Multipart => &self.multipart,
            Op::Delete => &self.delete,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes_up.fetch_add(bytes_up, Ordering::Relaxed);
        crate::metrics::replica_request(self.replica_type, op.label(), bytes_up);
    }

    /// Counts `bytes` received.
    pub(crate) fn count_download(&self, bytes: u64) {
        self.bytes_down.fetch_add(bytes, Ordering::Relaxed);
        // Nearly all of what is received is file contents (listings are small), so
        // the metrics count it under GET, as Litestream does.
        crate::metrics::replica_download(self.replica_type, "GET", bytes);
    }
}

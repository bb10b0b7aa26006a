//! Counters of the requests (every attempt, retries included) and bytes a client has
//! used, by operation, for `tideline status`: [`RequestCounts`] and the SDK
//! interceptor that keeps them.
//!
//! Reason to change: what is counted, or how a request is told to be one operation
//! or another.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};
use serde::{Deserialize, Serialize};

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
#[derive(Debug, Default)]
pub(super) struct Counters {
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
    pub(super) fn snapshot(&self) -> RequestCounts {
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

    /// Counts one request of `method` to `uri` with a body of `bytes_up` bytes.
    fn count_request(&self, method: &str, uri: &str, bytes_up: u64) {
        let query = uri.split_once('?').map_or("", |(_, q)| q);
        let has = |k: &str| {
            query
                .split('&')
                .any(|p| p == k || p.starts_with(&format!("{k}=")))
        };
        // Path-style and virtual-hosted requests both end in the key for objects;
        // listings are the only GETs with `list-type` (or `prefix`) in the query.
        let counter = match method {
            "GET" if has("list-type") || has("prefix") => &self.list,
            "GET" => &self.get,
            "HEAD" => &self.head,
            "PUT" => &self.put,
            "POST" if has("delete") => &self.delete,
            "POST" => &self.multipart,
            "DELETE" if has("uploadId") => &self.multipart,
            "DELETE" => &self.delete,
            _ => &self.list,
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.bytes_up.fetch_add(bytes_up, Ordering::Relaxed);
    }

    fn count_download(&self, bytes: u64) {
        self.bytes_down.fetch_add(bytes, Ordering::Relaxed);
    }
}

/// Counts every attempt the SDK transmits (retries included), as the provider bills.
#[derive(Debug)]
pub(super) struct CountRequests(pub(super) Arc<Counters>);

fn content_length(headers: &aws_sdk_s3::config::http::HttpResponse) -> u64 {
    headers
        .headers()
        .get("content-length")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

impl Intercept for CountRequests {
    fn name(&self) -> &'static str {
        "tideline-request-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        let req = context.request();
        let up = req
            .headers()
            .get("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        self.0.count_request(req.method(), req.uri(), up);
        Ok(())
    }

    fn read_after_transmit(
        &self,
        context: &BeforeDeserializationInterceptorContextRef<'_>,
        _: &RuntimeComponents,
        _: &mut ConfigBag,
    ) -> Result<(), aws_sdk_s3::error::BoxError> {
        self.0.count_download(content_length(context.response()));
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BUCKET: &str = "http://127.0.0.1:9000/bucket";

    fn counted(requests: &[(&str, &str, u64)]) -> RequestCounts {
        let c = Counters::default();
        for (method, path, up) in requests {
            c.count_request(method, &format!("{BUCKET}{path}"), *up);
        }
        c.snapshot()
    }

    #[test]
    fn each_request_is_counted_as_its_operation() {
        let one = |method, path| counted(&[(method, path, 0)]);
        assert_eq!(one("GET", "?list-type=2&prefix=p%2F0000%2F").list, 1);
        assert_eq!(one("GET", "?prefix=p").list, 1);
        // A key that merely contains the word is a GET of an object.
        let get = one("GET", "/p/list-type/0000/1-1.ltx?x-id=GetObject");
        assert_eq!((get.get, get.list), (1, 0));
        assert_eq!(one("HEAD", "/p/0000/a.ltx").head, 1);
        assert_eq!(one("PUT", "/p/0000/a.ltx?partNumber=1&uploadId=u").put, 1);
        assert_eq!(one("POST", "?delete").delete, 1);
        assert_eq!(one("POST", "?delete=").delete, 1);
        assert_eq!(one("POST", "/p/0000/a.ltx?uploads").multipart, 1);
        assert_eq!(one("POST", "/p/0000/a.ltx?uploadId=u").multipart, 1);
        assert_eq!(one("DELETE", "/p/0000/a.ltx?uploadId=u").multipart, 1);
        assert_eq!(one("DELETE", "/p/0000/a.ltx").delete, 1);
    }

    #[test]
    fn counts_add_up() {
        let counts = counted(&[
            ("PUT", "/a", 100),
            ("PUT", "/b", 23),
            ("GET", "/a", 0),
            ("GET", "?list-type=2", 0),
            ("HEAD", "/a", 0),
            ("POST", "/a?uploads", 0),
            ("DELETE", "/a", 0),
        ]);
        assert_eq!(
            counts,
            RequestCounts {
                list: 1,
                get: 1,
                head: 1,
                put: 2,
                multipart: 1,
                delete: 1,
                bytes_up: 123,
                bytes_down: 0,
            }
        );
        assert_eq!(counts.total(), 7);
    }

    #[test]
    fn downloads_and_totals_exclude_bytes() {
        let c = Counters::default();
        c.count_download(4096);
        c.count_download(1);
        c.count_request("GET", "/k", 0);
        let s = c.snapshot();
        assert_eq!(s.bytes_down, 4097);
        assert_eq!(s.total(), 1, "bytes are not requests");
        assert_eq!(RequestCounts::default().total(), 0);
    }

    #[test]
    fn counts_survive_serialization() {
        let counts = counted(&[("PUT", "/a", 9), ("GET", "/a", 0)]);
        let json = serde_json::to_string(&counts).unwrap();
        assert!(json.contains("\"bytes_up\":9"), "{json}");
        assert_eq!(
            serde_json::from_str::<RequestCounts>(&json).unwrap(),
            counts
        );
    }
}

//! The SDK interceptor that keeps a client's [`Counters`]: how a request is told to be
//! one operation or another.
//!
//! Reason to change: how S3 requests are classified.

use std::sync::Arc;

use aws_sdk_s3::config::interceptors::{
    BeforeDeserializationInterceptorContextRef, BeforeTransmitInterceptorContextRef,
};
use aws_sdk_s3::config::{ConfigBag, Intercept, RuntimeComponents};

use crate::storage::counters::{Counters, Op};

/// Counts one request by its method and URI.
fn count_request(counters: &Counters, method: &str, uri: &str, bytes_up: u64) {
    let query = uri.split_once('?').map_or("", |(_, q)| q);
    let has = |k: &str| {
        query
            .split('&')
            .any(|p| p == k || p.starts_with(&format!("{k}=")))
    };
    // Path-style and virtual-hosted requests both end in the key for objects;
    // listings are the only GETs with `list-type` (or `prefix`) in the query.
    let op = match method {
        "GET" if has("list-type") || has("prefix") => Op::List,
        "GET" => Op::Get,
        "HEAD" => Op::Head,
        "PUT" => Op::Put,
        "POST" if has("delete") => Op::Delete,
        "POST" => Op::Multipart,
        "DELETE" if has("uploadId") => Op::Multipart,
        "DELETE" => Op::Delete,
        _ => Op::List,
    };
    counters.count(op, bytes_up);
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
        count_request(&self.0, req.method(), req.uri(), up);
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
    use crate::storage::RequestCounts;

    const BUCKET: &str = "http://127.0.0.1:9000/bucket";

    fn counted(requests: &[(&str, &str, u64)]) -> RequestCounts {
        let c = Counters::new("s3");
        for (method, path, up) in requests {
            count_request(&c, method, &format!("{BUCKET}{path}"), *up);
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
        let c = Counters::new("s3");
        c.count_download(4096);
        c.count_download(1);
        count_request(&c, "GET", "/k", 0);
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

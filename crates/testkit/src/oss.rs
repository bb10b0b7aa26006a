//! A local Alibaba Cloud OSS server on 127.0.0.1 for the `oss` replica's tests (no OSS
//! emulator exists): it verifies every request's OSS Signature V4 (`OSS4-HMAC-SHA256`)
//! against one key pair and keeps objects as files, so Litestream 0.5.17 (Alibaba's OSS
//! Go SDK v2) and Tideline write and read the same bucket through the same checks.
//!
//! It serves the operations both clients send, path-style (as the SDK does for an IP
//! endpoint): PutBucket, PutObject, GetObject (ranged, `x-oss-range-behavior:
//! standard`), HeadObject, DeleteObject, ListObjectsV2, DeleteMultipleObjects and the
//! multipart trio the SDK's uploader always uses for a stream (InitiateMultipartUpload,
//! UploadPart, CompleteMultipartUpload, and Abort). User metadata (`x-oss-meta-*`) is
//! kept per object. Errors are OSS's XML: `SignatureDoesNotMatch`,
//! `InvalidAccessKeyId`, `NoSuchBucket`, `NoSuchKey`, `InvalidRange`.
//!
//! Object `k` of bucket `b` is the file `<root>/<b>/<k percent-encoded>` (flat, so keys
//! with a leading or doubled `/`, as Litestream writes for an empty path, stay keys).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use tideline_engine::config::{OssReplicaConfig, ReplicaConfig, ReplicaTarget, Sensitive};
use tideline_engine::storage::oss::signing::{
    canonical_request, parse_authorization, signature, uri_encode,
};
use tokio::sync::oneshot;

use super::{Running, bind_reusing};

/// Access key id the server accepts.
pub const OSS_ACCESS_KEY_ID: &str = "LTAItidelinetest";
/// Its secret.
pub const OSS_ACCESS_KEY_SECRET: &str = "tideline-oss-test-secret";
/// Bucket created at start.
pub const OSS_BUCKET: &str = "tideline";
/// Region requests must be signed for.
pub const OSS_REGION: &str = "cn-hangzhou";

type Resp = http::Response<Full<Bytes>>;

/// What the server has seen.
#[derive(Debug, Default)]
struct Stats {
    accepted: AtomicU64,
    rejected: AtomicU64,
}

/// A running OSS test server. Stops when dropped.
#[derive(Debug)]
pub struct OssServer {
    root: PathBuf,
    addr: SocketAddr,
    stats: Arc<Stats>,
    running: Option<Running>,
}

impl OssServer {
    /// Starts a server keeping objects under `root`, with [`OSS_BUCKET`] created, on a
    /// free port of 127.0.0.1.
    pub fn start(root: &Path) -> std::io::Result<OssServer> {
        std::fs::create_dir_all(root.join(OSS_BUCKET))?;
        std::fs::create_dir_all(root.join(".meta").join(OSS_BUCKET))?;
        std::fs::create_dir_all(root.join(".uploads"))?;
        let mut server = OssServer {
            root: root.to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stats: Arc::new(Stats::default()),
            running: None,
        };
        server.spawn()?;
        Ok(server)
    }

    /// Serves on `self.addr` (a free port when it is 0) on a runtime of its own.
    fn spawn(&mut self) -> std::io::Result<()> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let std_listener = {
            let _in_runtime = rt.enter();
            bind_reusing(self.addr)?
        };
        self.addr = std_listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let (root, stats) = (self.root.clone(), Arc::clone(&self.stats));
        let thread = std::thread::Builder::new()
            .name("oss-test-server".into())
            .spawn(move || {
                rt.block_on(serve(std_listener, root, stats, stop_rx));
                // Open connections end with the runtime, as with a server that went away.
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        self.running = Some(Running {
            stop: stop_tx,
            thread,
        });
        Ok(())
    }

    /// Stops the server (a destination that went away): its port refuses connections
    /// and open ones are closed. What it stored stays on disk.
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = r.thread.join();
        }
    }

    /// Starts it again on the same port, with what it had stored.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.spawn()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Where object `key` of [`OSS_BUCKET`] is on disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(OSS_BUCKET).join(uri_encode(key, true))
    }

    /// The keys of [`OSS_BUCKET`], sorted.
    pub fn keys(&self) -> Vec<String> {
        list_keys(&self.root.join(OSS_BUCKET))
    }

    /// The user metadata header `name` (e.g. `x-oss-meta-litestream-timestamp`) of
    /// object `key` of [`OSS_BUCKET`].
    pub fn metadata(&self, key: &str, name: &str) -> Option<String> {
        read_meta(&self.root, OSS_BUCKET, key)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Requests whose signature checked out, and requests refused for their signature
    /// or key.
    pub fn signatures(&self) -> (u64, u64) {
        (
            self.stats.accepted.load(Ordering::SeqCst),
            self.stats.rejected.load(Ordering::SeqCst),
        )
    }

    /// The replica config of `path` in [`OSS_BUCKET`] on this server.
    pub fn oss_config(&self, path: &str) -> OssReplicaConfig {
        OssReplicaConfig {
            bucket: OSS_BUCKET.to_owned(),
            path: path.trim_matches('/').to_owned(),
            region: OSS_REGION.to_owned(),
            endpoint: Some(self.endpoint()),
            access_key_id: OSS_ACCESS_KEY_ID.to_owned(),
            access_key_secret: Sensitive::new(OSS_ACCESS_KEY_SECRET.to_owned()),
        }
    }

    /// A whole replica config (Litestream's defaults) for `path`.
    pub fn replica_config(&self, path: &str) -> ReplicaConfig {
        let env = |k: &str| match k {
            "OSS_ACCESS_KEY_ID" => Some(OSS_ACCESS_KEY_ID.to_owned()),
            "OSS_ACCESS_KEY_SECRET" => Some(OSS_ACCESS_KEY_SECRET.to_owned()),
            _ => None,
        };
        let url = format!("oss://{OSS_BUCKET}/{}", path.trim_matches('/'));
        let mut cfg = ReplicaConfig::from_url_with_env(&url, &env).expect("a valid oss URL");
        cfg.target = ReplicaTarget::Oss(Box::new(self.oss_config(path)));
        cfg
    }
}

impl Drop for OssServer {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn serve(
    std_listener: std::net::TcpListener,
    root: PathBuf,
    stats: Arc<Stats>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
        return;
    };
    let http = ConnBuilder::new(TokioExecutor::new());
    let root = Arc::new(root);
    loop {
        let socket = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = &mut stop => return,
        };
        let (root, stats) = (Arc::clone(&root), Arc::clone(&stats));
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let (root, stats) = (Arc::clone(&root), Arc::clone(&stats));
            async move { Ok::<_, Infallible>(handle(&root, &stats, req).await) }
        });
        let conn = http
            .serve_connection(TokioIo::new(socket), svc)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

/// One request, read whole.
struct Req {
    method: String,
    bucket: String,
    key: String,
    raw_query: String,
    query: Vec<(String, String)>,
    headers: Vec<(String, String)>,
    body: Bytes,
}

impl Req {
    fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The request's `x-oss-meta-*` headers.
    fn user_meta(&self) -> Vec<(String, String)> {
        self.headers
            .iter()
            .filter(|(k, _)| k.to_ascii_lowercase().starts_with("x-oss-meta-"))
            .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
            .collect()
    }
}

async fn handle(root: &Path, stats: &Stats, req: http::Request<hyper::body::Incoming>) -> Resp {
    let (parts, body) = req.into_parts();
    let Ok(body) = body.collect().await.map(|b| b.to_bytes()) else {
        return error(400, "IncompleteBody", "the body could not be read");
    };
    let path = percent_decode(parts.uri.path());
    let (bucket, key) = path
        .strip_prefix('/')
        .unwrap_or(&path)
        .split_once('/')
        .map_or(
            (path.trim_start_matches('/').to_owned(), String::new()),
            |(b, k)| (b.to_owned(), k.to_owned()),
        );
    let raw_query = parts.uri.query().unwrap_or("").to_owned();
    let query = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(k), percent_decode(v))
        })
        .collect();
    let headers = parts
        .headers
        .iter()
        .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
        .collect();
    let req = Req {
        method: parts.method.as_str().to_owned(),
        bucket,
        key,
        raw_query,
        query,
        headers,
        body,
    };
    if let Err((status, code, message)) = verify(&req) {
        stats.rejected.fetch_add(1, Ordering::SeqCst);
        return error(status, code, message);
    }
    stats.accepted.fetch_add(1, Ordering::SeqCst);
    let dir = root.join(&req.bucket);
    if req.bucket.is_empty() || req.bucket.starts_with('.') {
        return error(400, "InvalidBucketName", "path-style requests only");
    }
    let creates_bucket = req.method == "PUT" && req.key.is_empty();
    if !dir.is_dir() && !creates_bucket {
        return error(404, "NoSuchBucket", "The specified bucket does not exist.");
    }
    dispatch(root, &req).await
}

/// Why a request is refused: status, OSS error code, message.
type Refusal = (u16, &'static str, &'static str);

/// Checks the `Authorization` header's OSS V4 signature with the one known secret.
fn verify(req: &Req) -> Result<(), Refusal> {
    let Some(auth) = req.header("authorization") else {
        return Err((403, "AccessDenied", "anonymous access is refused"));
    };
    let Some((id, region, sig)) = parse_authorization(auth) else {
        return Err((400, "InvalidArgument", "only OSS4-HMAC-SHA256 is accepted"));
    };
    if id != OSS_ACCESS_KEY_ID {
        return Err((
            403,
            "InvalidAccessKeyId",
            "The OSS Access Key Id you provided does not exist in our records.",
        ));
    }
    let datetime = req.header("x-oss-date").unwrap_or_default();
    let resource = format!("/{}/{}", req.bucket, req.key);
    let headers: Vec<(&str, &str)> = req
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let canonical = canonical_request(&req.method, &resource, &req.raw_query, &headers);
    if region != OSS_REGION
        || signature(OSS_ACCESS_KEY_SECRET, datetime, &region, &canonical) != sig
    {
        return Err((
            403,
            "SignatureDoesNotMatch",
            "The request signature we calculated does not match the signature you provided.",
        ));
    }
    Ok(())
}

async fn dispatch(root: &Path, req: &Req) -> Resp {
    let m = req.method.as_str();
    match (m, req.key.is_empty()) {
        ("PUT", true) => create_bucket(root, &req.bucket),
        ("GET", true) => list(root, req),
        ("POST", true) if req.has("delete") => delete_many(root, req),
        ("POST", false) if req.has("uploads") => initiate(root, req),
        ("POST", false) if req.has("uploadId") => complete(root, req),
        ("PUT", false) if req.has("uploadId") => upload_part(root, req),
        ("DELETE", false) if req.has("uploadId") => {
            let _ = std::fs::remove_dir_all(upload_dir(root, req.param("uploadId")));
            empty(204)
        }
        ("PUT", false) => {
            let meta = req.user_meta();
            put_object(root, &req.bucket, &req.key, &req.body, &meta)
        }
        ("GET" | "HEAD", false) => get_object(root, req, m == "HEAD"),
        ("DELETE", false) => {
            let _ = std::fs::remove_file(root.join(&req.bucket).join(uri_encode(&req.key, true)));
            let _ = std::fs::remove_file(meta_path(root, &req.bucket, &req.key));
            empty(204)
        }
        _ => error(405, "MethodNotAllowed", "not served by the test server"),
    }
}

fn create_bucket(root: &Path, bucket: &str) -> Resp {
    let made = std::fs::create_dir_all(root.join(bucket))
        .and_then(|()| std::fs::create_dir_all(root.join(".meta").join(bucket)));
    match made {
        Ok(()) => empty(200),
        Err(e) => error(500, "InternalError", &e.to_string()),
    }
}

fn put_object(
    root: &Path,
    bucket: &str,
    key: &str,
    data: &[u8],
    meta: &[(String, String)],
) -> Resp {
    let path = root.join(bucket).join(uri_encode(key, true));
    let tmp = path.with_extension("tmp-upload");
    let meta_text: String = meta.iter().map(|(k, v)| format!("{k}: {v}\n")).collect();
    let written = std::fs::write(&tmp, data)
        .and_then(|()| std::fs::write(meta_path(root, bucket, key), meta_text))
        .and_then(|()| std::fs::rename(&tmp, &path));
    match written {
        Ok(()) => http::Response::builder()
            .status(200)
            .header("ETag", etag(data.len()))
            .body(Full::default())
            .unwrap_or_default(),
        Err(e) => error(500, "InternalError", &e.to_string()),
    }
}

fn get_object(root: &Path, req: &Req, head: bool) -> Resp {
    let path = root.join(&req.bucket).join(uri_encode(&req.key, true));
    let (Ok(data), Ok(stat)) = (std::fs::read(&path), std::fs::metadata(&path)) else {
        return error(404, "NoSuchKey", "The specified key does not exist.");
    };
    let modified = stat.modified().unwrap_or(SystemTime::UNIX_EPOCH);
    let size = data.len() as u64;
    let (status, range) = match req.header("range").and_then(|r| parse_range(r, size)) {
        Some(Ok(r)) => (206, r),
        Some(Err(())) => return error(416, "InvalidRange", "The requested range is not valid."),
        None => (200, 0..size),
    };
    let mut resp = http::Response::builder()
        .status(status)
        .header("Content-Type", "application/octet-stream")
        .header("Last-Modified", httpdate::fmt_http_date(modified))
        .header("ETag", etag(data.len()));
    if status == 206 {
        resp = resp.header(
            "Content-Range",
            format!("bytes {}-{}/{size}", range.start, range.end - 1),
        );
    }
    for (k, v) in read_meta(root, &req.bucket, &req.key) {
        resp = resp.header(k, v);
    }
    let slice =
        &data[usize::try_from(range.start).unwrap_or(0)..usize::try_from(range.end).unwrap_or(0)];
    if head {
        resp = resp.header("Content-Length", slice.len().to_string());
        return resp.body(Full::default()).unwrap_or_default();
    }
    resp.body(Full::new(Bytes::copy_from_slice(slice)))
        .unwrap_or_default()
}

/// `bytes=a-b` or `bytes=a-` within `size`: `None` when there is no usable range
/// header, `Err` when it starts past the end.
fn parse_range(header: &str, size: u64) -> Option<Result<std::ops::Range<u64>, ()>> {
    let spec = header.strip_prefix("bytes=")?;
    let (a, b) = spec.split_once('-')?;
    let start: u64 = a.parse().ok()?;
    if start >= size {
        return Some(Err(()));
    }
    let end = match b {
        "" => size,
        b => b.parse::<u64>().ok()?.saturating_add(1).min(size),
    };
    Some(Ok(start..end))
}

fn list(root: &Path, req: &Req) -> Resp {
    let prefix = req.param("prefix").unwrap_or("");
    let after = req.param("continuation-token").unwrap_or("");
    let max: usize = req
        .param("max-keys")
        .and_then(|m| m.parse().ok())
        .unwrap_or(1000);
    let dir = root.join(&req.bucket);
    let keys: Vec<String> = list_keys(&dir)
        .into_iter()
        .filter(|k| k.starts_with(prefix) && k.as_str() > after)
        .collect();
    let truncated = keys.len() > max;
    let mut body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<ListBucketResult><Name>{}</Name>\
         <Prefix>{}</Prefix><MaxKeys>{max}</MaxKeys><KeyCount>{}</KeyCount>",
        xml_escape(&req.bucket),
        xml_escape(prefix),
        keys.len().min(max)
    );
    for key in keys.iter().take(max) {
        let path = dir.join(uri_encode(key, true));
        let stat = std::fs::metadata(&path).ok();
        let size = stat.as_ref().map_or(0, std::fs::Metadata::len);
        let modified = stat
            .and_then(|s| s.modified().ok())
            .unwrap_or(SystemTime::UNIX_EPOCH);
        body.push_str(&format!(
            "<Contents><Key>{}</Key><LastModified>{}</LastModified><ETag>{}</ETag>\
             <Type>Normal</Type><Size>{size}</Size><StorageClass>Standard</StorageClass></Contents>",
            xml_escape(key),
            iso8601(modified),
            xml_escape(&etag(usize::try_from(size).unwrap_or(0))),
        ));
    }
    body.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
    if truncated {
        let last = &keys[max - 1];
        body.push_str(&format!(
            "<NextContinuationToken>{}</NextContinuationToken>",
            xml_escape(last)
        ));
    }
    body.push_str("</ListBucketResult>");
    xml(200, body)
}

fn delete_many(root: &Path, req: &Req) -> Resp {
    let text = String::from_utf8_lossy(&req.body);
    let mut body = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<DeleteResult>");
    for key in tag_values(&text, "Key") {
        let _ = std::fs::remove_file(root.join(&req.bucket).join(uri_encode(&key, true)));
        let _ = std::fs::remove_file(meta_path(root, &req.bucket, &key));
        body.push_str(&format!(
            "<Deleted><Key>{}</Key></Deleted>",
            xml_escape(&key)
        ));
    }
    body.push_str("</DeleteResult>");
    xml(200, body)
}

fn initiate(root: &Path, req: &Req) -> Resp {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    let id = format!("upload{}", NEXT.fetch_add(1, Ordering::SeqCst));
    let dir = upload_dir(root, Some(&id));
    let meta: String = req
        .user_meta()
        .iter()
        .map(|(k, v)| format!("{k}: {v}\n"))
        .collect();
    if let Err(e) =
        std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(dir.join("meta"), meta))
    {
        return error(500, "InternalError", &e.to_string());
    }
    xml(
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<InitiateMultipartUploadResult>\
             <Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
            xml_escape(&req.bucket),
            xml_escape(&req.key)
        ),
    )
}

fn upload_part(root: &Path, req: &Req) -> Resp {
    let dir = upload_dir(root, req.param("uploadId"));
    let Some(n) = req.param("partNumber").and_then(|n| n.parse::<u32>().ok()) else {
        return error(400, "InvalidArgument", "partNumber is required");
    };
    if !dir.is_dir() {
        return error(404, "NoSuchUpload", "The specified upload does not exist.");
    }
    match std::fs::write(dir.join(format!("part{n:05}")), &req.body) {
        Ok(()) => http::Response::builder()
            .status(200)
            .header("ETag", etag(req.body.len()))
            .body(Full::default())
            .unwrap_or_default(),
        Err(e) => error(500, "InternalError", &e.to_string()),
    }
}

fn complete(root: &Path, req: &Req) -> Resp {
    let dir = upload_dir(root, req.param("uploadId"));
    let Ok(meta) = std::fs::read_to_string(dir.join("meta")) else {
        return error(404, "NoSuchUpload", "The specified upload does not exist.");
    };
    let text = String::from_utf8_lossy(&req.body);
    let mut data = Vec::new();
    for n in tag_values(&text, "PartNumber") {
        let Ok(part) = std::fs::read(dir.join(format!("part{:05}", n.parse::<u32>().unwrap_or(0))))
        else {
            return error(400, "InvalidPart", "a listed part was not uploaded");
        };
        data.extend_from_slice(&part);
    }
    let meta: Vec<(String, String)> = meta
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    let put = put_object(root, &req.bucket, &req.key, &data, &meta);
    let _ = std::fs::remove_dir_all(&dir);
    if !put.status().is_success() {
        return put;
    }
    xml(
        200,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CompleteMultipartUploadResult>\
             <Bucket>{}</Bucket><Key>{}</Key><ETag>{}</ETag></CompleteMultipartUploadResult>",
            xml_escape(&req.bucket),
            xml_escape(&req.key),
            xml_escape(&etag(data.len()))
        ),
    )
}

fn upload_dir(root: &Path, id: Option<&str>) -> PathBuf {
    let id = id.unwrap_or_default().replace(['/', '.'], "_");
    root.join(".uploads").join(id)
}

fn meta_path(root: &Path, bucket: &str, key: &str) -> PathBuf {
    root.join(".meta").join(bucket).join(uri_encode(key, true))
}

fn read_meta(root: &Path, bucket: &str, key: &str) -> Vec<(String, String)> {
    std::fs::read_to_string(meta_path(root, bucket, key))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split_once(": "))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

fn list_keys(dir: &Path) -> Vec<String> {
    let mut keys: Vec<String> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| !n.ends_with(".tmp-upload"))
        .map(|n| percent_decode(&n))
        .collect();
    keys.sort();
    keys
}

/// The texts of every `<tag>…</tag>` in `body`, XML entities resolved.
fn tag_values(body: &str, tag: &str) -> Vec<String> {
    let (open, close) = (format!("<{tag}>"), format!("</{tag}>"));
    let mut out = Vec::new();
    let mut rest = body;
    while let Some(i) = rest.find(&open) {
        let after = &rest[i + open.len()..];
        let Some(j) = after.find(&close) else { break };
        out.push(xml_unescape(&after[..j]));
        rest = &after[j + close.len()..];
    }
    out
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| char::from(c).to_digit(16);
        match (
            b[i],
            b.get(i + 1).copied().and_then(hex),
            b.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push(u8::try_from(h * 16 + l).unwrap_or(b'?'));
                i += 3;
            }
            (c, _, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn xml_unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&apos;", "'")
        .replace("&amp;", "&")
}

fn etag(len: usize) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(1);
    format!("\"{len:08X}{:024X}\"", NEXT.fetch_add(1, Ordering::SeqCst))
}

/// `2026-12-03T11:45:31.000Z`, OSS's listing time format.
fn iso8601(t: SystemTime) -> String {
    let s = tideline_engine::time::format_rfc3339(t);
    format!("{}.000Z", &s[..19])
}

fn empty(status: u16) -> Resp {
    http::Response::builder()
        .status(status)
        .body(Full::default())
        .unwrap_or_default()
}

fn xml(status: u16, body: String) -> Resp {
    http::Response::builder()
        .status(status)
        .header("Content-Type", "application/xml")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_default()
}

fn error(status: u16, code: &str, message: &str) -> Resp {
    xml(
        status,
        format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code>\
             <Message>{}</Message><RequestId>test</RequestId><HostId>127.0.0.1</HostId></Error>",
            xml_escape(message)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_and_encodings_read_as_oss_does() {
        assert_eq!(parse_range("bytes=2-5", 10), Some(Ok(2..6)));
        assert_eq!(parse_range("bytes=2-", 10), Some(Ok(2..10)));
        assert_eq!(parse_range("bytes=2-99", 10), Some(Ok(2..10)));
        assert_eq!(parse_range("bytes=10-", 10), Some(Err(())));
        assert_eq!(percent_decode("%2Fdb%2F0000%2Fa%20b"), "/db/0000/a b");
        assert_eq!(
            tag_values(
                "<Delete><Object><Key>a&amp;b</Key></Object><Object><Key>c</Key></Object></Delete>",
                "Key"
            ),
            ["a&b", "c"]
        );
    }
}

//! Real parts for Tideline's tests and benchmarks.
//!
//! [`replica`] wraps any replica to count requests ([`CountingReplica`]) or make its
//! writes and deletes fail, stall or slow down ([`FaultyReplica`]); [`wait`] holds the
//! bounded polls tests wait with; [`sshd`] runs OpenSSH's server on 127.0.0.1 for
//! SFTP replicas ([`SshServer`]) and [`password_sftp`] one that logs in by password
//! ([`PasswordSftpServer`]); [`latency`] puts a far network in front of any of them
//! ([`LatencyProxy`]).
//!
//! [`webdav::WebDavServer`] runs `rclone serve webdav` on `127.0.0.1` for the WebDAV
//! replica's tests; [`azurite::AzuriteServer`] runs Azurite, Microsoft's Azure Blob
//! Storage emulator, for the abs replica's; [`gcs::GcsServer`] runs
//! `gcp-storage-emulator`, a Google Cloud Storage emulator, for the gs replica's; [`oss::OssServer`] is a local OSS server
//! that verifies OSS Signature V4, for the oss replica's.
//!
//! [`S3Server`] is a real S3-compatible server (`s3s-fs`, objects kept as files under a
//! directory) on `127.0.0.1`, checking SigV4 signatures against one access key. It runs
//! on its own thread and runtime, so it serves synchronous tests, async tests on a
//! paused clock, and other processes (the `tideline` and `litestream` binaries) alike.
//!
//! Around the real server sits a thin HTTP layer that tests use to see and break
//! things, the way a real network and a real provider do:
//! * it counts requests by S3 operation ([`S3Server::counts`]), so tests and the
//!   benchmark measure what a replicator costs on a metered store;
//! * it fails the next requests with a chosen status ([`S3Server::fail_next`]), e.g.
//!   `503 SlowDown` or `500 InternalError`, or only those of one operation
//!   ([`S3Server::fail_next_op`]);
//! * it can hold requests of one operation ([`S3Server::hold`]) so a test can stop the
//!   server in the middle of an upload ([`S3Server::stop`]) and start it again on the
//!   same port ([`S3Server::restart`]).

pub mod azurite;
pub mod gcs;
pub mod latency;
pub mod nats;
pub mod oss;
pub mod password_sftp;
pub mod replica;
pub mod sshd;
pub mod wait;
pub mod webdav;

pub use azurite::{AZURITE_ACCOUNT, AZURITE_KEY, AzuriteServer};
pub use gcs::{GCS_PROJECT, GcsServer};
pub use latency::LatencyProxy;
pub use nats::{NatsLogin, NatsServer, NatsTls, make_tls};
pub use oss::{OSS_ACCESS_KEY_ID, OSS_ACCESS_KEY_SECRET, OSS_BUCKET, OSS_REGION, OssServer};
pub use password_sftp::PasswordSftpServer;
pub use replica::{CountingReplica, FaultyReplica, ReplicaCounts, ReplicaFault};
pub use sshd::SshServer;
pub use wait::{wait_until, wait_until_async};
pub use webdav::{WEBDAV_PASSWORD, WEBDAV_USER, WebDavServer};

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto::Builder as ConnBuilder;
use s3s::auth::SimpleAuth;
use s3s::service::{S3Service, S3ServiceBuilder};
use tokio::sync::{Notify, oneshot};

/// Access key the server accepts.
pub const ACCESS_KEY: &str = "tideline-test";
/// Secret key the server accepts.
pub const SECRET_KEY: &str = "tideline-test-secret";
/// Bucket created at start.
pub const BUCKET: &str = "tideline";
/// Region the clients sign for (the server accepts any).
pub const REGION: &str = "us-east-1";

/// An S3 operation, as classified from the HTTP request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Op {
    /// `GET /bucket?list-type=2…` (or a v1 listing).
    List,
    /// `GET /bucket/key`.
    Get,
    /// `HEAD`.
    Head,
    /// `PUT /bucket/key` (a whole object).
    Put,
    /// `POST ?uploads`.
    CreateMultipart,
    /// `PUT ?partNumber&uploadId`.
    UploadPart,
    /// `POST ?uploadId`.
    CompleteMultipart,
    /// `DELETE ?uploadId`.
    AbortMultipart,
    /// `POST ?delete`.
    DeleteObjects,
    /// `DELETE /bucket/key`.
    Delete,
    /// Anything else (bucket operations…).
    Other,
}

impl Op {
    fn classify(method: &http::Method, path: &str, query: &str) -> Op {
        let has = |k: &str| {
            query
                .split('&')
                .any(|p| p == k || p.starts_with(&format!("{k}=")))
        };
        // Path-style: "/bucket" or "/bucket/" is a bucket request, "/bucket/key" an object.
        let object = path
            .trim_start_matches('/')
            .split_once('/')
            .is_some_and(|(_, k)| !k.is_empty());
        match *method {
            http::Method::GET if !object => Op::List,
            http::Method::GET => Op::Get,
            http::Method::HEAD => Op::Head,
            http::Method::PUT if has("uploadId") => Op::UploadPart,
            http::Method::PUT if object => Op::Put,
            http::Method::POST if has("uploads") => Op::CreateMultipart,
            http::Method::POST if has("uploadId") => Op::CompleteMultipart,
            http::Method::POST if has("delete") => Op::DeleteObjects,
            http::Method::DELETE if has("uploadId") => Op::AbortMultipart,
            http::Method::DELETE if object => Op::Delete,
            _ => Op::Other,
        }
    }
}

/// Requests seen, by operation.
pub type Counts = BTreeMap<Op, u64>;

/// Requests to fail next.
#[derive(Debug, Clone, Copy)]
struct Fault {
    /// Only requests of this operation, or any.
    only: Option<Op>,
    status: u16,
    /// The S3 error code in the body.
    code: &'static str,
    /// How many more to fail.
    left: u32,
}

#[derive(Debug, Default)]
struct Control {
    counts: Mutex<Counts>,
    bytes_in: std::sync::atomic::AtomicU64,
    fail: Mutex<Option<Fault>>,
    held_op: Mutex<Option<Op>>,
    held_now: AtomicU32,
    release: Notify,
}

/// A running S3 server; stopped on drop.
#[derive(Debug)]
pub struct S3Server {
    root: PathBuf,
    addr: SocketAddr,
    control: Arc<Control>,
    running: Option<Running>,
}

#[derive(Debug)]
struct Running {
    stop: oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl S3Server {
    /// Starts a server keeping objects under `root`, with [`BUCKET`] created, on a free
    /// port of 127.0.0.1.
    pub fn start(root: &Path) -> std::io::Result<S3Server> {
        std::fs::create_dir_all(root.join(BUCKET))?;
        let mut server = S3Server {
            root: root.to_path_buf(),
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            control: Arc::default(),
            running: None,
        };
        server.launch()?;
        Ok(server)
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The directory objects are kept in (`<root>/<bucket>/<key>`).
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Where an object's bytes are on disk.
    pub fn object_path(&self, key: &str) -> PathBuf {
        self.root.join(BUCKET).join(key)
    }

    /// Requests served so far, by operation.
    pub fn counts(&self) -> Counts {
        self.control
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Bytes received in request bodies (by Content-Length), all operations.
    pub fn bytes_in(&self) -> u64 {
        self.control.bytes_in.load(Ordering::SeqCst)
    }

    /// Requests served so far, all operations.
    pub fn total_requests(&self) -> u64 {
        self.counts().values().sum()
    }

    /// Fails the next `n` requests with HTTP `status` (503 is S3's `SlowDown`, 500
    /// `InternalError`).
    pub fn fail_next(&self, n: u32, status: u16) {
        let code = match status {
            503 => "SlowDown",
            500 => "InternalError",
            403 => "AccessDenied",
            _ => "ServiceUnavailable",
        };
        self.fail_next_with(n, status, code);
    }

    /// Fails the next `n` requests with HTTP `status` and S3 error `code` (e.g. 403
    /// `RequestTimeTooSkewed`, as a server whose clock differs from ours answers).
    pub fn fail_next_with(&self, n: u32, status: u16, code: &'static str) {
        *self
            .control
            .fail
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Fault {
            only: None,
            status,
            code,
            left: n,
        });
    }

    /// Fails the next `n` requests of operation `op` only, with HTTP `status` and S3
    /// error `code` (e.g. `CompleteMultipart`, 400 `InvalidPart`); others pass.
    pub fn fail_next_op(&self, op: Op, n: u32, status: u16, code: &'static str) {
        *self
            .control
            .fail
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Fault {
            only: Some(op),
            status,
            code,
            left: n,
        });
    }

    /// Multipart uploads started and neither completed nor aborted. s3s-fs keeps
    /// each as `.upload-<id>.json` in its root until then (its parts beside it).
    pub fn pending_uploads(&self) -> usize {
        std::fs::read_dir(&self.root).map_or(0, |rd| {
            rd.filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name();
                    let name = name.to_string_lossy();
                    name.starts_with(".upload-") && name.ends_with(".json")
                })
                .count()
        })
    }

    /// Holds every request of operation `op` until [`S3Server::release`] or a stop.
    pub fn hold(&self, op: Op) {
        *self
            .control
            .held_op
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(op);
    }

    /// Lets held requests (and later ones) through.
    pub fn release(&self) {
        *self
            .control
            .held_op
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = None;
        self.control.release.notify_waiters();
    }

    /// Requests being held right now.
    pub fn held(&self) -> u32 {
        self.control.held_now.load(Ordering::SeqCst)
    }

    /// Stops the server, dropping every open connection (requests in flight fail as
    /// they would when a server dies).
    pub fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            let _ = r.stop.send(());
            let _ = r.thread.join();
        }
    }

    /// Starts the server again on the same port, with the same objects.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.release();
        self.launch()
    }

    fn launch(&mut self) -> std::io::Result<()> {
        let fs = s3s_fs::FileSystem::new(&self.root)
            .map_err(|e| std::io::Error::other(format!("{e:?}")))?;
        let mut builder = S3ServiceBuilder::new(fs);
        builder.set_auth(SimpleAuth::from_single(ACCESS_KEY, SECRET_KEY));
        let service = builder.build();

        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        // Bind on this thread so the port is known (and errors reported) before return.
        let std_listener = {
            let _in_runtime = rt.enter();
            bind_reusing(self.addr)?
        };
        self.addr = std_listener.local_addr()?;
        let (stop_tx, stop_rx) = oneshot::channel();
        let control = Arc::clone(&self.control);
        let thread = std::thread::Builder::new()
            .name("s3-test-server".into())
            .spawn(move || {
                rt.block_on(serve(std_listener, service, control, stop_rx));
                // Dropping the runtime cancels every connection task.
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        self.running = Some(Running {
            stop: stop_tx,
            thread,
        });
        Ok(())
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn bind_reusing(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    // tokio's listener sets SO_REUSEADDR, so a restart can bind the port again while
    // old connections are in TIME_WAIT.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let socket = tokio::net::TcpSocket::new_v4()?;
        socket.set_reuseaddr(true)?;
        match socket.bind(addr) {
            Ok(()) => {
                let listener = socket.listen(128)?;
                return listener.into_std();
            }
            Err(e) if std::time::Instant::now() < deadline => {
                let _ = e;
                std::thread::sleep(Duration::from_millis(50));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn serve(
    std_listener: std::net::TcpListener,
    service: S3Service,
    control: Arc<Control>,
    mut stop: oneshot::Receiver<()>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
        return;
    };
    let http = ConnBuilder::new(TokioExecutor::new());
    loop {
        let socket = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(_) => continue,
            },
            _ = &mut stop => return,
        };
        let service = service.clone();
        let control = Arc::clone(&control);
        let svc = hyper::service::service_fn(move |req: http::Request<hyper::body::Incoming>| {
            let service = service.clone();
            let control = Arc::clone(&control);
            async move { Ok::<_, Infallible>(handle(&service, &control, req).await) }
        });
        let conn = http
            .serve_connection(TokioIo::new(socket), svc)
            .into_owned();
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn handle(
    service: &S3Service,
    control: &Control,
    req: http::Request<hyper::body::Incoming>,
) -> http::Response<s3s::Body> {
    let op = Op::classify(
        req.method(),
        req.uri().path(),
        req.uri().query().unwrap_or(""),
    );
    // Bytes as sent (with aws-chunked signing, the framing counts too, as billed).
    let body_len = req
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok())
        .unwrap_or(0);
    control.bytes_in.fetch_add(body_len, Ordering::SeqCst);
    *control
        .counts
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .entry(op)
        .or_default() += 1;

    let injected = {
        let mut fail = control.fail.lock().unwrap_or_else(PoisonError::into_inner);
        match fail.as_mut() {
            Some(f) if f.left > 0 && f.only.is_none_or(|o| o == op) => {
                f.left -= 1;
                Some((f.status, f.code))
            }
            _ => None,
        }
    };
    if let Some((status, code)) = injected {
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the test server</Message></Error>"
        );
        return http::Response::builder()
            .status(status)
            .header("content-type", "application/xml")
            .body(s3s::Body::from(body))
            .unwrap_or_default();
    }

    loop {
        let released = control.release.notified();
        let held = *control
            .held_op
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            == Some(op);
        if !held {
            break;
        }
        control.held_now.fetch_add(1, Ordering::SeqCst);
        released.await;
        control.held_now.fetch_sub(1, Ordering::SeqCst);
    }

    match service.call(req.map(s3s::Body::from)).await {
        Ok(resp) => resp,
        Err(e) => http::Response::builder()
            .status(500)
            .body(s3s::Body::from(format!("s3s error: {e:?}")))
            .unwrap_or_default(),
    }
}

//! The control socket (`socket:`): Litestream's HTTP-over-Unix-socket protocol, both
//! ends. [`serve_control`] answers `POST /start`, `/stop`, `/register`, `/unregister`
//! and `GET /list`, `/info` with Litestream's JSON bodies from a running replicator's
//! [`Control`]; [`ControlClient`] is what `tideline start`, `stop`, … send. Either end
//! talks to the other tool's: `litestream list -socket S` works against `tideline
//! replicate`, and `tideline list` against `litestream replicate`.
//!
//! Reason to change: the control protocol.

use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::watch;

use super::control::{Control, DbSummary, Outcome};
use crate::config::SocketConfig;
use crate::error::{Error, Result};

/// Requests answered at once; more wait.
const MAX_CONNECTIONS: usize = 16;
/// The largest request body taken (a path and a URL).
const MAX_BODY: usize = 64 << 10;
/// The longest a connection stays open.
const CONNECTION_DEADLINE: Duration = Duration::from_secs(15 * 60);
/// Litestream's default wait for `stop` and `unregister` (their final upload).
const DEFAULT_TIMEOUT_SECS: u64 = 30;

/// `start`, `stop` and `unregister` requests.
#[derive(Debug, Serialize, Deserialize)]
struct PathRequest {
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    timeout: Option<u64>,
}

/// A `register` request.
#[derive(Debug, Serialize, Deserialize)]
struct RegisterRequest {
    path: String,
    replica_url: String,
}

/// What the daemon says of itself (`info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonInfo {
    /// Its version.
    pub version: String,
    /// Its process ID.
    pub pid: u32,
    /// Seconds since it started.
    pub uptime_seconds: u64,
    /// When it started (RFC 3339).
    pub started_at: String,
    /// Databases it knows.
    pub database_count: usize,
}

/// One database in a `list` answer, as the wire has it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ListedDb {
    /// The database.
    pub path: String,
    /// `replicating`, `open` or `stopped`.
    pub status: String,
    /// When changes last reached the replica (RFC 3339), if they did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_sync_at: Option<String>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ListResponse {
    databases: Vec<ListedDb>,
}

#[derive(Debug, Serialize, Deserialize)]
struct ErrorResponse {
    error: String,
}

/// The socket being served; removed when dropped.
#[derive(Debug)]
pub struct ControlServer {
    path: PathBuf,
    stop: watch::Sender<bool>,
}

impl ControlServer {
    /// The socket's path.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Serves `control` on the socket `cfg` names: an old socket left by a replicator
/// that died is replaced; any other file there is refused.
pub async fn serve_control(cfg: &SocketConfig, control: Control) -> Result<ControlServer> {
    let path = cfg.path.clone();
    let fail = |source: std::io::Error| Error::ControlSocket {
        socket: path.clone(),
        source,
    };
    match std::fs::symlink_metadata(&path) {
        Ok(md) if is_socket(&md) => std::fs::remove_file(&path).map_err(fail)?,
        Ok(_) => {
            return Err(fail(std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "a file that is not a socket is there; remove it or choose another socket.path",
            )));
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail(e)),
    }
    let listener = UnixListener::bind(&path).map_err(fail)?;
    set_mode(&path, cfg.permissions).map_err(fail)?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(accept_loop(listener, Arc::new(control), stopped));
    Ok(ControlServer { path, stop })
}

#[cfg(unix)]
fn is_socket(md: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::FileTypeExt;
    md.file_type().is_socket()
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

fn accept_loop(
    listener: UnixListener,
    control: Arc<Control>,
    stopped: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let listener = Arc::new(listener);
    let accept = move || {
        let l = Arc::clone(&listener);
        async move { l.accept().await.map(|(s, _)| s) }
    };
    let serve = move |stream| {
        let control = Arc::clone(&control);
        async move {
            let svc = hyper::service::service_fn(move |req| {
                let control = Arc::clone(&control);
                async move { Ok::<_, Infallible>(answer(&control, req).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), svc)
                .await;
        }
    };
    // The deadline is longer than any request's own timeout, so only a stuck client
    // is cut off.
    crate::serve::accept_loop(accept, serve, MAX_CONNECTIONS, CONNECTION_DEADLINE, stopped)
}

fn reply(status: StatusCode, body: serde_json::Value) -> Response<Full<Bytes>> {
    let mut text = body.to_string();
    text.push('\n');
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(text)))
        .unwrap_or_default()
}

fn error_reply(status: StatusCode, message: impl Into<String>) -> Response<Full<Bytes>> {
    reply(status, json!({ "error": message.into() }))
}

/// A request refused before it reached the fleet: 400 and why.
struct BadRequest(String);

async fn read_json<T: serde::de::DeserializeOwned>(
    req: Request<hyper::body::Incoming>,
) -> std::result::Result<T, BadRequest> {
    let body = Limited::new(req.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|e| BadRequest(format!("invalid request body: {e}")))?
        .to_bytes();
    serde_json::from_slice(&body).map_err(|e| BadRequest(format!("invalid request body: {e}")))
}

/// A request path as the daemon knows databases: absolute, `~` expanded.
fn db_path(raw: &str) -> std::result::Result<PathBuf, BadRequest> {
    if raw.is_empty() {
        return Err(BadRequest("path required".into()));
    }
    crate::config::absolute_path(raw).map_err(|e| BadRequest(format!("invalid path: {e}")))
}

fn outcome_reply(result: Result<Outcome>) -> Response<Full<Bytes>> {
    match result {
        Ok(o) => reply(
            StatusCode::OK,
            json!({ "status": o.status, "path": o.path.to_string_lossy(), "txid": o.txid }),
        ),
        // Litestream answers 500 with the message, also for an unknown database.
        Err(e) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// `timeout` seconds (Litestream's default when absent or 0) around `f`.
async fn bounded(
    timeout: Option<u64>,
    f: impl Future<Output = Result<Outcome>>,
) -> Result<Outcome> {
    let secs = timeout.filter(|t| *t > 0).unwrap_or(DEFAULT_TIMEOUT_SECS);
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| Err(Error::ControlTimedOut { secs }))
}

async fn answer(control: &Control, req: Request<hyper::body::Incoming>) -> Response<Full<Bytes>> {
    route(control, req)
        .await
        .unwrap_or_else(|BadRequest(why)| error_reply(StatusCode::BAD_REQUEST, why))
}

async fn route(
    control: &Control,
    req: Request<hyper::body::Incoming>,
) -> std::result::Result<Response<Full<Bytes>>, BadRequest> {
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    let result = match (&method, path.as_str()) {
        (&Method::POST, "/start" | "/stop" | "/unregister") => {
            let r: PathRequest = read_json(req).await?;
            let db = db_path(&r.path)?;
            let call = async {
                match path.as_str() {
                    "/start" => control.start(&db).await,
                    "/stop" => control.stop(&db).await,
                    _ => control.unregister(&db).await,
                }
            };
            bounded(r.timeout, call).await
        }
        (&Method::POST, "/register") => {
            let r: RegisterRequest = read_json(req).await?;
            if r.replica_url.is_empty() {
                return Err(BadRequest("replica_url required".into()));
            }
            let db = db_path(&r.path)?;
            bounded(None, control.register(&db, &r.replica_url)).await
        }
        (&Method::GET, "/list" | "/info") => {
            return Ok(match control.list().await {
                Ok(dbs) if path == "/list" => {
                    let databases = dbs.iter().map(listed).collect();
                    reply(StatusCode::OK, json!(ListResponse { databases }))
                }
                Ok(dbs) => reply(StatusCode::OK, json!(info(control, dbs.len()))),
                Err(e) => error_reply(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
            });
        }
        _ => return Ok(error_reply(StatusCode::NOT_FOUND, "404 page not found")),
    };
    Ok(outcome_reply(result))
}

fn listed(db: &DbSummary) -> ListedDb {
    ListedDb {
        path: db.path.to_string_lossy().into_owned(),
        status: db.status.clone(),
        last_sync_at: db.last_sync_at.map(crate::time::format_rfc3339),
    }
}

fn info(control: &Control, database_count: usize) -> DaemonInfo {
    let started = control.started_at();
    DaemonInfo {
        version: env!("CARGO_PKG_VERSION").to_owned(),
        pid: std::process::id(),
        uptime_seconds: SystemTime::now()
            .duration_since(started)
            .unwrap_or_default()
            .as_secs(),
        started_at: crate::time::format_rfc3339(started),
        database_count,
    }
}

// ---- The client: what `tideline start`, `stop`, … send ----

/// The commands' end of the control socket.
#[derive(Debug, Clone)]
pub struct ControlClient {
    socket: PathBuf,
    timeout: Duration,
}

/// A `start`, `stop`, `register` or `unregister` answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ControlOutcome {
    /// Litestream's status word (`started`, `already_running`, `stopped`, …).
    pub status: String,
    /// The database's path as the daemon knows it.
    pub path: String,
    /// The replica's TXID (0 if none; absent from `register` answers).
    #[serde(default)]
    pub txid: u64,
}

impl ControlClient {
    /// A client of the daemon listening on `socket`; each command gives up after
    /// `timeout`.
    pub fn new(socket: impl Into<PathBuf>, timeout: Duration) -> ControlClient {
        ControlClient {
            socket: socket.into(),
            timeout,
        }
    }

    /// `POST /start`.
    pub async fn start(&self, db: &str) -> Result<ControlOutcome> {
        self.post(
            "start",
            json!({ "path": db, "timeout": self.timeout.as_secs() }),
        )
        .await
    }

    /// `POST /stop`: returns after the daemon's final upload.
    pub async fn stop(&self, db: &str) -> Result<ControlOutcome> {
        self.post(
            "stop",
            json!({ "path": db, "timeout": self.timeout.as_secs() }),
        )
        .await
    }

    /// `POST /register`.
    pub async fn register(&self, db: &str, replica_url: &str) -> Result<ControlOutcome> {
        self.post(
            "register",
            json!({ "path": db, "replica_url": replica_url }),
        )
        .await
    }

    /// `POST /unregister`: returns after the daemon's final upload.
    pub async fn unregister(&self, db: &str) -> Result<ControlOutcome> {
        self.post(
            "unregister",
            json!({ "path": db, "timeout": self.timeout.as_secs() }),
        )
        .await
    }

    /// `GET /list`.
    pub async fn list(&self) -> Result<Vec<ListedDb>> {
        let body = self.send("list", Method::GET, None).await?;
        let list: ListResponse = self.parse("list", &body)?;
        Ok(list.databases)
    }

    /// `GET /info`.
    pub async fn info(&self) -> Result<DaemonInfo> {
        let body = self.send("info", Method::GET, None).await?;
        self.parse("info", &body)
    }

    async fn post(&self, command: &'static str, body: serde_json::Value) -> Result<ControlOutcome> {
        let body = self.send(command, Method::POST, Some(body)).await?;
        self.parse(command, &body)
    }

    fn parse<T: serde::de::DeserializeOwned>(
        &self,
        command: &'static str,
        body: &[u8],
    ) -> Result<T> {
        serde_json::from_slice(body).map_err(|e| Error::ControlRefused {
            command,
            message: format!("unreadable answer from the daemon: {e}"),
        })
    }

    async fn send(
        &self,
        command: &'static str,
        method: Method,
        body: Option<serde_json::Value>,
    ) -> Result<Vec<u8>> {
        let exchange = async {
            let connect = |source| Error::ControlUnreachable {
                socket: self.socket.clone(),
                source,
            };
            let stream = UnixStream::connect(&self.socket).await.map_err(connect)?;
            let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .map_err(|e| connect(std::io::Error::other(e)))?;
            tokio::spawn(conn);
            let payload = body.map(|b| b.to_string()).unwrap_or_default();
            let req = Request::builder()
                .method(method)
                .uri(format!("http://localhost/{command}"))
                .header("host", "localhost")
                .header("content-type", "application/json")
                .body(Full::new(Bytes::from(payload)))
                .map_err(|e| Error::Internal(e.to_string()))?;
            let resp = sender
                .send_request(req)
                .await
                .map_err(|e| connect(std::io::Error::other(e)))?;
            let status = resp.status();
            let bytes = Limited::new(resp.into_body(), 64 << 20)
                .collect()
                .await
                .map_err(|e| connect(std::io::Error::other(e.to_string())))?
                .to_bytes()
                .to_vec();
            if status != StatusCode::OK {
                let message = serde_json::from_slice::<ErrorResponse>(&bytes)
                    .map(|e| e.error)
                    .unwrap_or_else(|_| String::from_utf8_lossy(&bytes).trim().to_owned());
                return Err(Error::ControlRefused { command, message });
            }
            Ok(bytes)
        };
        tokio::time::timeout(self.timeout, exchange)
            .await
            .unwrap_or_else(|_| {
                Err(Error::ControlTimedOut {
                    secs: self.timeout.as_secs(),
                })
            })
    }
}

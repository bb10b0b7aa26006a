//! The `/metrics` endpoint of `addr:`: a small HTTP/1.1 server answering `GET /metrics`
//! with [`render`](super::render)'s text, as Litestream's `promhttp` handler does.
//! Connections are capped and each is given a deadline, so a stuck scraper cannot pile
//! up tasks or sockets.
//!
//! Reason to change: how the metrics are served.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::config::ListenAddr;
use crate::error::{Error, Result};

/// Scrapes served at once; more wait for a slot (Prometheus scrapes one at a time).
const MAX_CONNECTIONS: usize = 32;
/// The longest a connection may stay open (a scrape of 10,000 databases takes well
/// under a second).
const CONNECTION_DEADLINE: Duration = Duration::from_secs(30);

/// The running endpoint; it stops when dropped.
#[derive(Debug)]
pub struct MetricsServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl MetricsServer {
    /// The address it listens on (the port chosen when `addr:` gave port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The URL to scrape, with `localhost` for an all-interfaces address.
    pub fn url(&self) -> String {
        let ip = self.addr.ip();
        let host = if ip.is_unspecified() {
            "localhost".to_owned()
        } else if ip.is_ipv6() {
            format!("[{ip}]")
        } else {
            ip.to_string()
        };
        format!("http://{host}:{}/metrics", self.addr.port())
    }
}

impl Drop for MetricsServer {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
    }
}

/// Enables the metrics and serves them on `addr` (an empty host: every interface, as
/// Go's `:9090` does) until the returned server is dropped.
pub async fn serve(addr: &ListenAddr) -> Result<MetricsServer> {
    super::enable();
    let listener = bind(addr).await?;
    let local = listener
        .local_addr()
        .map_err(|source| bind_error(addr, source))?;
    let (stop, stopped) = watch::channel(false);
    tokio::spawn(accept_loop(listener, stopped));
    Ok(MetricsServer { addr: local, stop })
}

async fn bind(addr: &ListenAddr) -> Result<TcpListener> {
    if addr.host.is_empty() {
        // Dual-stack where the OS has IPv6, else IPv4 only.
        if let Ok(l) = TcpListener::bind(("::", addr.port)).await {
            return Ok(l);
        }
        return TcpListener::bind(("0.0.0.0", addr.port))
            .await
            .map_err(|source| bind_error(addr, source));
    }
    TcpListener::bind((addr.host.as_str(), addr.port))
        .await
        .map_err(|source| bind_error(addr, source))
}

fn bind_error(addr: &ListenAddr, source: std::io::Error) -> Error {
    Error::MetricsListen {
        addr: addr.to_string(),
        source,
    }
}

fn accept_loop(
    listener: TcpListener,
    stopped: watch::Receiver<bool>,
) -> impl Future<Output = ()> + Send + 'static {
    let listener = Arc::new(listener);
    let accept = move || {
        let l = Arc::clone(&listener);
        async move { l.accept().await.map(|(s, _)| s) }
    };
    let serve = |socket| async move {
        let svc =
            hyper::service::service_fn(|req| async move { Ok::<_, Infallible>(answer(&req)) });
        let _ = hyper::server::conn::http1::Builder::new()
            .keep_alive(true)
            .serve_connection(TokioIo::new(socket), svc)
            .await;
    };
    crate::serve::accept_loop(accept, serve, MAX_CONNECTIONS, CONNECTION_DEADLINE, stopped)
}

/// `GET /metrics` (or `HEAD`): the text; anything else: 404 or 405.
fn answer<B>(req: &Request<B>) -> Response<Full<Bytes>> {
    let reply = |status: StatusCode, body: String, content_type: &str| {
        Response::builder()
            .status(status)
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap_or_default()
    };
    if req.uri().path() != "/metrics" {
        return reply(
            StatusCode::NOT_FOUND,
            "404 page not found\n".into(),
            "text/plain",
        );
    }
    match *req.method() {
        Method::GET => reply(StatusCode::OK, super::render(), super::CONTENT_TYPE),
        Method::HEAD => reply(StatusCode::OK, String::new(), super::CONTENT_TYPE),
        _ => reply(
            StatusCode::METHOD_NOT_ALLOWED,
            "only GET /metrics is served\n".into(),
            "text/plain",
        ),
    }
}

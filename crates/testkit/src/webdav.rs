//! A real WebDAV server for tests: `rclone serve webdav` (Debian's `rclone`, installed
//! by `scripts/setup.sh`) over a temporary folder, on `127.0.0.1`, with basic
//! authentication. The files it serves are plain files under [`WebDavServer::root`],
//! so tests can look at (and damage) what a replica wrote.
//!
//! It is a separate process, started and ended by PID; it serves the engine's tests,
//! the `tideline` binary and Litestream alike.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The user the server accepts.
pub const WEBDAV_USER: &str = "tideline";
/// That user's password.
pub const WEBDAV_PASSWORD: &str = "tideline-webdav-secret";

/// How long the server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `rclone serve webdav`.
#[derive(Debug)]
pub struct WebDavServer {
    child: Option<Child>,
    addr: SocketAddr,
    root: PathBuf,
    log: PathBuf,
}

impl WebDavServer {
    /// Starts a server over `root` (created if missing) on a free port.
    pub fn start(root: &Path) -> std::io::Result<WebDavServer> {
        std::fs::create_dir_all(root)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = WebDavServer {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            root: root.to_owned(),
            log: root.with_extension("rclone.log"),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let log = std::fs::File::create(&self.log)?;
        let child = Command::new("rclone")
            .args(["serve", "webdav"])
            .arg(&self.root)
            .args(["--addr", &self.addr.to_string()])
            .args(["--user", WEBDAV_USER, "--pass", WEBDAV_PASSWORD])
            // Files written beside the server (by tests) are seen at once.
            .args(["--dir-cache-time", "1s", "--poll-interval", "0"])
            .args(["--config", "/dev/null", "--log-level", "NOTICE"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot start rclone (run scripts/setup.sh to install it): {e}"),
                )
            })?;
        self.child = Some(child);
        let deadline = Instant::now() + START_TIMEOUT;
        while TcpStream::connect_timeout(&self.addr, Duration::from_millis(200)).is_err() {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                let text = std::fs::read_to_string(&self.log).unwrap_or_default();
                return Err(std::io::Error::other(format!(
                    "rclone serve webdav exited ({status}): {text}"
                )));
            }
            if Instant::now() > deadline {
                return Err(std::io::Error::other(
                    "rclone serve webdav did not listen in 20 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `webdav://user:password@127.0.0.1:PORT/path`, as a replica URL.
    pub fn replica_url(&self, path: &str) -> String {
        format!(
            "webdav://{WEBDAV_USER}:{WEBDAV_PASSWORD}@{}/{}",
            self.addr,
            path.trim_start_matches('/')
        )
    }

    /// The folder the server serves.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Stops the server (a destination that went away).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for WebDavServer {
    fn drop(&mut self) {
        self.stop();
    }
}

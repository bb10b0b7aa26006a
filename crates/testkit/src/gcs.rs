//! A Google Cloud Storage server for tests: `gcp-storage-emulator` (PyPI, pinned by
//! `scripts/setup.sh` into the venv `.tools/gcs`) on `127.0.0.1`, speaking the JSON
//! API without authentication, as Google's libraries talk to an emulator named by
//! `STORAGE_EMULATOR_HOST`. Its data lives under a test's folder (`STORAGE_BASE`), so a
//! restart keeps the buckets and objects.
//!
//! It is a separate process, started and ended by PID; it serves the engine's tests,
//! the `tideline` binary and Litestream alike (give them
//! [`emulator_host`](GcsServer::emulator_host) as `STORAGE_EMULATOR_HOST`). It answers
//! one request at a time (Python's `HTTPServer`), which is enough for tests.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tideline_engine::config::{GsReplicaConfig, ReplicaConfig, ReplicaTarget};
use tideline_engine::storage::ReplicaError;
use tideline_engine::storage::gs::GsReplica;

/// The project buckets are made in (the emulator accepts any).
pub const GCS_PROJECT: &str = "tideline-test";

/// How long the server may take to listen (Python starts in well under a second).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `gcp-storage-emulator`.
#[derive(Debug)]
pub struct GcsServer {
    child: Option<Child>,
    addr: SocketAddr,
    location: PathBuf,
    log: PathBuf,
}

/// The emulator's script: `$GCS_EMULATOR`, the repository's `.tools/gcs`, or `PATH`.
fn program() -> PathBuf {
    if let Some(p) = std::env::var_os("GCS_EMULATOR") {
        return PathBuf::from(p);
    }
    let tools =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/gcs/bin/gcp-storage-emulator");
    if tools.is_file() {
        tools
    } else {
        PathBuf::from("gcp-storage-emulator")
    }
}

impl GcsServer {
    /// Starts a server keeping its data in `location` (created if missing), on a free
    /// port.
    pub fn start(location: &Path) -> std::io::Result<GcsServer> {
        std::fs::create_dir_all(location)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = GcsServer {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            location: location.to_owned(),
            log: location.with_extension("gcs.log"),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let log = std::fs::File::create(&self.log)?;
        let child = Command::new(program())
            .args(["start", "--host", "127.0.0.1", "--port"])
            .arg(self.addr.port().to_string())
            .args(["--project-number", "1234", "--quiet"])
            .env("STORAGE_BASE", &self.location)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "cannot start gcp-storage-emulator (run scripts/setup.sh to install it): {e}"
                    ),
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
                    "gcp-storage-emulator exited ({status}): {text}"
                )));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(std::io::Error::other(
                    "gcp-storage-emulator did not listen in 30 s",
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `127.0.0.1:PORT`: the value of `STORAGE_EMULATOR_HOST` for this server.
    pub fn emulator_host(&self) -> String {
        self.addr.to_string()
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// `gs://bucket/path`, as a replica URL.
    pub fn replica_url(&self, bucket: &str, path: &str) -> String {
        format!("gs://{bucket}/{}", path.trim_start_matches('/'))
    }

    /// The replica settings of `path` in `bucket` on this server.
    pub fn gs_config(&self, bucket: &str, path: &str) -> GsReplicaConfig {
        GsReplicaConfig {
            bucket: bucket.to_owned(),
            path: path.trim_matches('/').to_owned(),
            credentials_file: None,
            emulator: Some(self.endpoint()),
        }
    }

    /// A whole replica config (Litestream's defaults) for `path` in `bucket`, as a
    /// config with `STORAGE_EMULATOR_HOST` set to this server gives it.
    pub fn replica_config(&self, bucket: &str, path: &str) -> ReplicaConfig {
        let host = self.emulator_host();
        let env = move |k: &str| (k == "STORAGE_EMULATOR_HOST").then(|| host.clone());
        let mut cfg = ReplicaConfig::from_url_with_env(&self.replica_url(bucket, path), &env)
            .expect("a valid gs URL");
        cfg.target = ReplicaTarget::Gs(Box::new(self.gs_config(bucket, path)));
        cfg
    }

    /// Creates `bucket` (already there is fine).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), ReplicaError> {
        GsReplica::new(&self.gs_config(bucket, ""))?
            .create_bucket(GCS_PROJECT)
            .await
    }

    /// The folder the emulator keeps its data in.
    pub fn location(&self) -> &Path {
        &self.location
    }

    /// Stops the server (a destination that went away): `SIGTERM` to its PID, then
    /// `SIGKILL` if it has not exited within 5 s. Every write is on disk already.
    pub fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let termed = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let deadline = Instant::now() + Duration::from_secs(5);
        while termed && Instant::now() < deadline {
            if child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = child.kill();
        let _ = child.wait();
    }

    /// Starts it again on the same port, with the same data.
    pub fn restart(&mut self) -> std::io::Result<()> {
        self.stop();
        self.spawn()
    }
}

impl Drop for GcsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

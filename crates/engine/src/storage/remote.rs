//! Why a request to an SFTP, WebDAV, Azure Blob Storage, Google Cloud Storage, NATS or
//! OSS server failed, in terms of
//! what the user must fix: the [`RemoteFailure`] taxonomy those backends share (S3 has
//! its own, [`S3Failure`](super::S3Failure), for its richer error codes).
//!
//! Reason to change: a server reports a failure in a way not yet named, or a message
//! must say something else.

/// Why a request to an SFTP, WebDAV, Azure Blob Storage, Google Cloud Storage, NATS or
/// OSS server failed, in terms of what to fix.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum RemoteFailure {
    /// The server could not be reached (refused, timed out, DNS, TLS, connection lost).
    Unreachable(String),
    /// The server refused the login; `keys` names the settings that hold it.
    WrongCredentials {
        /// The config keys to check, e.g. `user, password and key-path`.
        keys: &'static str,
        /// What the server or the client said.
        detail: String,
    },
    /// The login worked but may not do this here.
    AccessDenied(String),
    /// The SSH server's host key is neither `host-key` nor in `~/.ssh/known_hosts`.
    HostKeyUnknown {
        /// The key it offered, as an `authorized_keys` line (the server is named by
        /// the error's replica).
        offered: String,
    },
    /// The SSH server offered another host key than the one configured or known.
    HostKeyChanged {
        /// The key it offered, as an `authorized_keys` line.
        offered: String,
    },
    /// The server is out of space.
    ServerFull(String),
    /// The bucket (Azure: container) the config names does not exist; replication
    /// never creates one, as Litestream does not. (Boxed: the other failures are small.)
    NoSuchBucket(Box<MissingBucket>),
    /// The credentials file an environment variable names cannot be used (unreadable,
    /// not JSON, not a service-account key).
    BadCredentialsFile {
        /// The variable (`GOOGLE_APPLICATION_CREDENTIALS`).
        variable: &'static str,
        /// What is wrong with the file (never its contents).
        detail: String,
    },
    /// The server answered with an HTTP error not named above.
    Server {
        /// HTTP status.
        status: u16,
        /// The status text or the server's message.
        message: String,
    },
    /// The TLS handshake failed: the server's certificate is not trusted, or the server
    /// wants a client certificate that was not given or not accepted.
    TlsRejected(String),
    /// Anything else (a malformed answer, a protocol error).
    Other(String),
}

/// A bucket that is not there, in the words of its service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MissingBucket {
    /// What the service calls it: `bucket`, `container`, `object-store bucket`.
    pub what: &'static str,
    /// Its name.
    pub name: String,
    /// How to create it and which key names it, said to the user after the colon.
    pub fix: String,
}

impl RemoteFailure {
    /// True for failures only a change of configuration fixes.
    pub fn needs_config_fix(&self) -> bool {
        matches!(
            self,
            RemoteFailure::WrongCredentials { .. }
                | RemoteFailure::AccessDenied(_)
                | RemoteFailure::HostKeyUnknown { .. }
                | RemoteFailure::HostKeyChanged { .. }
                | RemoteFailure::NoSuchBucket(_)
                | RemoteFailure::BadCredentialsFile { .. }
                | RemoteFailure::TlsRejected(_)
        )
    }
}

impl std::fmt::Display for RemoteFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteFailure::Unreachable(detail) => write!(
                f,
                "cannot reach the server ({detail}): check the host and port, and that the server is running and reachable"
            ),
            RemoteFailure::WrongCredentials { keys, detail } => write!(
                f,
                "the server refused the login ({detail}): check {keys} in the config"
            ),
            RemoteFailure::AccessDenied(detail) => write!(
                f,
                "access denied ({detail}): the login works but may not read and write this folder; fix the folder's permissions or the path"
            ),
            RemoteFailure::HostKeyUnknown { offered } => write!(
                f,
                "the server's host key is not known, so the server cannot be trusted yet: check that this is the server's key (ssh-keyscan on the server itself) and set host-key: {offered} in the replica config, or add it to ~/.ssh/known_hosts"
            ),
            RemoteFailure::HostKeyChanged { offered } => write!(
                f,
                "the server's host key has CHANGED (now {offered}): someone may be intercepting the connection; if the server was reinstalled, check its new key and update host-key (or ~/.ssh/known_hosts)"
            ),
            RemoteFailure::ServerFull(detail) => write!(
                f,
                "the server is out of space ({detail}): free space there or raise the quota; nothing is lost, the files not uploaded stay in the meta directory"
            ),
            RemoteFailure::NoSuchBucket(m) => {
                write!(f, "the {} {:?} does not exist: {}", m.what, m.name, m.fix)
            }
            RemoteFailure::BadCredentialsFile { variable, detail } => write!(
                f,
                "the credentials file {variable} names cannot be used ({detail}): set {variable} to a service-account JSON key file"
            ),
            RemoteFailure::Server { status, message } => {
                write!(f, "the server answered {status} {message}")
            }
            RemoteFailure::TlsRejected(detail) => write!(
                f,
                "the TLS handshake failed ({detail}): the server's certificate must be signed by a CA in root-cas: (or the system's store), and a server that asks for a client certificate needs client-cert: and client-key: signed by a CA it trusts"
            ),
            RemoteFailure::Other(detail) => f.write_str(detail),
        }
    }
}

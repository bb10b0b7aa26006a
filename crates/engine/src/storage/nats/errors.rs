//! What a NATS failure means for the user, from async-nats's typed error kinds: the
//! credentials refused, the bucket missing, JetStream off, or the server unreachable.
//!
//! Reason to change: async-nats reports a failure in a way not yet named.

use async_nats::jetstream::ErrorCode;
use async_nats::jetstream::context::{
    GetStreamError, GetStreamErrorKind, RequestError, RequestErrorKind,
};
use async_nats::{ConnectError, ConnectErrorKind};

use crate::storage::{MissingBucket, RemoteFailure};

/// A failure to connect or log in; `keys` names the settings holding the credentials.
pub(super) fn connect_failure(e: &ConnectError, keys: &'static str) -> RemoteFailure {
    let detail = chain(e);
    match e.kind() {
        ConnectErrorKind::AuthorizationViolation | ConnectErrorKind::Authentication => {
            RemoteFailure::WrongCredentials { keys, detail }
        }
        ConnectErrorKind::ServerParse => RemoteFailure::Other(detail),
        ConnectErrorKind::Tls => RemoteFailure::TlsRejected(detail),
        _ if tls_failed(e) => RemoteFailure::TlsRejected(detail),
        _ => RemoteFailure::Unreachable(detail),
    }
}

/// Whether the handshake itself failed: async-nats reports a certificate the client
/// does not trust, or an alert from a server that wants a client certificate, as an
/// I/O error carrying the TLS library's error.
fn tls_failed(e: &ConnectError) -> bool {
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        if s.downcast_ref::<rustls::Error>().is_some()
            || s.downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some())
        {
            return true;
        }
        source = s.source();
    }
    false
}

/// A failure to find the bucket's stream (`OBJ_<bucket>`).
pub(super) fn stream_failure(e: &GetStreamError, bucket: &str) -> RemoteFailure {
    match e.kind() {
        GetStreamErrorKind::JetStream(js) if js.error_code() == ErrorCode::STREAM_NOT_FOUND => {
            RemoteFailure::NoSuchBucket(Box::new(MissingBucket {
                what: "object-store bucket",
                name: bucket.to_owned(),
                fix: format!(
                    "create it (nats object add {bucket}), or fix the bucket in url: nats://HOST:PORT/BUCKET"
                ),
            }))
        }
        GetStreamErrorKind::Request => match request_kind(e) {
            Some(RequestErrorKind::NoResponders) => RemoteFailure::Other(
                "JetStream is not enabled on the server (start nats-server with -js, or \
                 enable jetstream in its config)"
                    .into(),
            ),
            _ => RemoteFailure::Unreachable(chain(e)),
        },
        _ => RemoteFailure::Other(chain(e)),
    }
}

/// The kind of the request error under `e`, if that is what failed.
fn request_kind(e: &GetStreamError) -> Option<RequestErrorKind> {
    std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<RequestError>())
        .map(|r| r.kind())
}

/// A failed object-store request: unreachable when `down` (it timed out or could not
/// publish), else unnamed.
pub(super) fn store_failure(down: bool, e: &dyn std::error::Error) -> RemoteFailure {
    if down {
        RemoteFailure::Unreachable(chain(e))
    } else {
        RemoteFailure::Other(chain(e))
    }
}

/// Whether the client is not connected now (reconnecting, or given up).
pub(super) fn is_down(client: &async_nats::Client) -> bool {
    client.connection_state() != async_nats::connection::State::Connected
}

/// `e` and its sources, each said once.
pub(super) fn chain(e: &dyn std::error::Error) -> String {
    let mut detail = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let text = s.to_string();
        if !detail.contains(&text) {
            detail.push_str(": ");
            detail.push_str(&text);
        }
        source = s.source();
    }
    detail
}

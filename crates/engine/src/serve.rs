//! The accept loop of the engine's small servers (`/metrics`, the control socket):
//! connections capped, each given a deadline so a stuck client is let go, a failed
//! accept (out of file descriptors) retried after a pause, and the loop ended by a
//! stop signal.
//!
//! Reason to change: how connections are admitted.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Semaphore, watch};

/// Accepts with `accept` and serves each connection with `serve`, at most
/// `max_connections` at once and each for at most `deadline`, until `stopped` changes.
pub(crate) async fn accept_loop<S, A, F, H, R>(
    mut accept: A,
    serve: H,
    max_connections: usize,
    deadline: Duration,
    mut stopped: watch::Receiver<bool>,
) where
    A: FnMut() -> F,
    F: Future<Output = std::io::Result<S>>,
    H: Fn(S) -> R,
    R: Future<Output = ()> + Send + 'static,
{
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let permit = tokio::select! {
            _ = stopped.changed() => return,
            p = Arc::clone(&slots).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
        };
        let stream = tokio::select! {
            _ = stopped.changed() => return,
            r = accept() => match r {
                Ok(s) => s,
                Err(_) => {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let conn = serve(stream);
        tokio::spawn(async move {
            let _ = tokio::time::timeout(deadline, conn).await;
            drop(permit);
        });
    }
}

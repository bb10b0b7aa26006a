//! A TCP proxy on 127.0.0.1 that delays every byte by a fixed time each way: a far
//! server, made of a near one, so tests can see what round trips cost (SFTP's
//! pipelined writes against one write at a time, for instance). Bandwidth is not
//! limited; only latency is added. It runs on its own thread and runtime, like
//! [`S3Server`](crate::S3Server), and stops on drop.

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// A running proxy.
#[derive(Debug)]
pub struct LatencyProxy {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl LatencyProxy {
    /// Forwards connections on a free port of 127.0.0.1 to `target`, each direction
    /// `one_way` late (a round trip costs twice that).
    pub fn start(target: SocketAddr, one_way: Duration) -> std::io::Result<LatencyProxy> {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()?;
        // Bound here (a std socket: this may run inside a test's runtime, where
        // blocking on another one is not allowed), served on the proxy's thread.
        let std_listener = std::net::TcpListener::bind("127.0.0.1:0")?;
        std_listener.set_nonblocking(true)?;
        let addr = std_listener.local_addr()?;
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let thread = std::thread::Builder::new()
            .name("latency-proxy".into())
            .spawn(move || {
                rt.block_on(async move {
                    let Ok(listener) = TcpListener::from_std(std_listener) else {
                        return;
                    };
                    loop {
                        let client = tokio::select! {
                            r = listener.accept() => match r {
                                Ok((s, _)) => s,
                                Err(_) => continue,
                            },
                            _ = &mut stop_rx => return,
                        };
                        tokio::spawn(async move {
                            let Ok(server) = TcpStream::connect(target).await else {
                                return;
                            };
                            let _ = client.set_nodelay(true);
                            let _ = server.set_nodelay(true);
                            let (cr, cw) = client.into_split();
                            let (sr, sw) = server.into_split();
                            tokio::join!(pipe(cr, sw, one_way), pipe(sr, cw, one_way));
                        });
                    }
                });
                rt.shutdown_timeout(Duration::from_secs(1));
            })?;
        Ok(LatencyProxy {
            addr,
            stop: Some(stop_tx),
            thread: Some(thread),
        })
    }

    /// The proxy's port on 127.0.0.1.
    pub fn port(&self) -> u16 {
        self.addr.port()
    }
}

impl Drop for LatencyProxy {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Copies `from` to `to`, each chunk written `delay` after it was read, in order.
async fn pipe(mut from: OwnedReadHalf, mut to: OwnedWriteHalf, delay: Duration) {
    let (tx, mut rx) = mpsc::unbounded_channel::<(Instant, Vec<u8>)>();
    let read = async move {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match from.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    if tx
                        .send((Instant::now() + delay, buf[..n].to_vec()))
                        .is_err()
                    {
                        break;
                    }
                }
            }
        }
    };
    let write = async move {
        while let Some((due, bytes)) = rx.recv().await {
            tokio::time::sleep_until(due).await;
            if to.write_all(&bytes).await.is_err() {
                return;
            }
        }
        let _ = to.shutdown().await;
    };
    tokio::join!(read, write);
}

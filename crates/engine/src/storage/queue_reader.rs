//! The blocking end of a remote file being streamed: the LTX decoder runs on a blocking
//! thread and reads what a task on the runtime fetches, through a bounded queue (the
//! WebDAV, SFTP and Azure Blob whole-file readers).
//!
//! Reason to change: how streamed chunks reach a blocking reader.

use std::io::Read;

use tokio::sync::mpsc;

use super::ReplicaResult;

/// A blocking reader over the chunks a task sends; a sent error ends the read with it.
pub(crate) struct QueueReader {
    rx: mpsc::Receiver<ReplicaResult<bytes::Bytes>>,
    current: bytes::Bytes,
}

impl QueueReader {
    pub(crate) fn new(rx: mpsc::Receiver<ReplicaResult<bytes::Bytes>>) -> QueueReader {
        QueueReader {
            rx,
            current: bytes::Bytes::new(),
        }
    }
}

impl Read for QueueReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.current.is_empty() {
            match self.rx.blocking_recv() {
                Some(Ok(b)) => self.current = b,
                Some(Err(e)) => return Err(std::io::Error::other(e)),
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len());
        buf[..n].copy_from_slice(&self.current.split_to(n));
        Ok(n)
    }
}

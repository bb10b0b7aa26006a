//! Lag observation: a background thread watches a replica's level 0 (a folder
//! replica's `ltx/0`, the S3 server's directory for `<prefix>/0000`, a WebDAV or SFTP
//! server's `<path>/ltx/0` on its disk, or, for blobs that are not files, the listing
//! of the engine's client), decodes each new LTX file once as it lands and records when
//! it was listed and the newest row marker (`lagmark:` + ten digits) it holds. A
//! commit's lag is the time from its COMMIT returning to the first file holding its
//! marker: when a restore would have it.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use tideline_engine::{FileInfo, ReplicaClient};

/// What each marked row starts with; ten digits follow.
pub const MARK: &[u8] = b"lagmark:";

/// The newest marker in an LTX file: `None` if the file does not decode (still being
/// written), `Some(None)` if it holds no marker.
pub fn newest_mark(bytes: &[u8]) -> Option<Option<u64>> {
    let mut dec = tideline_ltx::Decoder::new(bytes).ok()?;
    let mut best = None;
    while let Some(_pgno) = dec.next_page().ok()? {
        let page = dec.page();
        let mut at = 0;
        while let Some(pos) = find(&page[at..], MARK) {
            let start = at + pos + MARK.len();
            if let Some(d) = page.get(start..start + 10)
                && let Ok(s) = std::str::from_utf8(d)
                && let Ok(n) = s.parse::<u64>()
            {
                best = best.max(Some(n));
            }
            at = start;
        }
    }
    dec.finish().ok()?;
    Some(best)
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where a replica's level-0 files are seen.
#[derive(Debug, Clone)]
pub enum Level0 {
    /// A directory on this machine's disk, polled every 2 ms.
    Dir(PathBuf),
    /// A replica listed through the engine's client (every 50 ms: each listing is a
    /// request to the server).
    Client(Arc<dyn ReplicaClient>),
}

/// One listed level-0 file.
enum Listed {
    File(PathBuf),
    Blob(FileInfo),
}

impl Level0 {
    fn poll(&self) -> Duration {
        match self {
            Level0::Dir(_) => Duration::from_millis(2),
            Level0::Client(_) => Duration::from_millis(50),
        }
    }

    /// The `.ltx` files there now, by name; none if it cannot be listed (yet).
    fn list(&self) -> Vec<(String, Listed)> {
        match self {
            Level0::Dir(dir) => fs::read_dir(dir)
                .map(|rd| {
                    rd.flatten()
                        .map(|e| (e.file_name().to_string_lossy().into_owned(), e.path()))
                        .filter(|(name, _)| name.ends_with(".ltx"))
                        .map(|(name, path)| (name, Listed::File(path)))
                        .collect()
                })
                .unwrap_or_default(),
            Level0::Client(c) => block_on(c.list_fresh(0))
                .map(|files| {
                    files
                        .into_iter()
                        .map(|f| (f.filename(), Listed::Blob(f)))
                        .collect()
                })
                .unwrap_or_default(),
        }
    }

    /// A listed file's bytes, or `None` if it cannot be read (yet).
    fn read(&self, l: &Listed) -> Option<Vec<u8>> {
        match (self, l) {
            (_, Listed::File(path)) => fs::read(path).ok(),
            (Level0::Client(c), Listed::Blob(f)) => block_on(c.read_range(f, 0..f.size)).ok(),
            (Level0::Dir(_), Listed::Blob(_)) => None,
        }
    }

    /// Waits (bounded by `timeout`) until level 0 holds any file; false if it never does.
    pub fn wait_any(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while self.list().is_empty() {
            if Instant::now() > deadline {
                return false;
            }
            std::thread::sleep(self.poll().max(Duration::from_millis(20)));
        }
        true
    }
}

/// Runs `f` to completion (the bench is not async) on one runtime for the whole run,
/// so that a client's pooled connections outlive each call.
pub fn block_on<F: std::future::Future>(f: F) -> F::Output {
    static RT: std::sync::LazyLock<tokio::runtime::Runtime> = std::sync::LazyLock::new(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime")
    });
    RT.block_on(f)
}

/// Watches a replica's level 0 in the background and decodes each new LTX file once,
/// recording when it was listed and the newest row marker in it.
pub struct Watch {
    stop: Arc<AtomicBool>,
    found: Arc<Mutex<Vec<(Instant, u64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    /// Files already there are skipped (not decoded).
    pub fn start(l0: Level0) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let found = Arc::new(Mutex::new(Vec::new()));
        let (s, f) = (Arc::clone(&stop), Arc::clone(&found));
        let mut seen: HashSet<String> = l0.list().into_iter().map(|(name, _)| name).collect();
        let thread = std::thread::spawn(move || {
            // Bounded: the caller stops it, and it gives up after 30 minutes regardless.
            let deadline = Instant::now() + Duration::from_secs(1800);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                let listed = l0.list();
                let now = Instant::now();
                for (name, file) in listed {
                    if seen.contains(&name) {
                        continue;
                    }
                    // A file still being written does not decode yet: next time.
                    if let Some(bytes) = l0.read(&file)
                        && let Some(mark) = newest_mark(&bytes)
                    {
                        seen.insert(name);
                        if let Some(m) = mark
                            && let Ok(mut v) = f.lock()
                        {
                            v.push((now, m));
                        }
                    }
                }
                std::thread::sleep(l0.poll());
            }
        });
        Watch {
            stop,
            found,
            thread: Some(thread),
        }
    }

    /// Waits (bounded) until a file holding marker `want` (or newer) has landed; its time.
    pub fn wait(&self, want: u64, timeout: Duration, who: &str) -> Result<Instant> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(at) = self.found.lock().ok().and_then(|v| {
                v.iter()
                    .filter(|(_, m)| *m >= want)
                    .map(|(at, _)| *at)
                    .min()
            }) {
                return Ok(at);
            }
            if Instant::now() > deadline {
                bail!(
                    "{who}: no replica file held marker {want} within {} s",
                    timeout.as_secs()
                );
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Stops watching; every (arrival, marker) seen.
    pub fn finish(mut self) -> Vec<(Instant, u64)> {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.found.lock().map(|v| v.clone()).unwrap_or_default()
    }
}

/// Stopped on every path out, errors included.
impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

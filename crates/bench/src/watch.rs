//! Lag observation: a background thread watches a replica's level-0 directory (a
//! folder replica's `ltx/0`, or the S3 server's directory for `<prefix>/0000`), decodes
//! each new LTX file once as it lands and records when it was listed and the newest row
//! marker (`lagmark:` + ten digits) it holds. A commit's lag is the time from its
//! COMMIT returning to the first file holding its marker: when a restore would have it.

use std::collections::HashSet;
use std::fs;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Result, bail};

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

/// Watches a level-0 directory in the background and decodes each new LTX file once,
/// recording when it was listed and the newest row marker in it.
pub struct Watch {
    stop: Arc<AtomicBool>,
    found: Arc<Mutex<Vec<(Instant, u64)>>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Watch {
    /// Files already there are skipped (not decoded).
    pub fn start(l0: PathBuf) -> Watch {
        let stop = Arc::new(AtomicBool::new(false));
        let found = Arc::new(Mutex::new(Vec::new()));
        let (s, f) = (Arc::clone(&stop), Arc::clone(&found));
        let mut seen: HashSet<String> = fs::read_dir(&l0)
            .map(|rd| {
                rd.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let thread = std::thread::spawn(move || {
            // Bounded: the caller stops it, and it gives up after 30 minutes regardless.
            let deadline = Instant::now() + Duration::from_secs(1800);
            while !s.load(Ordering::Relaxed) && Instant::now() < deadline {
                if let Ok(rd) = fs::read_dir(&l0) {
                    for e in rd.flatten() {
                        let name = e.file_name().to_string_lossy().into_owned();
                        if !name.ends_with(".ltx") || seen.contains(&name) {
                            continue;
                        }
                        let now = Instant::now();
                        // A file still being written does not decode yet: next time.
                        if let Ok(bytes) = fs::read(e.path())
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
                }
                std::thread::sleep(Duration::from_millis(2));
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

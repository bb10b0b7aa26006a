//! Backoff after failures and pacing between attempts, one rule for every stage of a
//! database's task.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Longest pause between retries after failures.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest pause between capture retries.
pub(super) const MAX_CAPTURE_BACKOFF: Duration = Duration::from_secs(10);
/// Fallback poll when file-system events are available (they may still be missed,
/// e.g. on network file systems): cheap, a stat of the WAL. The upload side looks
/// for unshipped local files as often, whatever told it or not.
pub(super) const FALLBACK_POLL: Duration = Duration::from_secs(10);
/// The fallback poll grows by this per database replicating in the process, so that a
/// fleet's idle looks stay near 30 per second in all (two per database per poll).
const FALLBACK_POLL_PER_DB: Duration = Duration::from_millis(60);
/// The fallback poll's ceiling: well under the heartbeat's least interval (a minute),
/// which asks that each database's upload side looked within it.
const MAX_FALLBACK_POLL: Duration = Duration::from_secs(30);

/// Databases whose task is running in this process (see [`LiveTask`]).
static LIVE_TASKS: AtomicUsize = AtomicUsize::new(0);

/// Counts a running task for as long as it lives.
pub(super) struct LiveTask;

impl LiveTask {
    pub(super) fn new() -> LiveTask {
        LIVE_TASKS.fetch_add(1, Ordering::Relaxed);
        LiveTask
    }
}

impl Drop for LiveTask {
    fn drop(&mut self) {
        LIVE_TASKS.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The fallback poll of the database at `path` while file-system events are
/// available: [`FALLBACK_POLL`] for a few databases, longer for a fleet (up to
/// 30 s), spread over the last quarter of it by the path, so that databases started
/// together do not all look at once.
pub(super) fn fallback_poll(path: &std::path::Path) -> Duration {
    use std::hash::{Hash, Hasher};
    let live = LIVE_TASKS.load(Ordering::Relaxed) as u32;
    let poll = (FALLBACK_POLL_PER_DB * live).clamp(FALLBACK_POLL, MAX_FALLBACK_POLL);
    let mut h = std::collections::hash_map::DefaultHasher::new();
    path.hash(&mut h);
    let spread = (h.finish() % 1000) as u32;
    poll - poll / 4 * spread / 1000
}

/// The least time between two captures (or uploads) for an `interval`: a little less
/// than the interval. With exactly the interval, a writer committing once per
/// interval would be held back by each wake-up's latency, and the delays would add up
/// (every commit then waits the largest delay seen so far); the slack lets that delay
/// shrink by up to 100 ms per commit, for at most ~11 % more files under sustained
/// writes.
pub(super) fn paced(interval: Duration) -> Duration {
    interval - (interval / 10).min(Duration::from_millis(100))
}

/// One stage's retry state after failures.
#[derive(Debug, Default)]
pub(super) struct Retry {
    pub(super) backoff: Duration,
    pub(super) at: Option<tokio::time::Instant>,
}

impl Retry {
    /// True unless the stage is waiting out a backoff.
    pub(super) fn ready(&self) -> bool {
        self.at.is_none_or(|at| tokio::time::Instant::now() >= at)
    }

    pub(super) fn failing(&self) -> bool {
        self.at.is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fallback_poll_grows_with_the_fleet_within_bounds() {
        let p = std::path::Path::new("/d/app.db");
        // Other tests of this binary run tasks too: hold enough to be sure of a fleet.
        let few = fallback_poll(p);
        assert!(
            few >= FALLBACK_POLL * 3 / 4 && few <= MAX_FALLBACK_POLL,
            "{few:?}"
        );
        let fleet: Vec<LiveTask> = (0..2000).map(|_| LiveTask::new()).collect();
        let many = fallback_poll(p);
        assert!(many > FALLBACK_POLL, "{many:?}");
        assert!(
            many <= MAX_FALLBACK_POLL && many >= MAX_FALLBACK_POLL * 3 / 4,
            "{many:?}"
        );
        drop(fleet);
        let spread: std::collections::HashSet<Duration> = (0..50)
            .map(|i| fallback_poll(std::path::Path::new(&format!("/d/{i}.db"))))
            .collect();
        assert!(spread.len() > 10, "databases are spread over the poll");
    }
}

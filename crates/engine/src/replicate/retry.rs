//! Backoff after failures and pacing between attempts, one rule for every stage of a
//! database's task.

use std::time::Duration;

/// Longest pause between retries after failures.
pub(super) const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// Longest pause between capture retries.
pub(super) const MAX_CAPTURE_BACKOFF: Duration = Duration::from_secs(10);
/// Fallback poll when file-system events are available (they may still be missed,
/// e.g. on network file systems): cheap, a stat of the WAL. The upload side looks
/// for unshipped local files as often, whatever told it or not.
pub(super) const FALLBACK_POLL: Duration = Duration::from_secs(10);

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

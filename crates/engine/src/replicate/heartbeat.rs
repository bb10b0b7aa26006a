//! The heartbeat (`heartbeat-url`): an HTTP GET to a dead-man's-switch monitor, sent
//! at most once per `heartbeat-interval` and only while every database replicates —
//! each one has captured since the start, its upload side succeeded within the
//! interval, and neither is failing now — so that the monitor raises the alarm when backups stop, as Litestream 0.5
//! does. A failed request is reported and tried again at the next interval. An idle
//! database stays healthy: its upload side looks for pending files every 10–30 s (the
//! fallback poll, well under the least interval of a minute), and a look that finds
//! none succeeds without a request.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::TaskStats;
use crate::config::HeartbeatConfig;
use crate::events::{Event, EventSink};

/// How often the conditions are looked at (Litestream's 15 s).
pub const HEARTBEAT_CHECK_EVERY: Duration = Duration::from_secs(15);
/// How long one request may take (Litestream's 30 s).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether to ping at `now`: the interval since the last ping has passed, and every
/// database is healthy within it. No databases: no ping (nothing is backed up).
pub(super) fn due(
    last_ping: Option<Instant>,
    now: Instant,
    interval: Duration,
    tasks: &[Arc<TaskStats>],
) -> bool {
    let since = now.checked_sub(interval);
    last_ping.is_none_or(|t| now.duration_since(t) >= interval)
        && !tasks.is_empty()
        && tasks.iter().all(|t| t.healthy_since(since))
}

/// Pings `cfg.url` while every database on the `board` is healthy, until `stop`.
pub(super) async fn run(
    cfg: HeartbeatConfig,
    check_every: Duration,
    board: super::fleet::Board,
    mut stop: watch::Receiver<bool>,
    events: EventSink,
) {
    let client = match reqwest::Client::builder().timeout(REQUEST_TIMEOUT).build() {
        Ok(c) => c,
        Err(e) => {
            events(&Event::Heartbeat {
                url: shown(&cfg.url),
                error: Some(format!("cannot set up the HTTP client: {e}")),
            });
            return;
        }
    };
    let mut last_ping = None;
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(check_every) => {}
        }
        let now = Instant::now();
        let tasks = super::fleet::on_board(&board);
        if !due(last_ping, now, cfg.interval, &tasks) {
            continue;
        }
        // Counted as sent even if it fails: a failing monitor is not hammered.
        last_ping = Some(now);
        let error = match client.get(&cfg.url).send().await {
            Ok(r) if r.status().is_success() => None,
            Ok(r) => Some(format!("the monitor answered {}", r.status())),
            Err(e) => Some(request_error(&e)),
        };
        events(&Event::Heartbeat {
            url: shown(&cfg.url),
            error,
        });
    }
}

/// The URL without credentials (a ping URL's path is often its secret too, but it is
/// what the user needs to tell monitors apart; only user:password is dropped).
fn shown(url: &str) -> String {
    crate::config::redact_url(url)
}

/// Why a request failed, without the URL (shown beside it already).
fn request_error(e: &reqwest::Error) -> String {
    let what = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "cannot connect"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        what.to_owned()
    } else {
        format!("{what} ({detail})")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn healthy_at(t: Option<Instant>, capture_failing: bool) -> Arc<TaskStats> {
        let s = TaskStats::default();
        if let Some(t) = t {
            s.note_shipped(t);
        }
        s.note_capture(!capture_failing);
        Arc::new(s)
    }

    #[tokio::test(start_paused = true)]
    async fn pings_once_per_interval_only_while_every_database_replicates() {
        let min = Duration::from_secs(60);
        tokio::time::advance(Duration::from_secs(3600)).await;
        let now = Instant::now();
        let fresh = healthy_at(Some(now - Duration::from_secs(5)), false);
        let stale = healthy_at(Some(now - Duration::from_secs(61)), false);
        let never = healthy_at(None, false);
        let not_captured = Arc::new(TaskStats::default());
        not_captured.note_shipped(now);
        let capture_failing = healthy_at(Some(now), true);
        let ship_failing = healthy_at(Some(now), false);
        ship_failing.note_ship_failed();

        assert!(due(None, now, min, &[Arc::clone(&fresh)]));
        assert!(!due(None, now, min, &[]), "nothing is backed up");
        assert!(!due(None, now, min, &[Arc::clone(&fresh), stale]));
        assert!(!due(None, now, min, &[Arc::clone(&fresh), never]));
        assert!(!due(None, now, min, &[Arc::clone(&fresh), not_captured]));
        assert!(!due(None, now, min, &[Arc::clone(&fresh), capture_failing]));
        assert!(!due(None, now, min, &[Arc::clone(&fresh), ship_failing]));
        let last = now - Duration::from_secs(30);
        assert!(!due(Some(last), now, min, &[Arc::clone(&fresh)]));
        let last = now - Duration::from_secs(60);
        assert!(due(Some(last), now, min, &[fresh]));
    }
}

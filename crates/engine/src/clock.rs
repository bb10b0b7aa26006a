//! The time orchestration goes by, passed in rather than read: the wall clock in
//! production, and in tests a clock that follows tokio's, so that with paused time
//! (`#[tokio::test(start_paused = true)]`) minutes of schedule (backoff, lag, sync
//! intervals) pass in milliseconds and exactly when the test says.
//!
//! Pacing and deadlines use `tokio::time::Instant`, which pauses with tokio's clock;
//! timestamps written to the replica (LTX headers, restore points) come from
//! [`Clock::now`].

use std::sync::Arc;
use std::time::SystemTime;

/// A source of wall-clock time. Cheap to clone.
#[derive(Clone, Default)]
pub struct Clock {
    /// Where tokio's clock stood at `base`; `None` for the system clock.
    following: Option<Arc<(SystemTime, tokio::time::Instant)>>,
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self.following {
            None => "Clock::system",
            Some(_) => "Clock::following_tokio",
        })
    }
}

impl Clock {
    /// The system's wall clock.
    pub fn system() -> Clock {
        Clock::default()
    }

    /// A clock that reads `base` now and then moves exactly as tokio's clock does
    /// (so not at all while tokio's time is paused, and by the amount a test advances
    /// it). Must be made inside a tokio runtime.
    pub fn following_tokio(base: SystemTime) -> Clock {
        Clock {
            following: Some(Arc::new((base, tokio::time::Instant::now()))),
        }
    }

    /// The current wall-clock time.
    pub fn now(&self) -> SystemTime {
        match &self.following {
            None => SystemTime::now(),
            Some(at) => at.0 + at.1.elapsed(),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_following_clock_moves_only_with_tokio_time() {
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        let clock = Clock::following_tokio(base);
        assert_eq!(clock.now(), base);
        tokio::time::advance(Duration::from_secs(90)).await;
        assert_eq!(clock.now(), base + Duration::from_secs(90));
        tokio::time::sleep(Duration::from_secs(3600)).await;
        assert_eq!(clock.now(), base + Duration::from_secs(3690));
        assert!(Clock::system().now() > base);
    }
}

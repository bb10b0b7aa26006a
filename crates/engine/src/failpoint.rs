//! Fail points for fault tests: named places at every durable step (an L0 file
//! written, renamed, uploaded, the shipped position stored, a compaction or snapshot
//! uploaded, a retention delete) where the process can be made to die on purpose.
//!
//! `TIDELINE_FAILPOINT=NAME` aborts the process the first time [`hit`] is called with
//! `NAME`; `NAME:N` aborts on the N-th hit. Aborting (not panicking, not exiting)
//! is the point: no destructor, flush or shutdown path runs, exactly as after a
//! SIGKILL or a power cut at that instant. The variable is read once; with it unset a
//! hit costs one cached compare, so the calls stay in release builds.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The armed fail point: its name and which hit (1-based) aborts.
static ARMED: OnceLock<Option<(String, u64)>> = OnceLock::new();
/// Hits of the armed name so far.
static HITS: AtomicU64 = AtomicU64::new(0);

fn parse(spec: &str) -> Option<(String, u64)> {
    let spec = spec.trim();
    if spec.is_empty() {
        return None;
    }
    match spec.rsplit_once(':') {
        Some((name, n)) => match n.parse::<u64>() {
            Ok(n) if n > 0 => Some((name.to_owned(), n)),
            // Not a count: the whole value is the name, so a typo never arms "".
            _ => Some((spec.to_owned(), 1)),
        },
        None => Some((spec.to_owned(), 1)),
    }
}

/// Aborts the process here if `TIDELINE_FAILPOINT` names this point (and this is the
/// hit it asks for).
#[inline]
pub(crate) fn hit(name: &'static str) {
    let armed = ARMED.get_or_init(|| {
        std::env::var("TIDELINE_FAILPOINT")
            .ok()
            .and_then(|s| parse(&s))
    });
    if let Some((want, n)) = armed
        && want == name
        && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *n
    {
        // Says which point fired, so a test log shows the crash was the intended one.
        eprintln!("tideline: fail point {name} hit, aborting");
        std::process::abort();
    }
}

#[cfg(test)]
mod tests {
    use super::parse;

    #[test]
    fn specs() {
        assert_eq!(parse(""), None);
        assert_eq!(parse("l0-written"), Some(("l0-written".into(), 1)));
        assert_eq!(
            parse("upload-started:3"),
            Some(("upload-started".into(), 3))
        );
        assert_eq!(parse("odd:name"), Some(("odd:name".into(), 1)));
        assert_eq!(parse("x:0"), Some(("x:0".into(), 1)));
    }
}

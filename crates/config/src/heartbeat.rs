//! `heartbeat-url` and `heartbeat-interval`: a URL pinged (HTTP GET) while every
//! database replicates, as Litestream 0.5 does for dead-man's-switch monitors
//! (healthchecks.io, Cronitor, …), which raise the alarm when the pings stop.

use std::time::Duration;

use super::error::ConfigError;
use super::url;

/// Litestream's default time between pings.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5 * 60);
/// Litestream's least time between pings: a monitor needs no more, and a shorter one
/// is refused as a likely mistake.
pub const MIN_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(60);

/// Where and how often to ping while healthy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeartbeatConfig {
    /// The URL (http or https) requested with GET.
    pub url: String,
    /// The least time between pings; a ping also needs every database to have synced
    /// within it.
    pub interval: Duration,
}

/// The heartbeat from its two keys; `None` without a URL (an interval alone gets a
/// warning: it does nothing).
pub(crate) fn build(
    url_value: Option<String>,
    interval: Option<Duration>,
    warnings: &mut Vec<String>,
) -> Result<Option<HeartbeatConfig>, ConfigError> {
    let Some(url_value) = url_value else {
        if interval.is_some() {
            warnings.push(
                "heartbeat-interval: ignored without heartbeat-url (nothing is pinged)".to_owned(),
            );
        }
        return Ok(None);
    };
    if !is_http_url(&url_value) {
        return Err(ConfigError::invalid(
            "heartbeat-url",
            format!(
                "heartbeat URL must be a valid HTTP or HTTPS URL (got {})",
                url::redact(&url_value)
            ),
            "give the monitor's ping URL, e.g. https://hc-ping.com/<uuid>",
        ));
    }
    let interval = interval.unwrap_or(DEFAULT_HEARTBEAT_INTERVAL);
    if interval < MIN_HEARTBEAT_INTERVAL {
        return Err(ConfigError::invalid(
            "heartbeat-interval",
            format!(
                "heartbeat interval must be at least 1 minute (got {})",
                super::format_duration(interval)
            ),
            "set heartbeat-interval: 1m or more (the default is 5m)",
        ));
    }
    Ok(Some(HeartbeatConfig {
        url: url_value,
        interval,
    }))
}

/// `http://host…` or `https://host…`, as Litestream's check: the scheme and a host.
fn is_http_url(s: &str) -> bool {
    let Some((scheme, rest)) = s.split_once("://") else {
        return false;
    };
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let host = host.rsplit('@').next().unwrap_or("");
    (scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https"))
        && !host.is_empty()
        && !host.starts_with(':')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_as_litestream_accepts_them() {
        for ok in [
            "https://hc-ping.com/abc",
            "http://127.0.0.1:8080/ping",
            "HTTPS://user:pw@example.com",
        ] {
            assert!(is_http_url(ok), "{ok}");
        }
        for bad in [
            "hc-ping.com/abc",
            "ftp://x/y",
            "https://",
            "https:///x",
            "http://:80/",
        ] {
            assert!(!is_http_url(bad), "{bad}");
        }
    }

    #[test]
    fn defaults_minimum_and_a_lone_interval() {
        let mut w = Vec::new();
        let hb = build(Some("https://x.example/p".into()), None, &mut w)
            .unwrap()
            .unwrap();
        assert_eq!(hb.interval, DEFAULT_HEARTBEAT_INTERVAL);
        let err = build(
            Some("https://x.example/p".into()),
            Some(Duration::from_secs(30)),
            &mut w,
        )
        .unwrap_err();
        assert!(err.to_string().contains("at least 1 minute"), "{err}");
        assert!(
            build(None, Some(Duration::from_secs(60)), &mut w)
                .unwrap()
                .is_none()
        );
        assert_eq!(w.len(), 1);
        let err = build(Some("hc-ping.com/x".into()), None, &mut w).unwrap_err();
        assert!(err.to_string().contains("heartbeat-url"), "{err}");
    }
}

//! RFC 3339 timestamps, without a date-time dependency: parsing `-timestamp` values
//! and printing creation times, always in UTC.
//!
//! Parsing accepts what Go's `time.Parse(time.RFC3339, …)` accepts for Litestream's
//! `-timestamp`: `2026-01-02T15:04:05Z`, fractional seconds of any length
//! (`…05.123456789Z`, digits past nanoseconds are dropped) and numeric offsets
//! (`+02:00`, `-07:30`). Dates are checked (no February 30th), as are hours, minutes
//! and seconds (no leap second, as in Go).

use std::time::{Duration, SystemTime, UNIX_EPOCH};

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Parses an RFC 3339 timestamp.
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    let nanos = parse_nanos(s).map_err(|why| {
        format!(
            "invalid timestamp {s:?}: {why}; use RFC 3339, e.g. 2026-01-02T15:04:05Z or \
             2026-01-02T15:04:05.250+02:00"
        )
    })?;
    Ok(from_unix_nanos(nanos))
}

/// `YYYY-MM-DDTHH-MM-SS` in UTC, whole seconds, no colons: a time that is a valid
/// part of a file name on every OS (safety copies, restored copies).
pub fn file_timestamp(t: SystemTime) -> String {
    format_rfc3339(t.max(UNIX_EPOCH))[..19].replace(':', "-")
}

/// Formats a time as RFC 3339 in UTC, with fractional seconds only when there are any
/// (trailing zeros trimmed, like Go's `RFC3339Nano`): `2026-01-02T15:04:05.25Z`.
pub fn format_rfc3339(t: SystemTime) -> String {
    let nanos = unix_nanos(t);
    let secs = nanos.div_euclid(NANOS_PER_SEC);
    let frac = nanos.rem_euclid(NANOS_PER_SEC);
    let days = secs.div_euclid(86_400) as i64;
    let of_day = secs.rem_euclid(86_400) as i64;
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        of_day / 3600,
        of_day / 60 % 60,
        of_day % 60
    );
    if frac != 0 {
        let digits = format!("{frac:09}");
        out.push('.');
        out.push_str(digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Nanoseconds since the Unix epoch (negative before it).
fn unix_nanos(t: SystemTime) -> i128 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    }
}

fn from_unix_nanos(nanos: i128) -> SystemTime {
    let magnitude = Duration::new(
        (nanos.unsigned_abs() / NANOS_PER_SEC as u128) as u64,
        (nanos.unsigned_abs() % NANOS_PER_SEC as u128) as u32,
    );
    if nanos >= 0 {
        UNIX_EPOCH + magnitude
    } else {
        UNIX_EPOCH - magnitude
    }
}

fn parse_nanos(s: &str) -> Result<i128, String> {
    let b = s.as_bytes();
    let num = |range: std::ops::Range<usize>, what: &str| -> Result<i64, String> {
        let part = b
            .get(range)
            .filter(|p| p.iter().all(u8::is_ascii_digit))
            .ok_or_else(|| format!("expected the {what} as digits"))?;
        Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
    };
    let sep = |i: usize, want: &[u8], what: &str| -> Result<(), String> {
        match b.get(i) {
            Some(c) if want.contains(c) => Ok(()),
            _ => Err(format!("expected {what} at position {}", i + 1)),
        }
    };
    let year = num(0..4, "year (4 digits)")?;
    sep(4, b"-", "'-'")?;
    let month = num(5..7, "month (2 digits)")?;
    sep(7, b"-", "'-'")?;
    let day = num(8..10, "day (2 digits)")?;
    sep(10, b"Tt", "'T' between date and time")?;
    let hour = num(11..13, "hour (2 digits)")?;
    sep(13, b":", "':'")?;
    let minute = num(14..16, "minute (2 digits)")?;
    sep(16, b":", "':'")?;
    let second = num(17..19, "second (2 digits)")?;

    let mut i = 19;
    let mut frac_nanos = 0i128;
    if b.get(i) == Some(&b'.') {
        i += 1;
        let start = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == start {
            return Err("expected digits after the decimal point".into());
        }
        // Nanosecond resolution: pad or cut the digits to nine.
        let digits = &s[start..i.min(start + 9)];
        frac_nanos = format!("{digits:0<9}")
            .parse::<i128>()
            .map_err(|e| e.to_string())?;
    }
    let offset_secs = match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => 0,
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() => {
            let h = num(i + 1..i + 3, "offset hours")?;
            sep(i + 3, b":", "':' in the offset")?;
            let m = num(i + 4..i + 6, "offset minutes")?;
            if h > 23 || m > 59 {
                return Err(format!("offset {} is out of range", &s[i..]));
            }
            let secs = h * 3600 + m * 60;
            if *sign == b'-' { -secs } else { secs }
        }
        None => return Err("missing time zone: end with Z (UTC) or an offset like +02:00".into()),
        _ => {
            return Err(format!(
                "unexpected {:?} after the time; end with Z (UTC) or an offset like +02:00",
                &s[i..]
            ));
        }
    };

    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range"));
    }
    if day < 1 || day > days_in_month(year, month) {
        return Err(format!("day {day} does not exist in {year:04}-{month:02}"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "time {hour:02}:{minute:02}:{second:02} is out of range"
        ));
    }
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_secs;
    Ok(i128::from(secs) * NANOS_PER_SEC + frac_nanos)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day number from [`days_from_civil`].
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (
        if m <= 2 {
            yoe + era * 400 + 1
        } else {
            yoe + era * 400
        },
        m,
        d,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: &str) -> i128 {
        unix_nanos(parse_rfc3339(s).unwrap())
    }

    #[test]
    fn parses_utc_offsets_and_fractions() {
        assert_eq!(secs("1970-01-01T00:00:00Z"), 0);
        assert_eq!(secs("2000-01-01T00:00:00Z"), 946_684_800 * NANOS_PER_SEC);
        assert_eq!(
            secs("2026-11-24T11:02:36.77Z"),
            1_795_518_156 * NANOS_PER_SEC + 770_000_000
        );
        assert_eq!(
            secs("2026-11-24T13:02:36.77+02:00"),
            secs("2026-11-24T11:02:36.77Z")
        );
        assert_eq!(
            secs("2026-11-24T03:32:36-07:30"),
            secs("2026-11-24T11:02:36Z")
        );
        assert_eq!(secs("2026-11-24t11:02:36z"), secs("2026-11-24T11:02:36Z"));
        assert_eq!(secs("1970-01-01T00:00:00.123456789123Z"), 123_456_789);
        assert_eq!(secs("1969-12-31T23:59:59.5Z"), -NANOS_PER_SEC / 2);
        assert_eq!(secs("2024-02-29T00:00:00Z"), 1_709_164_800 * NANOS_PER_SEC);
    }

    #[test]
    fn rejects_malformed_and_impossible_times() {
        for bad in [
            "",
            "2026-01-02",
            "2026-01-02T15:04:05",
            "2026-01-02 15:04:05Z",
            "2026-1-02T15:04:05Z",
            "2026-01-02T15:04:05.Z",
            "2026-01-02T15:04:05+0200",
            "2026-01-02T15:04:05+02:00x",
            "2026-01-02T15:04:05ZZ",
            "2026-13-02T15:04:05Z",
            "2026-02-29T15:04:05Z",
            "2026-04-31T15:04:05Z",
            "2026-01-02T24:00:00Z",
            "2026-01-02T15:60:00Z",
            "2026-01-02T15:04:60Z",
            "2026-01-02T15:04:05+24:00",
            "0000000000000003",
        ] {
            let err = parse_rfc3339(bad).expect_err(bad);
            assert!(err.contains("RFC 3339"), "{err}");
        }
    }

    #[test]
    fn formats_utc_with_trimmed_fractions() {
        let at = |nanos: i128| format_rfc3339(from_unix_nanos(nanos));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            at(1_795_518_156 * NANOS_PER_SEC + 770_000_000),
            "2026-11-24T11:02:36.77Z"
        );
        assert_eq!(
            at(1_709_164_800 * NANOS_PER_SEC + 1),
            "2024-02-29T00:00:00.000000001Z"
        );
        assert_eq!(at(-NANOS_PER_SEC / 2), "1969-12-31T23:59:59.5Z");
    }

    #[test]
    fn format_and_parse_round_trip() {
        let mut n: i128 = -5_000_000_000 * NANOS_PER_SEC;
        while n < 5_000_000_000 * NANOS_PER_SEC {
            let text = format_rfc3339(from_unix_nanos(n));
            assert_eq!(unix_nanos(parse_rfc3339(&text).unwrap()), n, "{text}");
            n += 7_777_777 * NANOS_PER_SEC + 123_456_789;
        }
    }
}

//! RFC 3339 timestamps: parsing `-timestamp` values and printing creation times, always
//! in UTC. The calendar (dates, leap years, offsets, printing) is `jiff`'s
//! [`Timestamp`]; the accepted syntax is Go's, checked here.
//!
//! Parsing accepts what Go's `time.Parse(time.RFC3339, …)` accepts for Litestream's
//! `-timestamp`: `2026-01-02T15:04:05Z`, fractional seconds of any length
//! (`…05.123456789Z`, digits past nanoseconds are dropped) and numeric offsets
//! (`+02:00`, `-07:30`). Dates are checked (no February 30th), as are hours, minutes
//! and seconds (no leap second, as in Go).
//!
//! The layout check stays our own code because jiff's RFC 3339 / ISO 8601 parser is
//! more lenient than Go: it also takes a space for `T`, `+0200` and `+02` offsets and
//! `,` for the decimal point, and reads second 60 as 59, all of which Go rejects; and it
//! refuses more than nine fractional digits, which Go truncates. So the text is split
//! by Go's layout here and the numbers are handed to jiff. One difference from the
//! former hand-written calendar: times after jiff's `Timestamp::MAX`
//! (9999-12-30T22:00:00.999999999Z) are rejected, and [`format_rfc3339`] clamps to
//! jiff's range.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use jiff::Timestamp;
use jiff::civil::{Date, Time};
use jiff::tz::Offset;

const NANOS_PER_SEC: i128 = 1_000_000_000;

/// Parses an RFC 3339 timestamp.
pub fn parse_rfc3339(s: &str) -> Result<SystemTime, String> {
    let at = parse_timestamp(s).map_err(|why| {
        format!(
            "invalid timestamp {s:?}: {why}; use RFC 3339, e.g. 2026-01-02T15:04:05Z or \
             2026-01-02T15:04:05.250+02:00"
        )
    })?;
    Ok(from_unix_nanos(at.as_nanosecond()))
}

/// `YYYY-MM-DDTHH-MM-SS` in UTC, whole seconds, no colons: a time that is a valid
/// part of a file name on every OS (safety copies, restored copies).
pub(crate) fn file_timestamp(t: SystemTime) -> String {
    format_rfc3339(t.max(UNIX_EPOCH))[..19].replace(':', "-")
}

/// Formats a time as RFC 3339 in UTC, with fractional seconds only when there are any
/// (trailing zeros trimmed, like Go's `RFC3339Nano`): `2026-01-02T15:04:05.25Z`.
/// That is jiff's default printing of a [`Timestamp`].
pub fn format_rfc3339(t: SystemTime) -> String {
    let nanos = unix_nanos(t);
    let at = Timestamp::from_nanosecond(nanos).unwrap_or(if nanos < 0 {
        Timestamp::MIN
    } else {
        Timestamp::MAX
    });
    at.to_string()
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

/// The numbers of an RFC 3339 timestamp, as Go's layout splits them.
struct Fields {
    year: i64,
    month: i64,
    day: i64,
    hour: i64,
    minute: i64,
    second: i64,
    /// Fractional seconds, cut to nanoseconds.
    nanos: i64,
    /// East of UTC.
    offset_secs: i64,
}

/// Parses by Go's layout, then checks the date and time and converts with jiff.
fn parse_timestamp(s: &str) -> Result<Timestamp, String> {
    let f = Fields::parse(s)?;
    let Fields {
        year,
        month,
        day,
        hour,
        minute,
        second,
        ..
    } = f;
    if !(1..=12).contains(&month) {
        return Err(format!("month {month} is out of range"));
    }
    // Four digits and a checked month: the casts cannot truncate.
    let date = Date::new(year as i16, month as i8, day as i8)
        .map_err(|_| format!("day {day} does not exist in {year:04}-{month:02}"))?;
    let time = Time::new(hour as i8, minute as i8, second as i8, f.nanos as i32)
        .map_err(|_| format!("time {hour:02}:{minute:02}:{second:02} is out of range"))?;
    let offset = Offset::from_seconds(f.offset_secs as i32).map_err(|e| e.to_string())?;
    offset.to_timestamp(date.to_datetime(time)).map_err(|_| {
        format!(
            "{} is past the latest supported time, 9999-12-30T22:00:00Z",
            &s[..19]
        )
    })
}

impl Fields {
    fn parse(s: &str) -> Result<Fields, String> {
        let b = s.as_bytes();
        let year = digits(b, 0..4, "year (4 digits)")?;
        sep(b, 4, b"-", "'-'")?;
        let month = digits(b, 5..7, "month (2 digits)")?;
        sep(b, 7, b"-", "'-'")?;
        let day = digits(b, 8..10, "day (2 digits)")?;
        sep(b, 10, b"Tt", "'T' between date and time")?;
        let hour = digits(b, 11..13, "hour (2 digits)")?;
        sep(b, 13, b":", "':'")?;
        let minute = digits(b, 14..16, "minute (2 digits)")?;
        sep(b, 16, b":", "':'")?;
        let second = digits(b, 17..19, "second (2 digits)")?;
        let (nanos, end) = fraction(s, 19)?;
        let offset_secs = offset(s, end)?;
        Ok(Fields {
            year,
            month,
            day,
            hour,
            minute,
            second,
            nanos,
            offset_secs,
        })
    }
}

/// The number at `range` of `b`, which must be all ASCII digits.
fn digits(b: &[u8], range: std::ops::Range<usize>, what: &str) -> Result<i64, String> {
    let part = b
        .get(range)
        .filter(|p| p.iter().all(u8::is_ascii_digit))
        .ok_or_else(|| format!("expected the {what} as digits"))?;
    Ok(part.iter().fold(0i64, |n, d| n * 10 + i64::from(d - b'0')))
}

/// Checks that byte `i` of `b` is one of `want`.
fn sep(b: &[u8], i: usize, want: &[u8], what: &str) -> Result<(), String> {
    match b.get(i) {
        Some(c) if want.contains(c) => Ok(()),
        _ => Err(format!("expected {what} at position {}", i + 1)),
    }
}

/// Optional fractional seconds at `i` (`.` and at least one digit, any number of them
/// as in Go; nanosecond resolution, later digits dropped): the nanoseconds and where
/// the text after them starts.
fn fraction(s: &str, mut i: usize) -> Result<(i64, usize), String> {
    let b = s.as_bytes();
    if b.get(i) != Some(&b'.') {
        return Ok((0, i));
    }
    i += 1;
    let start = i;
    while b.get(i).is_some_and(u8::is_ascii_digit) {
        i += 1;
    }
    if i == start {
        return Err("expected digits after the decimal point".into());
    }
    let digits = &s[start..i.min(start + 9)];
    let nanos = format!("{digits:0<9}")
        .parse::<i64>()
        .map_err(|e| e.to_string())?;
    Ok((nanos, i))
}

/// The time zone at `i`, which must end the text: `Z`/`z` or `±HH:MM`; seconds east of
/// UTC.
fn offset(s: &str, i: usize) -> Result<i64, String> {
    let b = s.as_bytes();
    match b.get(i) {
        Some(b'Z' | b'z') if i + 1 == b.len() => Ok(0),
        Some(sign @ (b'+' | b'-')) if i + 6 == b.len() => {
            let h = digits(b, i + 1..i + 3, "offset hours")?;
            sep(b, i + 3, b":", "':' in the offset")?;
            let m = digits(b, i + 4..i + 6, "offset minutes")?;
            if h > 23 || m > 59 {
                return Err(format!("offset {} is out of range", &s[i..]));
            }
            let secs = h * 3600 + m * 60;
            Ok(if *sign == b'-' { -secs } else { secs })
        }
        None => Err("missing time zone: end with Z (UTC) or an offset like +02:00".into()),
        _ => Err(format!(
            "unexpected {:?} after the time; end with Z (UTC) or an offset like +02:00",
            &s[i..]
        )),
    }
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

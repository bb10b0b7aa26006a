//! Go's duration syntax (`time.ParseDuration` and `Duration.String`), and byte sizes as
//! Litestream reads them (go-humanize's `ParseBytes`), with the serde glue the config
//! structs use.

use std::fmt;
use std::time::Duration;

use serde::de::{self, Deserializer, Visitor};

const NANOS_PER_MICRO: u128 = 1_000;
const NANOS_PER_MILLI: u128 = 1_000_000;
const NANOS_PER_SEC: u128 = 1_000_000_000;
const NANOS_PER_MIN: u128 = 60 * NANOS_PER_SEC;
const NANOS_PER_HOUR: u128 = 60 * NANOS_PER_MIN;
/// Go durations are i64 nanoseconds: about 292 years.
const MAX_NANOS: u128 = i64::MAX as u128;

/// How to write a duration, appended to every duration error.
const DURATION_FIX: &str = "write a Go duration such as \"1s\", \"500ms\", \"1m30s\" or \"24h\" (units: ns, us, ms, s, m, h)";

/// A value that is not a Go duration, or is negative.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid duration {input:?}: {reason}; {DURATION_FIX}")]
pub struct ParseDurationError {
    input: String,
    reason: String,
}

impl ParseDurationError {
    fn new(input: &str, reason: impl Into<String>) -> Self {
        ParseDurationError {
            input: input.to_owned(),
            reason: reason.into(),
        }
    }
}

/// Parses a Go duration exactly as Go's `time.ParseDuration` does: an optional sign,
/// then one or more decimal numbers (fractions allowed) each followed by a unit
/// (`ns`, `us`/`µs`, `ms`, `s`, `m`, `h`), e.g. `"1s"`, `"1.5h"`, `"1m30s"`; `"0"` alone
/// needs no unit. Negative values are rejected (no config duration may be negative).
pub fn parse_duration(input: &str) -> Result<Duration, ParseDurationError> {
    let err = |reason: &str| ParseDurationError::new(input, reason);
    let mut s = input;
    let mut negative = false;
    if let Some(rest) = s.strip_prefix('-') {
        negative = true;
        s = rest;
    } else if let Some(rest) = s.strip_prefix('+') {
        s = rest;
    }
    if s == "0" {
        return Ok(Duration::ZERO);
    }
    if s.is_empty() {
        return Err(err("no value"));
    }
    let mut total: u128 = 0;
    while !s.is_empty() {
        let first = s.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(err("expected a number"));
        }
        let int_len = s.bytes().take_while(u8::is_ascii_digit).count();
        let (int_digits, rest) = s.split_at(int_len);
        s = rest;
        let mut frac_digits = "";
        if let Some(rest) = s.strip_prefix('.') {
            let n = rest.bytes().take_while(u8::is_ascii_digit).count();
            frac_digits = &rest[..n];
            s = &rest[n..];
        }
        if int_digits.is_empty() && frac_digits.is_empty() {
            return Err(err("expected a number"));
        }
        let unit_len = s
            .char_indices()
            .find(|&(_, c)| c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(err("missing unit"));
        }
        let (unit_name, rest) = s.split_at(unit_len);
        s = rest;
        let unit = match unit_name {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => NANOS_PER_MICRO,
            "ms" => NANOS_PER_MILLI,
            "s" => NANOS_PER_SEC,
            "m" => NANOS_PER_MIN,
            "h" => NANOS_PER_HOUR,
            other => return Err(err(&format!("unknown unit {other:?}"))),
        };
        // More than 20 integer digits overflows whatever the unit.
        if int_digits.len() > 20 {
            return Err(err("out of range (more than 292 years)"));
        }
        let whole: u128 = if int_digits.is_empty() {
            0
        } else {
            int_digits.parse().map_err(|_| err("expected a number"))?
        };
        let mut amount = whole * unit;
        if !frac_digits.is_empty() {
            // Digits past nanosecond precision of the largest unit cannot matter.
            let digits = &frac_digits[..frac_digits.len().min(20)];
            let frac: u128 = digits.parse().map_err(|_| err("expected a number"))?;
            amount += frac * unit / 10u128.pow(digits.len() as u32);
        }
        total += amount;
        if total > MAX_NANOS {
            return Err(err("out of range (more than 292 years)"));
        }
    }
    if negative && total > 0 {
        return Err(err("negative durations are not allowed"));
    }
    Ok(Duration::from_nanos(total as u64))
}

/// Formats a duration as Go's `Duration.String` does: `"0s"`, `"500ms"`, `"1.5s"`,
/// `"1m30s"`, `"24h0m0s"`.
pub fn format_duration(d: Duration) -> String {
    let ns = d.as_nanos();
    if ns == 0 {
        return "0s".to_owned();
    }
    if ns < NANOS_PER_SEC {
        return if ns < NANOS_PER_MICRO {
            format!("{ns}ns")
        } else if ns < NANOS_PER_MILLI {
            format!("{}\u{b5}s", fixed(ns, 3))
        } else {
            format!("{}ms", fixed(ns, 6))
        };
    }
    let hours = ns / NANOS_PER_HOUR;
    let minutes = ns % NANOS_PER_HOUR / NANOS_PER_MIN;
    let secs = ns % NANOS_PER_MIN;
    let mut out = String::new();
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&fixed(secs, 9));
    out.push('s');
    out
}

/// `value / 10^digits` with the fraction's trailing zeros trimmed.
fn fixed(value: u128, digits: u32) -> String {
    let scale = 10u128.pow(digits);
    let (whole, frac) = (value / scale, value % scale);
    if frac == 0 {
        return whole.to_string();
    }
    let frac = format!("{frac:0width$}", width = digits as usize);
    format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// Parses a byte size as Litestream does (go-humanize `ParseBytes`): a number, then an
/// optional unit — none or `B` for bytes, `K`/`KB` = 1000, `KiB` = 1024, and so on up to
/// `E`/`EB`/`EiB`; case-insensitive, spaces allowed, fractions allowed (`"1.5MB"`).
pub(crate) fn parse_byte_size(input: &str) -> Result<u64, String> {
    const FIX: &str = "write a number of bytes or a size such as \"5MiB\" or \"10MB\"";
    let s = input.trim();
    let num_len = s
        .bytes()
        .take_while(|b| b.is_ascii_digit() || *b == b'.' || *b == b',')
        .count();
    let number: String = s[..num_len].chars().filter(|&c| c != ',').collect();
    let value: f64 = number
        .parse()
        .map_err(|_| format!("invalid size {input:?}: expected a number; {FIX}"))?;
    let unit = s[num_len..].trim().to_ascii_lowercase();
    let multiplier: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "ki" | "kib" => 1 << 10,
        "m" | "mb" => 1000u64.pow(2),
        "mi" | "mib" => 1 << 20,
        "g" | "gb" => 1000u64.pow(3),
        "gi" | "gib" => 1 << 30,
        "t" | "tb" => 1000u64.pow(4),
        "ti" | "tib" => 1 << 40,
        "p" | "pb" => 1000u64.pow(5),
        "pi" | "pib" => 1 << 50,
        "e" | "eb" => 1000u64.pow(6),
        "ei" | "eib" => 1 << 60,
        other => {
            return Err(format!(
                "invalid size {input:?}: unknown unit {other:?}; {FIX}"
            ));
        }
    };
    let bytes = value * multiplier as f64;
    if bytes >= i64::MAX as f64 {
        return Err(format!("invalid size {input:?}: too large; {FIX}"));
    }
    Ok(bytes as u64)
}

/// Deserializes a Go duration string (`"1s"`, `"24h"`, `"0"`) into a [`Duration`], for
/// `#[serde(deserialize_with = "…")]`. A bare integer 0 is accepted; any other bare
/// number is rejected, because Litestream would silently read it as nanoseconds.
pub fn deserialize_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    d.deserialize_any(DurationVisitor { positive: false })
}

/// Checks happen in the visitor, so that serde_yaml_ng places errors at the value.
struct DurationVisitor {
    /// Whether 0 is refused.
    positive: bool,
}

impl DurationVisitor {
    fn check<E: de::Error>(&self, d: Duration) -> Result<Duration, E> {
        if self.positive && d.is_zero() {
            return Err(E::custom(
                "must be greater than 0; remove the key to use the default, or set a \
                 positive duration such as \"1s\"",
            ));
        }
        Ok(d)
    }
}

impl<'de> Visitor<'de> for DurationVisitor {
    type Value = Duration;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a Go duration such as \"1s\" or \"24h\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Duration, E> {
        let d = parse_duration(v).map_err(E::custom)?;
        self.check(d)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Duration, E> {
        if v == 0 {
            return self.check(Duration::ZERO);
        }
        Err(E::custom(format!(
            "{v} has no unit; write \"{v}s\" for seconds, \"{v}ms\" for milliseconds, … \
             (Litestream would read a bare {v} as nanoseconds)"
        )))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Duration, E> {
        if v < 0 {
            return Err(E::custom(format!(
                "{v} is negative; durations must be 0 or more, e.g. \"1s\""
            )));
        }
        self.visit_u64(v as u64)
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Duration, E> {
        Err(E::custom(format!(
            "{v} has no unit; write a Go duration such as \"{v}s\""
        )))
    }
}

/// A duration key that may be 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct AnyDuration(pub Duration);

impl<'de> serde::Deserialize<'de> for AnyDuration {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        deserialize_duration(d).map(AnyDuration)
    }
}

/// A duration key that must be greater than 0 (intervals).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interval(pub Duration);

impl<'de> serde::Deserialize<'de> for Interval {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(DurationVisitor { positive: true })
            .map(Interval)
    }
}

/// A byte count: an integer, or a string with a unit (`"5MiB"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteSize(pub u64);

impl<'de> serde::Deserialize<'de> for ByteSize {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(ByteSizeVisitor)
    }
}

struct ByteSizeVisitor;

impl<'de> Visitor<'de> for ByteSizeVisitor {
    type Value = ByteSize;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "a number of bytes or a size such as \"5MiB\"")
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<ByteSize, E> {
        parse_byte_size(v).map(ByteSize).map_err(E::custom)
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<ByteSize, E> {
        Ok(ByteSize(v))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<ByteSize, E> {
        u64::try_from(v).map(ByteSize).map_err(|_| {
            E::custom(format!(
                "{v} is negative; write a number of bytes or a size such as \"5MiB\""
            ))
        })
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<ByteSize, E> {
        Err(E::custom(format!(
            "{v} is not a whole number of bytes; write an integer or a size such as \"5MiB\""
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> Duration {
        parse_duration(s).unwrap_or_else(|e| panic!("{s}: {e}"))
    }

    #[test]
    fn go_durations() {
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("+0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("1s"), Duration::from_secs(1));
        assert_eq!(ok("+1s"), Duration::from_secs(1));
        assert_eq!(ok("500ms"), Duration::from_millis(500));
        assert_eq!(ok("1m30s"), Duration::from_secs(90));
        assert_eq!(ok("24h"), Duration::from_secs(86_400));
        assert_eq!(ok("1.5h"), Duration::from_secs(5_400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("10ns"), Duration::from_nanos(10));
        assert_eq!(ok("7us"), Duration::from_micros(7));
        assert_eq!(ok("7µs"), Duration::from_micros(7));
        assert_eq!(ok("7μs"), Duration::from_micros(7));
        assert_eq!(ok("1h2m3s4ms5us6ns"), Duration::new(3723, 4_005_006));
        assert_eq!(ok("0.000000001s"), Duration::from_nanos(1));
        assert_eq!(ok("1.0000000019s"), Duration::from_nanos(1_000_000_001));
        assert_eq!(ok("2562047h"), Duration::from_secs(2_562_047 * 3600));
    }

    #[test]
    fn bad_durations() {
        for (input, reason) in [
            ("", "no value"),
            ("-", "no value"),
            ("5", "missing unit"),
            ("1m5", "missing unit"),
            ("5x", "unknown unit \"x\""),
            ("5 s", "unknown unit \" s\""),
            ("1d", "unknown unit \"d\""),
            ("s", "expected a number"),
            (".s", "expected a number"),
            ("1s ", "unknown unit \"s \""),
            ("-1s", "negative durations are not allowed"),
            ("3000000h", "out of range"),
            ("99999999999999999999999h", "out of range"),
        ] {
            let e = parse_duration(input).unwrap_err().to_string();
            assert!(e.contains(reason), "{input:?}: {e}");
            assert!(e.contains(&format!("{input:?}")), "{e}");
            assert!(e.contains("such as \"1s\""), "{e}");
        }
    }

    #[test]
    fn go_formatting() {
        for (d, s) in [
            (Duration::ZERO, "0s"),
            (Duration::from_nanos(5), "5ns"),
            (Duration::from_nanos(1_500), "1.5µs"),
            (Duration::from_millis(500), "500ms"),
            (Duration::from_micros(1_250), "1.25ms"),
            (Duration::from_secs(1), "1s"),
            (Duration::from_millis(1_500), "1.5s"),
            (Duration::from_secs(90), "1m30s"),
            (Duration::from_secs(300), "5m0s"),
            (Duration::from_secs(3_600), "1h0m0s"),
            (Duration::from_secs(86_400), "24h0m0s"),
        ] {
            assert_eq!(format_duration(d), s);
            assert_eq!(parse_duration(s).unwrap(), d, "{s}");
        }
    }

    #[test]
    fn byte_sizes() {
        for (s, n) in [
            ("0", 0),
            ("5242880", 5 << 20),
            ("5MiB", 5 << 20),
            ("5mib", 5 << 20),
            ("5 MiB", 5 << 20),
            ("5Mi", 5 << 20),
            ("5MB", 5_000_000),
            ("5M", 5_000_000),
            ("1.5GB", 1_500_000_000),
            ("64KiB", 64 << 10),
            ("10B", 10),
            ("1,000", 1000),
        ] {
            assert_eq!(parse_byte_size(s), Ok(n), "{s}");
        }
        for s in ["", "MB", "5XB", "-5MB", "5 M B", "99999EB"] {
            let e = parse_byte_size(s).unwrap_err();
            assert!(e.contains("5MiB"), "{s}: {e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn format_then_parse_round_trips(ns in 0u64..=i64::MAX as u64) {
            let d = Duration::from_nanos(ns);
            proptest::prop_assert_eq!(parse_duration(&format_duration(d)).unwrap(), d);
        }
    }
}

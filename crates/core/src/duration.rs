//! Durations as kubectl and etcdctl read and print them: Go's `time.ParseDuration` and
//! `time.Duration.String`.
//!
//! One parser serves every duration flag (drain's `--timeout`, etcd's `--dial-timeout`, ...), so
//! what an operator types for kubectl or etcdctl works here too: `90s`, `1.5m`, `1h30m`,
//! `500ms`, `300us`/`300µs`, a bare `0`. Durations are printed back in Go's form (`1m30s`,
//! `1h0m0s`, `1.5s`, `500ms`), the form kubectl's own messages use.
//!
//! The grammar, the rounding of fractions (through `f64`, as Go does) and the overflow limit
//! (`i64::MAX` nanoseconds) follow Go 1.19's `time/format.go`; the tests compare with its table
//! and, in `tests/duration_go.rs`, with the real Go toolchain.

use std::fmt;
use std::time::Duration;

const NANOS_PER_SECOND: u64 = 1_000_000_000;
/// 1<<63: the magnitude of `i64::MIN` nanoseconds, the largest Go's parser accumulates.
const LIMIT: u64 = 1 << 63;

/// Why a duration was refused. Each message names the input and shows what would work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DurationError {
    /// Not Go duration syntax (empty, no digits, a stray character).
    #[error("invalid duration {input:?}: use a number and a unit, e.g. 90s, 1m30s, 1.5h or 500ms")]
    Invalid {
        /// What was given.
        input: String,
    },
    /// A number without a unit (only a bare `0` may go without one).
    #[error("missing unit in duration {input:?}: add one of ns, us, ms, s, m, h (e.g. {input}s)")]
    MissingUnit {
        /// What was given.
        input: String,
    },
    /// A unit Go does not know (`d`, `sec`, ...).
    #[error(
        "unknown unit {unit:?} in duration {input:?}: the units are ns, us (or µs), ms, s, m and h (a day is 24h)"
    )]
    UnknownUnit {
        /// The unit as written.
        unit: String,
        /// What was given.
        input: String,
    },
    /// More than Go's largest duration, about 292 years.
    #[error("duration {input:?} is too large: the largest is 2562047h47m16.854775807s")]
    TooLarge {
        /// What was given.
        input: String,
    },
    /// A negative duration where only zero or more makes sense.
    #[error("duration {input:?} is negative: give 0 or more, e.g. 0s, 90s or 5m")]
    Negative {
        /// What was given.
        input: String,
    },
}

/// Parses a duration flag as kubectl and etcdctl do, refusing negative values (`-0s` is zero).
///
/// ```
/// use std::time::Duration;
/// use kubemaint_core::duration::parse;
/// assert_eq!(parse("1.5m"), Ok(Duration::from_secs(90)));
/// assert_eq!(parse("1h30m"), Ok(Duration::from_secs(5400)));
/// assert_eq!(parse("0"), Ok(Duration::ZERO));
/// assert!(parse("-5s").is_err());
/// ```
pub fn parse(input: &str) -> Result<Duration, DurationError> {
    let nanos = parse_signed(input)?;
    if nanos < 0 {
        return Err(DurationError::Negative {
            input: input.to_string(),
        });
    }
    Ok(Duration::from_nanos(nanos.unsigned_abs()))
}

/// Go's `time.ParseDuration`, exactly: signed nanoseconds, `[-+]?([0-9]*(\.[0-9]*)?[a-z]+)+`
/// or a bare `0`.
pub fn parse_signed(input: &str) -> Result<i64, DurationError> {
    let invalid = || DurationError::Invalid {
        input: input.to_string(),
    };
    let too_large = || DurationError::TooLarge {
        input: input.to_string(),
    };
    let (negative, mut rest) = match input.as_bytes().first() {
        Some(b'-') => (true, &input[1..]),
        Some(b'+') => (false, &input[1..]),
        _ => (false, input),
    };
    if rest == "0" {
        return Ok(0);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !rest.is_empty() {
        let first = rest.as_bytes()[0];
        if !(first == b'.' || first.is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, after_whole) = leading_int(rest).ok_or_else(too_large)?;
        let had_whole = after_whole.len() != rest.len();
        rest = after_whole;
        let (mut fraction, mut scale, mut had_fraction) = (0u64, 1f64, false);
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (f, s, after_fraction) = leading_fraction(after_dot);
            (fraction, scale) = (f, s);
            had_fraction = after_fraction.len() != after_dot.len();
            rest = after_fraction;
        }
        if !had_whole && !had_fraction {
            return Err(invalid());
        }
        // Digits and '.' are ASCII, so this byte index is a char boundary.
        let unit_len = rest
            .bytes()
            .position(|c| c == b'.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(DurationError::MissingUnit {
                input: input.to_string(),
            });
        }
        let (unit_text, after_unit) = rest.split_at(unit_len);
        rest = after_unit;
        let unit = unit_nanos(unit_text).ok_or_else(|| DurationError::UnknownUnit {
            unit: unit_text.to_string(),
            input: input.to_string(),
        })?;
        if whole > LIMIT / unit {
            return Err(too_large());
        }
        let mut value = whole * unit;
        if fraction > 0 {
            // Through f64 as Go does (exact to the nanosecond for fractions of an hour).
            value += (fraction as f64 * (unit as f64 / scale)) as u64;
            if value > LIMIT {
                return Err(too_large());
            }
        }
        total += value;
        if total > LIMIT {
            return Err(too_large());
        }
    }
    if negative {
        // total <= 1<<63, so its negation fits (1<<63 is i64::MIN).
        return Ok(0i64.wrapping_sub_unsigned(total));
    }
    i64::try_from(total).map_err(|_| too_large())
}

fn unit_nanos(unit: &str) -> Option<u64> {
    Some(match unit {
        "ns" => 1,
        // "u" is Go's ASCII stand-in; U+00B5 is the micro sign, U+03BC the Greek mu.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => NANOS_PER_SECOND,
        "m" => 60 * NANOS_PER_SECOND,
        "h" => 3_600 * NANOS_PER_SECOND,
        _ => return None,
    })
}

/// The leading digits as an integer; `None` on overflow past 1<<63 (as Go's `leadingInt`).
fn leading_int(s: &str) -> Option<(u64, &str)> {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut x: u64 = 0;
    for c in s[..len].bytes() {
        if x > LIMIT / 10 {
            return None;
        }
        x = x * 10 + u64::from(c - b'0');
        if x > LIMIT {
            return None;
        }
    }
    Some((x, &s[len..]))
}

/// The leading digits of a fraction and their scale; stops gaining precision instead of
/// overflowing (as Go's `leadingFraction`).
fn leading_fraction(s: &str) -> (u64, f64, &str) {
    let len = s.bytes().take_while(u8::is_ascii_digit).count();
    let (mut x, mut scale, mut overflow) = (0u64, 1f64, false);
    for c in s[..len].bytes() {
        if overflow {
            continue;
        }
        if x > (LIMIT - 1) / 10 {
            overflow = true;
            continue;
        }
        let y = x * 10 + u64::from(c - b'0');
        if y > LIMIT {
            overflow = true;
            continue;
        }
        x = y;
        scale *= 10.0;
    }
    (x, scale, &s[len..])
}

/// Prints a duration as Go's `time.Duration.String` does: `0s`, `500ms`, `1.5s`, `1m30s`,
/// `1h0m0s`, `300µs`.
///
/// ```
/// use std::time::Duration;
/// use kubemaint_core::duration::format;
/// assert_eq!(format(Duration::from_secs(90)), "1m30s");
/// assert_eq!(format(Duration::from_millis(1500)), "1.5s");
/// assert_eq!(format(Duration::from_secs(3600)), "1h0m0s");
/// ```
pub fn format(d: Duration) -> String {
    Go(d).to_string()
}

/// Go's `time.Duration.String` for signed nanoseconds (`-1m30s`).
pub fn format_signed(nanos: i64) -> String {
    let magnitude = Go(Duration::from_nanos(nanos.unsigned_abs()));
    if nanos < 0 {
        format!("-{magnitude}")
    } else {
        magnitude.to_string()
    }
}

/// Shows a [`Duration`] in Go's form when formatted with `{}` (see [`format`]); handy in
/// messages without building a `String` first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Go(pub Duration);

impl fmt::Display for Go {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let nanos = self.0.as_nanos();
        if nanos == 0 {
            return f.write_str("0s");
        }
        if nanos < u128::from(NANOS_PER_SECOND) {
            // Below a second: the largest unit that keeps a whole part (1.2ms, 300µs, 7ns).
            let (unit_nanos, unit) = match nanos {
                n if n < 1_000 => (1, "ns"),
                n if n < 1_000_000 => (1_000, "\u{b5}s"),
                _ => (1_000_000, "ms"),
            };
            write_fraction(f, nanos / unit_nanos, nanos % unit_nanos, unit_nanos)?;
            return f.write_str(unit);
        }
        let secs = nanos / u128::from(NANOS_PER_SECOND);
        let sub = nanos % u128::from(NANOS_PER_SECOND);
        let (hours, minutes, seconds) = (secs / 3600, secs / 60 % 60, secs % 60);
        // Hours, then minutes, are printed once anything larger is: 1h0m0s, 2m0s; never days.
        if hours > 0 {
            write!(f, "{hours}h")?;
        }
        if hours > 0 || minutes > 0 {
            write!(f, "{minutes}m")?;
        }
        write_fraction(f, seconds, sub, u128::from(NANOS_PER_SECOND))?;
        f.write_str("s")
    }
}

/// `whole[.fraction]` with the fraction's trailing zeros (and a bare point) left out.
fn write_fraction(
    f: &mut fmt::Formatter<'_>,
    whole: u128,
    fraction: u128,
    denominator: u128,
) -> fmt::Result {
    write!(f, "{whole}")?;
    if fraction == 0 {
        return Ok(());
    }
    let width = denominator.ilog10() as usize;
    let digits = format!("{fraction:0width$}");
    write!(f, ".{}", digits.trim_end_matches('0'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const NS: i64 = 1;
    const US: i64 = 1_000;
    const MS: i64 = 1_000_000;
    const S: i64 = 1_000_000_000;
    const M: i64 = 60 * S;
    const H: i64 = 60 * M;

    /// Go 1.19 `time_test.go` `parseDurationTests`, plus kubectl/etcdctl habits.
    #[test]
    fn parses_as_go() {
        let table: &[(&str, i64)] = &[
            ("0", 0),
            ("5s", 5 * S),
            ("30s", 30 * S),
            ("1478s", 1478 * S),
            ("-5s", -5 * S),
            ("+5s", 5 * S),
            ("-0", 0),
            ("+0", 0),
            ("5.0s", 5 * S),
            ("5.6s", 5 * S + 600 * MS),
            ("5.s", 5 * S),
            (".5s", 500 * MS),
            ("1.0s", S),
            ("1.00s", S),
            ("1.004s", S + 4 * MS),
            ("1.0040s", S + 4 * MS),
            ("100.00100s", 100 * S + MS),
            ("10ns", 10 * NS),
            ("11us", 11 * US),
            ("12\u{b5}s", 12 * US),
            ("12\u{3bc}s", 12 * US),
            ("13ms", 13 * MS),
            ("14s", 14 * S),
            ("15m", 15 * M),
            ("16h", 16 * H),
            ("3h30m", 3 * H + 30 * M),
            ("10.5s4m", 4 * M + 10 * S + 500 * MS),
            ("-2m3.4s", -(2 * M + 3 * S + 400 * MS)),
            (
                "1h2m3s4ms5us6ns",
                H + 2 * M + 3 * S + 4 * MS + 5 * US + 6 * NS,
            ),
            ("39h9m14.425s", 39 * H + 9 * M + 14 * S + 425 * MS),
            ("52763797000ns", 52_763_797_000),
            ("0.3333333333333333333h", 20 * M),
            ("9007199254740993ns", (1 << 53) + 1),
            ("9223372036854775807ns", i64::MAX),
            ("9223372036854775.807us", i64::MAX),
            ("9223372036s854ms775us807ns", i64::MAX),
            ("-9223372036854775808ns", i64::MIN),
            ("-9223372036854775.808us", i64::MIN),
            ("-9223372036s854ms775us808ns", i64::MIN),
            ("-2562047h47m16.854775808s", i64::MIN),
            ("0.100000000000000000000h", 6 * M),
            ("0.830103483285477580700h", 49 * M + 48 * S + 372_539_827),
            // What operators type for kubectl drain / etcdctl.
            ("1.5m", 90 * S),
            ("1h30m", 90 * M),
            ("500ms", 500 * MS),
            ("300us", 300 * US),
            ("0s", 0),
        ];
        for &(input, want) in table {
            assert_eq!(parse_signed(input), Ok(want), "{input:?}");
        }
    }

    /// Go 1.19 `parseDurationErrorTests`, with the kind of error Go reports.
    #[test]
    fn refuses_as_go() {
        let invalid = [
            "",
            "-",
            "s",
            ".",
            "-.",
            ".s",
            "+.s",
            "hello \u{fffd} world",
            "\u{fffd}",
            " 5s",
        ];
        for input in invalid {
            assert!(
                matches!(parse_signed(input), Err(DurationError::Invalid { .. })),
                "{input:?}: {:?}",
                parse_signed(input)
            );
        }
        let too_large = [
            "9223372036854775810ns",
            "9223372036854775808ns",
            "-9223372036854775809ns",
            "9223372036854776us",
            "3000000h",
            "9223372036854775.808us",
            "9223372036854775807ns1ns",
        ];
        for input in too_large {
            assert!(
                matches!(parse_signed(input), Err(DurationError::TooLarge { .. })),
                "{input:?}: {:?}",
                parse_signed(input)
            );
        }
        for input in ["3", "5", "1s2", "00", "-1"] {
            assert!(
                matches!(parse_signed(input), Err(DurationError::MissingUnit { .. })),
                "{input:?}: {:?}",
                parse_signed(input)
            );
        }
        for (input, unit) in [("1d", "d"), ("5 s", " s"), ("2sec", "sec"), ("1S", "S")] {
            assert_eq!(
                parse_signed(input),
                Err(DurationError::UnknownUnit {
                    unit: unit.into(),
                    input: input.into()
                })
            );
        }
    }

    #[test]
    fn flags_refuse_negative_but_take_negative_zero() {
        assert_eq!(
            parse("-5s"),
            Err(DurationError::Negative {
                input: "-5s".into()
            })
        );
        assert_eq!(parse("-0s"), Ok(Duration::ZERO));
        assert_eq!(parse("-0"), Ok(Duration::ZERO));
        assert_eq!(parse("1.5s"), Ok(Duration::from_millis(1500)));
    }

    /// Go 1.19 `durationTests` and the `time` package's examples.
    #[test]
    fn prints_as_go() {
        let table: &[(i64, &str)] = &[
            (0, "0s"),
            (NS, "1ns"),
            (1100 * NS, "1.1\u{b5}s"),
            (2200 * US, "2.2ms"),
            (3300 * MS, "3.3s"),
            (4 * M + 5 * S, "4m5s"),
            (4 * M + 5001 * MS, "4m5.001s"),
            (5 * H + 6 * M + 7001 * MS, "5h6m7.001s"),
            (8 * M + NS, "8m0.000000001s"),
            (i64::MAX, "2562047h47m16.854775807s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (10 * H, "10h0m0s"),
            (H + 10 * M + 10 * S, "1h10m10s"),
            (US, "1\u{b5}s"),
            (H + 2 * M + 300 * MS, "1h2m0.3s"),
            (300 * MS, "300ms"),
            (90 * S, "1m30s"),
            (60 * S, "1m0s"),
            (1500 * MS, "1.5s"),
            (-90 * S, "-1m30s"),
        ];
        for &(nanos, want) in table {
            assert_eq!(format_signed(nanos), want, "{nanos}ns");
        }
        assert_eq!(format(Duration::from_secs(90)), "1m30s");
        assert_eq!(Go(Duration::from_millis(500)).to_string(), "500ms");
    }

    /// Go stops at hours, so a `Duration` past Go's range still prints (and is only that).
    #[test]
    fn prints_beyond_go_range_in_hours() {
        assert_eq!(
            format(Duration::from_secs(3_000_000 * 3600)),
            "3000000h0m0s"
        );
    }

    proptest! {
        #[test]
        fn format_then_parse_round_trips(nanos in any::<i64>()) {
            prop_assert_eq!(parse_signed(&format_signed(nanos)), Ok(nanos));
        }

        #[test]
        fn unsigned_round_trips(nanos in 0..=i64::MAX) {
            let d = Duration::from_nanos(nanos.unsigned_abs());
            prop_assert_eq!(parse(&format(d)), Ok(d));
        }

        #[test]
        fn printed_form_is_compact(nanos in any::<i64>()) {
            let text = format_signed(nanos);
            prop_assert!(!text.contains(' '), "{}", text);
            prop_assert!(text.ends_with('s'), "{}", text);
        }

        #[test]
        fn components_add_up(
            h in 0i64..1000, m in 0i64..120, s in 0i64..120,
            ms in 0i64..2000, us in 0i64..2000, ns in 0i64..2000,
        ) {
            let text = format!("{h}h{m}m{s}s{ms}ms{us}us{ns}ns");
            let want = h * H + m * M + s * S + ms * MS + us * US + ns;
            prop_assert_eq!(parse_signed(&text), Ok(want));
        }

        #[test]
        fn decimal_seconds_are_exact(whole in 0i64..1_000_000, frac in 0i64..1_000) {
            let text = format!("{whole}.{frac:03}s");
            prop_assert_eq!(parse_signed(&text), Ok(whole * S + frac * MS));
        }
    }
}

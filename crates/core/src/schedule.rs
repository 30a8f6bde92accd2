//! When scheduled backups run: cron expressions, and what a long-running scheduler does at a
//! given moment — run now, report the runs it missed, or wait until the next one.
//!
//! A scheduler remembers a cursor: the last occurrence it has dealt with (run or reported
//! missed); it starts at the moment it was started, so nothing before the start is due. At
//! each moment `now`, [`decide`] looks at the occurrences in `(cursor, now]`:
//!
//! - none: wait for the first occurrence after `max(cursor, now)` (a clock set back never
//!   repeats a run that already happened);
//! - the latest one, if it is at most `deadline` old, runs now; every earlier one is missed
//!   (one run at a time: occurrences that fall while a run is in flight, or while the machine
//!   slept, are skipped and reported, never queued — like a Kubernetes CronJob with
//!   `concurrencyPolicy: Forbid` and `startingDeadlineSeconds`);
//! - if even the latest one is older than `deadline`, all are missed and the scheduler waits.
//!
//! Time is passed in; cron expressions are evaluated in UTC.

use jiff::{SignedDuration, Timestamp};

/// At most this many missed occurrences are counted one by one; past it the count is a lower
/// bound ([`Missed::capped`]), so an every-second schedule after a week asleep stays cheap.
pub const MAX_COUNTED: u64 = 10_000;

/// A set of instants, as a scheduler needs to walk it.
pub trait Occurrences {
    /// The first occurrence strictly after `t`, if any.
    fn next_after(&self, t: Timestamp) -> Option<Timestamp>;
    /// The last occurrence at or before `t`, if any.
    fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp>;
}

/// Why a cron expression was refused.
#[derive(Debug, thiserror::Error)]
#[error(
    "{expr:?} is not a cron expression: {source}; use 5 fields (minute hour day-of-month month day-of-week) or 6 with seconds first, e.g. \"0 */6 * * *\" or \"*/30 * * * * *\", or @hourly/@daily/@weekly"
)]
pub struct CronError {
    /// What was given.
    pub expr: String,
    /// croner's reason.
    pub source: croner::errors::CronError,
}

/// A cron expression evaluated in UTC: 5 fields, or 6 with a seconds field first
/// (`*/10 * * * * *`), ranges, steps, names, `L`, `#`, `W` and the `@hourly`-style nicknames.
#[derive(Debug, Clone)]
pub struct CronSchedule {
    expr: String,
    cron: croner::Cron,
}

impl CronSchedule {
    /// Parses `expr`.
    pub fn parse(expr: &str) -> Result<CronSchedule, CronError> {
        let parser = croner::parser::CronParser::builder()
            .seconds(croner::parser::Seconds::Optional)
            .year(croner::parser::Year::Disallowed)
            .build();
        let cron = parser.parse(expr.trim()).map_err(|source| CronError {
            expr: expr.to_string(),
            source,
        })?;
        let schedule = CronSchedule {
            expr: expr.trim().to_string(),
            cron,
        };
        // An expression that never matches (30 February) is refused now, not at run time.
        if schedule.next_after(Timestamp::UNIX_EPOCH).is_none() {
            return Err(CronError {
                expr: expr.to_string(),
                source: croner::errors::CronError::TimeSearchLimitExceeded,
            });
        }
        Ok(schedule)
    }

    /// The expression as given (trimmed).
    pub fn expr(&self) -> &str {
        &self.expr
    }

    /// True when the expression has a seconds field.
    pub fn has_seconds(&self) -> bool {
        self.expr.split_whitespace().count() == 6
    }
}

fn to_chrono(t: Timestamp) -> Option<chrono::DateTime<chrono::Utc>> {
    chrono::DateTime::from_timestamp(t.as_second(), 0)
}

fn from_chrono(t: chrono::DateTime<chrono::Utc>) -> Option<Timestamp> {
    Timestamp::from_second(t.timestamp()).ok()
}

/// `t` rounded down to a whole second (cron has one-second resolution).
fn floor_second(t: Timestamp) -> Timestamp {
    Timestamp::from_second(t.as_second()).unwrap_or(t)
}

impl Occurrences for CronSchedule {
    fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
        let start = to_chrono(floor_second(t))?;
        from_chrono(self.cron.find_next_occurrence(&start, false).ok()?)
    }

    fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
        let start = to_chrono(floor_second(t))?;
        from_chrono(self.cron.find_previous_occurrence(&start, true).ok()?)
    }
}

/// Occurrences a scheduler skipped.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Missed {
    /// How many (a lower bound when `capped`).
    pub count: u64,
    /// More than [`MAX_COUNTED`] were skipped; `count` is a lower bound.
    pub capped: bool,
    /// The earliest skipped.
    pub first: Option<Timestamp>,
    /// The latest skipped.
    pub last: Option<Timestamp>,
}

impl Missed {
    fn add(&mut self, t: Timestamp) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(t);
        }
        self.last = Some(t);
    }

    /// True when nothing was missed.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }
}

/// What the scheduler does now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tick {
    /// Run now, for this occurrence.
    pub run: Option<Timestamp>,
    /// Occurrences skipped since the cursor.
    pub missed: Missed,
    /// The cursor to pass to the next call (the latest occurrence dealt with).
    pub cursor: Timestamp,
    /// When nothing runs now: the next occurrence to wait for (`None`: the expression has no
    /// occurrence left).
    pub next: Option<Timestamp>,
}

/// Decides what to do at `now`, given the `cursor` (the start of the scheduler, then the
/// latest occurrence dealt with) and how late a run may still start (`deadline`).
pub fn decide(
    schedule: &dyn Occurrences,
    cursor: Timestamp,
    now: Timestamp,
    deadline: SignedDuration,
) -> Tick {
    let mut missed = Missed::default();
    let latest = schedule
        .latest_at_or_before(now)
        .filter(|&latest| latest > cursor);
    let Some(latest) = latest else {
        return Tick {
            run: None,
            missed,
            cursor,
            next: schedule.next_after(cursor.max(now)),
        };
    };
    // Occurrences strictly between the cursor and the latest one are missed.
    let mut t = cursor;
    while let Some(n) = schedule.next_after(t) {
        if n >= latest {
            break;
        }
        if missed.count >= MAX_COUNTED {
            missed.capped = true;
            missed.last = schedule.latest_at_or_before(latest - SignedDuration::from_secs(1));
            break;
        }
        missed.add(n);
        t = n;
    }
    if now.duration_since(latest) <= deadline {
        Tick {
            run: Some(latest),
            missed,
            cursor: latest,
            next: None,
        }
    } else {
        missed.add(latest);
        Tick {
            run: None,
            missed,
            cursor: latest,
            next: schedule.next_after(latest.max(now)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    /// Every `period` seconds from the epoch (a stand-in that is obviously right).
    struct Every(i64);

    impl Occurrences for Every {
        fn next_after(&self, t: Timestamp) -> Option<Timestamp> {
            let s = t.as_second().div_euclid(self.0) * self.0 + self.0;
            Timestamp::from_second(s).ok()
        }
        fn latest_at_or_before(&self, t: Timestamp) -> Option<Timestamp> {
            Timestamp::from_second(t.as_second().div_euclid(self.0) * self.0).ok()
        }
    }

    #[test]
    fn cron_expressions_with_and_without_seconds() {
        let cases: &[(&str, &str, &str)] = &[
            // (expression, after, next)
            (
                "*/2 * * * * *",
                "2026-12-04T10:00:00Z",
                "2026-12-04T10:00:02Z",
            ),
            (
                "*/2 * * * * *",
                "2026-12-04T10:00:00.9Z",
                "2026-12-04T10:00:02Z",
            ),
            (
                "*/2 * * * * *",
                "2026-12-04T10:00:01Z",
                "2026-12-04T10:00:02Z",
            ),
            (
                "30 * * * * *",
                "2026-12-04T10:00:30Z",
                "2026-12-04T10:01:30Z",
            ),
            (
                "0 */6 * * *",
                "2026-12-04T10:00:00Z",
                "2026-12-04T12:00:00Z",
            ),
            ("15 3 * * *", "2026-12-04T03:15:00Z", "2026-12-05T03:15:00Z"),
            ("@hourly", "2026-12-04T10:59:59Z", "2026-12-04T11:00:00Z"),
            ("@daily", "2026-12-31T23:00:00Z", "2027-01-01T00:00:00Z"),
            (
                "0 0 * * SUN",
                "2026-12-04T10:00:00Z",
                "2026-12-06T00:00:00Z",
            ),
            ("0 0 29 2 *", "2026-03-01T00:00:00Z", "2028-02-29T00:00:00Z"),
            ("0 0 L * *", "2026-12-04T00:00:00Z", "2026-12-31T00:00:00Z"),
        ];
        for (expr, after, next) in cases {
            let c = CronSchedule::parse(expr).unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(
                c.next_after(ts(after)),
                Some(ts(next)),
                "{expr} after {after}"
            );
        }
        let c = CronSchedule::parse("*/2 * * * * *").unwrap();
        assert!(c.has_seconds());
        assert_eq!(
            c.latest_at_or_before(ts("2026-12-04T10:00:03.5Z")),
            Some(ts("2026-12-04T10:00:02Z"))
        );
        assert_eq!(
            c.latest_at_or_before(ts("2026-12-04T10:00:02Z")),
            Some(ts("2026-12-04T10:00:02Z"))
        );
        assert!(!CronSchedule::parse("0 3 * * *").unwrap().has_seconds());
    }

    #[test]
    fn bad_expressions_are_refused_with_the_syntax() {
        for bad in [
            "",
            "* * *",
            "61 * * * *",
            "* * * * * * * *",
            "0 0 30 2 *",
            "every day",
        ] {
            let e = CronSchedule::parse(bad).expect_err(bad);
            let text = e.to_string();
            assert!(text.contains("is not a cron expression"), "{text}");
            assert!(text.contains("6 with seconds first"), "{text}");
        }
    }

    #[test]
    fn decisions() {
        let two = Every(2);
        let d = SignedDuration::from_secs(60);
        struct Case {
            name: &'static str,
            cursor: &'static str,
            now: &'static str,
            deadline: SignedDuration,
            run: Option<&'static str>,
            missed: u64,
            cursor_after: &'static str,
            next: Option<&'static str>,
        }
        let cases = [
            Case {
                name: "just started, nothing due",
                cursor: "2026-12-04T10:00:01Z",
                now: "2026-12-04T10:00:01.5Z",
                deadline: d,
                run: None,
                missed: 0,
                cursor_after: "2026-12-04T10:00:01Z",
                next: Some("2026-12-04T10:00:02Z"),
            },
            Case {
                name: "started on an occurrence: it is not due (only after the start)",
                cursor: "2026-12-04T10:00:00Z",
                now: "2026-12-04T10:00:00Z",
                deadline: d,
                run: None,
                missed: 0,
                cursor_after: "2026-12-04T10:00:00Z",
                next: Some("2026-12-04T10:00:02Z"),
            },
            Case {
                name: "woke on time",
                cursor: "2026-12-04T10:00:00Z",
                now: "2026-12-04T10:00:02.001Z",
                deadline: d,
                run: Some("2026-12-04T10:00:02Z"),
                missed: 0,
                cursor_after: "2026-12-04T10:00:02Z",
                next: None,
            },
            Case {
                name: "a long run: two occurrences fell during it, the latest runs",
                cursor: "2026-12-04T10:00:02Z",
                now: "2026-12-04T10:00:07Z",
                deadline: d,
                run: Some("2026-12-04T10:00:06Z"),
                missed: 1,
                cursor_after: "2026-12-04T10:00:06Z",
                next: None,
            },
            Case {
                name: "too late for the deadline: all missed, wait for the next",
                cursor: "2026-12-04T10:00:02Z",
                now: "2026-12-04T10:00:07Z",
                deadline: SignedDuration::ZERO,
                run: None,
                missed: 2,
                cursor_after: "2026-12-04T10:00:06Z",
                next: Some("2026-12-04T10:00:08Z"),
            },
            Case {
                name: "clock set back: no repeat, wait past the cursor",
                cursor: "2026-12-04T10:00:06Z",
                now: "2026-12-04T09:00:00Z",
                deadline: d,
                run: None,
                missed: 0,
                cursor_after: "2026-12-04T10:00:06Z",
                next: Some("2026-12-04T10:00:08Z"),
            },
            Case {
                name: "asleep for a day: capped count",
                cursor: "2026-12-04T10:00:00Z",
                now: "2026-12-05T10:00:00Z",
                deadline: d,
                run: Some("2026-12-05T10:00:00Z"),
                missed: MAX_COUNTED,
                cursor_after: "2026-12-05T10:00:00Z",
                next: None,
            },
        ];
        for c in cases {
            let tick = decide(&two, ts(c.cursor), ts(c.now), c.deadline);
            assert_eq!(tick.run, c.run.map(ts), "{}", c.name);
            assert_eq!(tick.missed.count, c.missed, "{}", c.name);
            assert_eq!(tick.cursor, ts(c.cursor_after), "{}", c.name);
            assert_eq!(tick.next, c.next.map(ts), "{}", c.name);
        }
        let tick = decide(
            &two,
            ts("2026-12-04T10:00:00Z"),
            ts("2026-12-05T10:00:00Z"),
            d,
        );
        assert!(tick.missed.capped);
        assert_eq!(tick.missed.first, Some(ts("2026-12-04T10:00:02Z")));
        assert_eq!(tick.missed.last, Some(ts("2026-12-05T09:59:58Z")));
        let tick = decide(
            &two,
            ts("2026-12-04T10:00:02Z"),
            ts("2026-12-04T10:00:07Z"),
            d,
        );
        assert_eq!(tick.missed.first, Some(ts("2026-12-04T10:00:04Z")));
        assert_eq!(tick.missed.last, Some(ts("2026-12-04T10:00:04Z")));
    }

    #[test]
    fn the_same_decisions_from_a_real_cron_expression() {
        let cron = CronSchedule::parse("*/2 * * * * *").unwrap();
        let two = Every(2);
        let d = SignedDuration::from_secs(3);
        for (cursor, now) in [
            ("2026-12-04T10:00:00Z", "2026-12-04T10:00:07Z"),
            ("2026-12-04T10:00:01Z", "2026-12-04T10:00:01.5Z"),
            ("2026-12-04T10:00:00Z", "2026-12-04T10:03:07Z"),
        ] {
            assert_eq!(
                decide(&cron, ts(cursor), ts(now), d),
                decide(&two, ts(cursor), ts(now), d),
                "{cursor} {now}"
            );
        }
    }

    proptest! {
        /// Walking a scheduler through time with runs of random length: every occurrence after
        /// the start is run or reported missed exactly once, runs never go back in time, and a
        /// run is never more than the deadline late.
        #[test]
        fn every_occurrence_is_run_or_missed_once(
            period in 1i64..30,
            deadline in 0i64..20,
            steps in proptest::collection::vec(0i64..90, 1..40),
        ) {
            let s = Every(period);
            let start = ts("2026-12-04T10:00:00.250Z");
            let deadline = SignedDuration::from_secs(deadline);
            let mut cursor = start;
            let mut now = start;
            let mut seen: Vec<Timestamp> = Vec::new();
            let mut missed_total = 0u64;
            for step in steps {
                let tick = decide(&s, cursor, now, deadline);
                prop_assert!(tick.cursor >= cursor);
                missed_total += tick.missed.count;
                if let Some(run) = tick.run {
                    prop_assert!(run <= now && now.duration_since(run) <= deadline);
                    if let Some(last) = seen.last() {
                        prop_assert!(run > *last);
                    }
                    seen.push(run);
                    prop_assert!(tick.next.is_none());
                } else if let Some(next) = tick.next {
                    prop_assert!(next > now);
                }
                cursor = tick.cursor;
                now += SignedDuration::from_secs(step);
            }
            // Everything in (start, cursor] was dealt with exactly once.
            let mut expected = 0u64;
            let mut t = start;
            while let Some(n) = s.next_after(t) {
                if n > cursor { break; }
                expected += 1;
                t = n;
            }
            prop_assert_eq!(seen.len() as u64 + missed_total, expected);
        }
    }
}

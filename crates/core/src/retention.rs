//! Backup retention: which backups to keep and which to delete, and why.
//!
//! The policy combines a count of most recent backups (`keep_last`), calendar tiers
//! (hourly / daily / weekly / monthly: the newest backup of each of the N most recent
//! periods that hold one, like restic's `forget` and Gardener's exponential policy) and a
//! maximum age that caps all of them. Periods are UTC hours, UTC days, ISO weeks and calendar
//! months. Two guards come before any rule:
//!
//! - when the run that called for retention failed, nothing is deleted;
//! - the newest verified backup is never deleted, whatever the policy says (a policy that
//!   would delete everything — e.g. a maximum age shorter than the backup interval — leaves
//!   the one backup a restore can still use).
//!
//! A backup that is not verified never fills a tier's slot (a checked backup of the same
//! period takes it) and is deleted unless `keep_last` counts it. An empty policy (all counts
//! zero, no maximum age) keeps everything.
//!
//! Local copies and the remote store each get their own [`Policy`]; the caller decides which
//! applies where. Time is passed in.

use std::collections::BTreeSet;

use jiff::{SignedDuration, Timestamp, tz::TimeZone};
use serde::Serialize;

/// Retention counts and limit.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Policy {
    /// Keep the N most recent backups (verified or not).
    pub keep_last: u32,
    /// Keep the newest verified backup of each of the N most recent UTC hours that have one.
    pub hourly: u32,
    /// Same per UTC day.
    pub daily: u32,
    /// Same per ISO week.
    pub weekly: u32,
    /// Same per calendar month (UTC).
    pub monthly: u32,
    /// Delete anything older than this, whatever the counts say (the newest verified backup
    /// excepted).
    pub max_age: Option<SignedDuration>,
}

impl Policy {
    /// True when the policy says nothing: every backup is kept.
    pub fn is_empty(&self) -> bool {
        self.keep_last == 0
            && self.hourly == 0
            && self.daily == 0
            && self.weekly == 0
            && self.monthly == 0
            && self.max_age.is_none()
    }

    fn has_counts(&self) -> bool {
        self.keep_last > 0
            || self.hourly > 0
            || self.daily > 0
            || self.weekly > 0
            || self.monthly > 0
    }
}

/// One backup as retention sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Backup {
    /// Its ID (unique within one store).
    pub id: String,
    /// When it was taken.
    pub created: Timestamp,
    /// Whether its content was checked (SHA-256 trailer matched and the object was stored
    /// whole). Only verified backups fill tiers and count as "the newest verified".
    pub verified: bool,
}

/// A calendar tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// UTC hour.
    Hourly,
    /// UTC day.
    Daily,
    /// ISO week.
    Weekly,
    /// Calendar month.
    Monthly,
}

impl Tier {
    const ALL: [Tier; 4] = [Tier::Hourly, Tier::Daily, Tier::Weekly, Tier::Monthly];

    fn count(self, p: &Policy) -> u32 {
        match self {
            Tier::Hourly => p.hourly,
            Tier::Daily => p.daily,
            Tier::Weekly => p.weekly,
            Tier::Monthly => p.monthly,
        }
    }

    /// The period label a timestamp falls in: `2026-12-04T16`, `2026-12-04`, `2026-W49`,
    /// `2026-12`.
    pub fn period(self, t: Timestamp) -> String {
        let z = t.to_zoned(TimeZone::UTC);
        let d = z.date();
        match self {
            Tier::Hourly => format!("{d}T{:02}", z.hour()),
            Tier::Daily => d.to_string(),
            Tier::Weekly => {
                let w = d.iso_week_date();
                format!("{:04}-W{:02}", w.year(), w.week())
            }
            Tier::Monthly => format!("{:04}-{:02}", d.year(), d.month()),
        }
    }
}

/// Why a backup is kept.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum KeepReason {
    /// The run failed: retention deletes nothing.
    RunFailed,
    /// No retention rule is configured.
    NoPolicy,
    /// One of the `keep_last` most recent (1-based position).
    Last {
        /// Position, newest = 1.
        position: u32,
    },
    /// The newest verified backup of a tier period.
    Tier {
        /// The tier.
        tier: Tier,
        /// The period label.
        period: String,
    },
    /// Only a maximum age is configured and the backup is younger.
    WithinMaxAge,
    /// The newest verified backup: never deleted.
    NewestVerified,
}

impl std::fmt::Display for KeepReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeepReason::RunFailed => f.write_str("this run failed, so nothing is deleted"),
            KeepReason::NoPolicy => f.write_str("no retention policy"),
            KeepReason::Last { position } => write!(f, "last #{position}"),
            KeepReason::Tier { tier, period } => {
                let name = match tier {
                    Tier::Hourly => "hourly",
                    Tier::Daily => "daily",
                    Tier::Weekly => "weekly",
                    Tier::Monthly => "monthly",
                };
                write!(f, "{name} {period}")
            }
            KeepReason::WithinMaxAge => f.write_str("within max age"),
            KeepReason::NewestVerified => f.write_str("newest verified backup (always kept)"),
        }
    }
}

/// Why a backup is deleted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "rule", rename_all = "kebab-case")]
pub enum DeleteReason {
    /// Older than the maximum age.
    TooOld {
        /// Its age.
        #[serde(serialize_with = "ser_duration")]
        age: SignedDuration,
        /// The limit.
        #[serde(serialize_with = "ser_duration")]
        max_age: SignedDuration,
    },
    /// Selected by no rule.
    NotSelected {
        /// Not verified (so it could only have been kept by `keep_last`).
        unverified: bool,
    },
}

fn ser_duration<S: serde::Serializer>(d: &SignedDuration, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{d:#}"))
}

impl std::fmt::Display for DeleteReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeleteReason::TooOld { age, max_age } => {
                write!(f, "older than max age ({age:#} > {max_age:#})")
            }
            DeleteReason::NotSelected { unverified: false } => {
                f.write_str("not selected by keep-last or any tier")
            }
            DeleteReason::NotSelected { unverified: true } => {
                f.write_str("not verified and not among the last kept")
            }
        }
    }
}

/// The verdict for one backup.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "action", rename_all = "lowercase")]
pub enum Verdict {
    /// Keep it, for these reasons (at least one).
    Keep {
        /// Every rule that keeps it.
        reasons: Vec<KeepReason>,
    },
    /// Delete it.
    Delete {
        /// Why.
        reason: DeleteReason,
    },
}

impl Verdict {
    /// True for [`Verdict::Delete`].
    pub fn is_delete(&self) -> bool {
        matches!(self, Verdict::Delete { .. })
    }
}

/// One backup's decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Decision {
    /// The backup's ID.
    pub id: String,
    /// When it was taken.
    #[serde(serialize_with = "ser_timestamp")]
    pub created: Timestamp,
    /// Keep or delete, and why.
    #[serde(flatten)]
    pub verdict: Verdict,
}

fn ser_timestamp<S: serde::Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&t.to_string())
}

/// Whether the run that asks for retention succeeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOutcome {
    /// The new backup was stored and verified: retention may delete.
    Succeeded,
    /// The run failed: nothing is deleted.
    Failed,
}

/// Decides every backup's fate. Returns one decision per input backup, newest first (ties
/// broken by ID, so the result does not depend on the input order).
pub fn decide(
    policy: &Policy,
    backups: &[Backup],
    now: Timestamp,
    run: RunOutcome,
) -> Vec<Decision> {
    let mut order: Vec<&Backup> = backups.iter().collect();
    order.sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    let newest_verified = order.iter().position(|b| b.verified);

    let mut reasons: Vec<Vec<KeepReason>> = vec![Vec::new(); order.len()];
    if run == RunOutcome::Failed {
        for r in &mut reasons {
            r.push(KeepReason::RunFailed);
        }
    } else if policy.is_empty() {
        for r in &mut reasons {
            r.push(KeepReason::NoPolicy);
        }
    } else {
        let too_old = |b: &Backup| policy.max_age.is_some_and(|m| age(now, b.created) > m);
        for (i, b) in order.iter().enumerate().take(policy.keep_last as usize) {
            if !too_old(b) {
                reasons[i].push(KeepReason::Last {
                    position: i as u32 + 1,
                });
            }
        }
        for tier in Tier::ALL {
            let want = tier.count(policy) as usize;
            let mut seen: BTreeSet<String> = BTreeSet::new();
            for (i, b) in order.iter().enumerate() {
                if seen.len() >= want {
                    break;
                }
                if !b.verified || too_old(b) {
                    continue;
                }
                let period = tier.period(b.created);
                if seen.insert(period.clone()) {
                    reasons[i].push(KeepReason::Tier { tier, period });
                }
            }
        }
        if !policy.has_counts() {
            for (i, b) in order.iter().enumerate() {
                if !too_old(b) {
                    reasons[i].push(KeepReason::WithinMaxAge);
                }
            }
        }
    }
    if let Some(i) = newest_verified
        && reasons[i].is_empty()
    {
        reasons[i].push(KeepReason::NewestVerified);
    }

    order
        .iter()
        .zip(reasons)
        .map(|(b, reasons)| {
            let verdict = if reasons.is_empty() {
                let a = age(now, b.created);
                let reason = match policy.max_age {
                    Some(max_age) if a > max_age => DeleteReason::TooOld { age: a, max_age },
                    _ => DeleteReason::NotSelected {
                        unverified: !b.verified,
                    },
                };
                Verdict::Delete { reason }
            } else {
                Verdict::Keep { reasons }
            };
            Decision {
                id: b.id.clone(),
                created: b.created,
                verdict,
            }
        })
        .collect()
}

fn age(now: Timestamp, created: Timestamp) -> SignedDuration {
    now.duration_since(created)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn ts(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn b(id: &str, created: &str) -> Backup {
        Backup {
            id: id.into(),
            created: ts(created),
            verified: true,
        }
    }

    fn kept(ds: &[Decision]) -> Vec<&str> {
        ds.iter()
            .filter(|d| !d.verdict.is_delete())
            .map(|d| d.id.as_str())
            .collect()
    }

    fn reasons_of<'a>(ds: &'a [Decision], id: &str) -> &'a Verdict {
        &ds.iter().find(|d| d.id == id).unwrap().verdict
    }

    /// Backups every `step_minutes` from `start`, `n` of them, IDs b000.. oldest first.
    fn series(start: &str, step_minutes: i64, n: usize) -> Vec<Backup> {
        let t0 = ts(start);
        (0..n)
            .map(|i| Backup {
                id: format!("b{i:03}"),
                created: t0 + SignedDuration::from_mins(step_minutes * i as i64),
                verified: true,
            })
            .collect()
    }

    #[test]
    fn periods() {
        let t = ts("2026-12-04T16:47:00Z");
        assert_eq!(Tier::Hourly.period(t), "2026-12-04T16");
        assert_eq!(Tier::Daily.period(t), "2026-12-04");
        assert_eq!(Tier::Weekly.period(t), "2026-W49");
        assert_eq!(Tier::Monthly.period(t), "2026-12");
        // ISO week-year differs from the calendar year at the turn of the year.
        assert_eq!(Tier::Weekly.period(ts("2027-01-01T00:00:00Z")), "2026-W53");
        assert_eq!(Tier::Weekly.period(ts("2024-12-30T12:00:00Z")), "2025-W01");
    }

    #[test]
    fn table() {
        struct Case {
            name: &'static str,
            policy: Policy,
            backups: Vec<Backup>,
            now: &'static str,
            kept: Vec<&'static str>,
        }
        let hours = || {
            vec![
                b("a", "2026-12-04T10:05:00Z"),
                b("b", "2026-12-04T10:35:00Z"),
                b("c", "2026-12-04T11:05:00Z"),
                b("d", "2026-12-04T11:35:00Z"),
                b("e", "2026-12-04T12:05:00Z"),
            ]
        };
        let cases = vec![
            Case {
                name: "empty policy keeps all",
                policy: Policy::default(),
                backups: hours(),
                now: "2026-12-04T13:00:00Z",
                kept: vec!["e", "d", "c", "b", "a"],
            },
            Case {
                name: "keep last 2",
                policy: Policy {
                    keep_last: 2,
                    ..Policy::default()
                },
                backups: hours(),
                now: "2026-12-04T13:00:00Z",
                kept: vec!["e", "d"],
            },
            Case {
                name: "hourly 3 keeps the newest of each hour",
                policy: Policy {
                    hourly: 3,
                    ..Policy::default()
                },
                backups: hours(),
                now: "2026-12-04T13:00:00Z",
                kept: vec!["e", "d", "b"],
            },
            Case {
                name: "hourly 2 + last 1 overlap",
                policy: Policy {
                    keep_last: 1,
                    hourly: 2,
                    ..Policy::default()
                },
                backups: hours(),
                now: "2026-12-04T13:00:00Z",
                kept: vec!["e", "d"],
            },
            Case {
                name: "daily across midnight",
                policy: Policy {
                    daily: 2,
                    ..Policy::default()
                },
                backups: vec![
                    b("a", "2026-12-02T23:59:00Z"),
                    b("b", "2026-12-03T00:00:00Z"),
                    b("c", "2026-12-03T23:59:59Z"),
                    b("d", "2026-12-04T00:00:01Z"),
                ],
                now: "2026-12-04T13:00:00Z",
                kept: vec!["d", "c"],
            },
            Case {
                name: "weekly and monthly",
                policy: Policy {
                    weekly: 2,
                    monthly: 3,
                    ..Policy::default()
                },
                backups: vec![
                    b("sep", "2026-09-15T00:00:00Z"),
                    b("oct1", "2026-10-01T00:00:00Z"),
                    b("oct31", "2026-10-31T00:00:00Z"),
                    b("nov30", "2026-11-30T00:00:00Z"), // Monday, W49
                    b("dec1", "2026-12-01T00:00:00Z"),  // W49 too
                    b("dec4", "2026-12-04T00:00:00Z"),  // W49, newest
                ],
                now: "2026-12-04T13:00:00Z",
                // weekly: W49 -> dec4, W48 has none (nov30 is W49), W44 -> oct31
                // monthly: 2026-12 -> dec4, 2026-11 -> nov30, 2026-10 -> oct31
                kept: vec!["dec4", "nov30", "oct31"],
            },
            Case {
                name: "max age caps the tiers",
                policy: Policy {
                    daily: 7,
                    max_age: Some(SignedDuration::from_hours(48)),
                    ..Policy::default()
                },
                backups: vec![
                    b("d1", "2026-12-01T12:00:00Z"),
                    b("d2", "2026-12-02T12:00:00Z"),
                    b("d3", "2026-12-03T12:00:00Z"),
                    b("d4", "2026-12-04T12:00:00Z"),
                ],
                now: "2026-12-04T13:00:00Z",
                kept: vec!["d4", "d3"],
            },
            Case {
                name: "max age alone keeps what is younger",
                policy: Policy {
                    max_age: Some(SignedDuration::from_hours(2)),
                    ..Policy::default()
                },
                backups: hours(),
                now: "2026-12-04T13:00:00Z",
                kept: vec!["e", "d", "c"],
            },
            Case {
                name: "max age shorter than everything keeps the newest verified",
                policy: Policy {
                    keep_last: 3,
                    max_age: Some(SignedDuration::from_mins(1)),
                    ..Policy::default()
                },
                backups: hours(),
                now: "2026-12-05T13:00:00Z",
                kept: vec!["e"],
            },
            Case {
                name: "unverified newest: keep-last counts it, the guard protects the verified one",
                policy: Policy {
                    keep_last: 1,
                    ..Policy::default()
                },
                backups: {
                    let mut v = hours();
                    v[4].verified = false;
                    v
                },
                now: "2026-12-04T13:00:00Z",
                kept: vec!["e", "d"],
            },
            Case {
                name: "unverified never fills an hourly slot",
                policy: Policy {
                    hourly: 1,
                    ..Policy::default()
                },
                backups: {
                    let mut v = hours();
                    v[4].verified = false; // e, hour 12
                    v
                },
                now: "2026-12-04T13:00:00Z",
                kept: vec!["d"],
            },
            Case {
                name: "no backups",
                policy: Policy {
                    keep_last: 1,
                    ..Policy::default()
                },
                backups: vec![],
                now: "2026-12-04T13:00:00Z",
                kept: vec![],
            },
            Case {
                name: "future timestamps (clock skew) are not too old",
                policy: Policy {
                    max_age: Some(SignedDuration::from_hours(1)),
                    ..Policy::default()
                },
                backups: vec![
                    b("f", "2026-12-04T14:00:00Z"),
                    b("o", "2026-12-04T10:00:00Z"),
                ],
                now: "2026-12-04T13:00:00Z",
                kept: vec!["f"],
            },
        ];
        for c in cases {
            let ds = decide(&c.policy, &c.backups, ts(c.now), RunOutcome::Succeeded);
            assert_eq!(kept(&ds), c.kept, "case {:?}: {ds:#?}", c.name);
            assert_eq!(ds.len(), c.backups.len(), "case {:?}", c.name);
        }
    }

    #[test]
    fn reasons_are_named() {
        let backups = vec![
            b("a", "2026-12-04T10:05:00Z"),
            b("b", "2026-12-04T10:35:00Z"),
            b("c", "2026-12-04T11:05:00Z"),
        ];
        let policy = Policy {
            keep_last: 1,
            hourly: 2,
            max_age: Some(SignedDuration::from_hours(100)),
            ..Policy::default()
        };
        let ds = decide(
            &policy,
            &backups,
            ts("2026-12-04T12:00:00Z"),
            RunOutcome::Succeeded,
        );
        assert_eq!(
            reasons_of(&ds, "c"),
            &Verdict::Keep {
                reasons: vec![
                    KeepReason::Last { position: 1 },
                    KeepReason::Tier {
                        tier: Tier::Hourly,
                        period: "2026-12-04T11".into()
                    }
                ]
            }
        );
        assert_eq!(
            reasons_of(&ds, "a"),
            &Verdict::Delete {
                reason: DeleteReason::NotSelected { unverified: false }
            }
        );
        let text: Vec<String> = ds
            .iter()
            .map(|d| match &d.verdict {
                Verdict::Keep { reasons } => reasons
                    .iter()
                    .map(|r| r.to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                Verdict::Delete { reason } => reason.to_string(),
            })
            .collect();
        assert_eq!(
            text,
            [
                "last #1, hourly 2026-12-04T11",
                "hourly 2026-12-04T10",
                "not selected by keep-last or any tier"
            ]
        );
        let old = decide(
            &Policy {
                keep_last: 1,
                max_age: Some(SignedDuration::from_hours(1)),
                ..Policy::default()
            },
            &backups,
            ts("2026-12-04T12:00:00Z"),
            RunOutcome::Succeeded,
        );
        assert_eq!(
            old[2].verdict,
            Verdict::Delete {
                reason: DeleteReason::TooOld {
                    age: SignedDuration::from_mins(115),
                    max_age: SignedDuration::from_hours(1)
                }
            }
        );
        assert_eq!(
            old[2].verdict.to_string_reason(),
            "older than max age (1h 55m > 1h)"
        );
        let guard = decide(
            &Policy {
                max_age: Some(SignedDuration::from_mins(1)),
                ..Policy::default()
            },
            &backups,
            ts("2026-12-04T12:00:00Z"),
            RunOutcome::Succeeded,
        );
        assert_eq!(
            guard[0].verdict,
            Verdict::Keep {
                reasons: vec![KeepReason::NewestVerified]
            }
        );
        let json = serde_json::to_value(&guard[1]).unwrap();
        assert_eq!(json["action"], "delete");
        assert_eq!(json["reason"]["rule"], "too-old");
        assert_eq!(json["reason"]["max_age"], "1m");
    }

    impl Verdict {
        fn to_string_reason(&self) -> String {
            match self {
                Verdict::Keep { reasons } => reasons[0].to_string(),
                Verdict::Delete { reason } => reason.to_string(),
            }
        }
    }

    #[test]
    fn failed_run_deletes_nothing() {
        let backups = series("2026-01-01T00:00:00Z", 60, 50);
        let policy = Policy {
            keep_last: 1,
            max_age: Some(SignedDuration::from_mins(1)),
            ..Policy::default()
        };
        let ds = decide(
            &policy,
            &backups,
            ts("2026-12-01T00:00:00Z"),
            RunOutcome::Failed,
        );
        assert!(ds.iter().all(|d| d.verdict
            == Verdict::Keep {
                reasons: vec![KeepReason::RunFailed]
            }));
    }

    #[test]
    fn a_long_hourly_history_thins_out() {
        // 30 days of half-hourly backups; 24 hourly + 7 daily + 4 weekly + 12 monthly.
        let backups = series("2026-11-01T00:10:00Z", 30, 30 * 48);
        let now = backups.last().unwrap().created + SignedDuration::from_mins(5);
        let policy = Policy {
            keep_last: 3,
            hourly: 24,
            daily: 7,
            weekly: 4,
            monthly: 12,
            max_age: None,
        };
        let ds = decide(&policy, &backups, now, RunOutcome::Succeeded);
        let k = kept(&ds);
        // 3 last (2 of them in the newest hour, already the hourly pick of it) + 24 hourly
        // in total, 6 more dailies, weekly: 4 ISO weeks (2 beyond the dailies), monthly:
        // November's newest backup is the newest overall, so no extra.
        assert!(
            k.len() >= 24 && k.len() <= 3 + 24 + 7 + 4 + 12,
            "{}",
            k.len()
        );
        assert_eq!(k[0], "b1439");
        // The oldest backup of the series is gone.
        assert!(reasons_of(&ds, "b000").is_delete());
    }

    fn arb_backups() -> impl Strategy<Value = Vec<Backup>> {
        // Up to 60 backups within ~120 days, some unverified, some at equal times.
        prop::collection::vec((0i64..120 * 24 * 60, prop::bool::weighted(0.85)), 0..60).prop_map(
            |v| {
                let t0 = ts("2026-08-01T00:00:00Z");
                v.into_iter()
                    .enumerate()
                    .map(|(i, (m, verified))| Backup {
                        id: format!("id{i:02}"),
                        created: t0 + SignedDuration::from_mins(m),
                        verified,
                    })
                    .collect()
            },
        )
    }

    fn arb_policy() -> impl Strategy<Value = Policy> {
        (
            0u32..5,
            0u32..30,
            0u32..10,
            0u32..6,
            0u32..6,
            prop::option::of(0i64..200 * 24),
        )
            .prop_map(
                |(keep_last, hourly, daily, weekly, monthly, max_age)| Policy {
                    keep_last,
                    hourly,
                    daily,
                    weekly,
                    monthly,
                    max_age: max_age.map(SignedDuration::from_hours),
                },
            )
    }

    proptest! {
        #[test]
        fn one_decision_each_and_failed_runs_delete_nothing(
            policy in arb_policy(), backups in arb_backups(), now_h in 0i64..200 * 24
        ) {
            let now = ts("2026-08-01T00:00:00Z") + SignedDuration::from_hours(now_h);
            let ds = decide(&policy, &backups, now, RunOutcome::Succeeded);
            let mut ids: Vec<_> = ds.iter().map(|d| d.id.clone()).collect();
            ids.sort();
            let mut want: Vec<_> = backups.iter().map(|b| b.id.clone()).collect();
            want.sort();
            prop_assert_eq!(ids, want);
            let failed = decide(&policy, &backups, now, RunOutcome::Failed);
            prop_assert!(failed.iter().all(|d| !d.verdict.is_delete()));
        }

        #[test]
        fn newest_verified_is_never_deleted(
            policy in arb_policy(), backups in arb_backups(), now_h in 0i64..200 * 24
        ) {
            let now = ts("2026-08-01T00:00:00Z") + SignedDuration::from_hours(now_h);
            let ds = decide(&policy, &backups, now, RunOutcome::Succeeded);
            if let Some(first) = ds.iter().find(|d| backups.iter().any(|b| b.id == d.id && b.verified)) {
                prop_assert!(!first.verdict.is_delete(), "{:?}", first);
            }
        }

        #[test]
        fn input_order_does_not_matter(
            policy in arb_policy(), backups in arb_backups(), seed in any::<u64>()
        ) {
            let now = ts("2026-12-01T00:00:00Z");
            let mut shuffled = backups.clone();
            // A cheap deterministic shuffle.
            let n = shuffled.len();
            for i in (1..n).rev() {
                let j = (seed.wrapping_mul(i as u64 + 7).rotate_left(13) % (i as u64 + 1)) as usize;
                shuffled.swap(i, j);
            }
            prop_assert_eq!(
                decide(&policy, &backups, now, RunOutcome::Succeeded),
                decide(&policy, &shuffled, now, RunOutcome::Succeeded)
            );
        }

        #[test]
        fn raising_a_count_never_deletes_more(
            policy in arb_policy(), backups in arb_backups(), which in 0usize..5
        ) {
            let now = ts("2026-12-01T00:00:00Z");
            let mut more = policy;
            match which {
                0 => more.keep_last += 1,
                1 => more.hourly += 1,
                2 => more.daily += 1,
                3 => more.weekly += 1,
                _ => more.monthly += 1,
            }
            // Adding the first count to a max-age-only policy switches its meaning.
            prop_assume!(policy.has_counts() || policy.max_age.is_none());
            let before = decide(&policy, &backups, now, RunOutcome::Succeeded);
            let after = decide(&more, &backups, now, RunOutcome::Succeeded);
            for (x, y) in before.iter().zip(&after) {
                prop_assert_eq!(&x.id, &y.id);
                if !x.verdict.is_delete() && !policy.is_empty() {
                    prop_assert!(!y.verdict.is_delete(), "{:?} -> {:?}", x, y);
                }
            }
        }

        #[test]
        fn kept_count_is_bounded_and_nothing_too_old_survives_but_the_guard(
            policy in arb_policy(), backups in arb_backups()
        ) {
            prop_assume!(policy.has_counts());
            let now = ts("2026-12-01T00:00:00Z");
            let ds = decide(&policy, &backups, now, RunOutcome::Succeeded);
            let kept: Vec<_> = ds.iter().filter(|d| !d.verdict.is_delete()).collect();
            let bound = (policy.keep_last + policy.hourly + policy.daily + policy.weekly + policy.monthly) as usize + 1;
            prop_assert!(kept.len() <= bound);
            if let Some(m) = policy.max_age {
                for d in &kept {
                    let guard = matches!(&d.verdict, Verdict::Keep { reasons } if reasons == &vec![KeepReason::NewestVerified]);
                    prop_assert!(guard || now.duration_since(d.created) <= m, "{:?}", d);
                }
            }
        }

        #[test]
        fn keep_last_at_least_len_deletes_nothing(backups in arb_backups()) {
            let policy = Policy { keep_last: backups.len().max(1) as u32, ..Policy::default() };
            let ds = decide(&policy, &backups, ts("2026-12-01T00:00:00Z"), RunOutcome::Succeeded);
            prop_assert!(ds.iter().all(|d| !d.verdict.is_delete()));
        }
    }
}

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
    prop::collection::vec((0i64..120 * 24 * 60, prop::bool::weighted(0.85)), 0..60).prop_map(|v| {
        let t0 = ts("2026-08-01T00:00:00Z");
        v.into_iter()
            .enumerate()
            .map(|(i, (m, verified))| Backup {
                id: format!("id{i:02}"),
                created: t0 + SignedDuration::from_mins(m),
                verified,
            })
            .collect()
    })
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

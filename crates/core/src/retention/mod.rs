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

#[cfg(test)]
mod tests;
mod verdict;

pub use verdict::{Decision, DeleteReason, KeepReason, Verdict};

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

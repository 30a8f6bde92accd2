//! What retention says about one backup: keep (with every rule that keeps it) or delete (with
//! the rule that deletes it), printable and serializable for `-o json`.

use jiff::{SignedDuration, Timestamp};
use serde::Serialize;

use super::Tier;

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

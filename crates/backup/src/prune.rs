//! Listing the backups in a store and applying a retention policy to them.

use jiff::Timestamp;
use kubemaint_core::retention::{self, Backup, Decision, Policy, RunOutcome};

use crate::manifest::{self, BackupManifest};
use crate::run::read_manifest;
use crate::store::{ObjectInfo, Store, StoreError};

/// What a store holds.
#[derive(Debug, Default)]
pub struct Listing {
    /// Complete backups (with a readable manifest), newest first.
    pub backups: Vec<BackupManifest>,
    /// Objects that are not part of any complete backup (an upload that was never committed
    /// by a manifest, or a manifest whose data is missing). Never deleted automatically.
    pub stray: Vec<ObjectInfo>,
    /// Manifests that could not be read, with the reason.
    pub unreadable: Vec<(String, String)>,
}

/// Lists the backups in `store`.
pub async fn list(store: &dyn Store) -> Result<Listing, StoreError> {
    let objects = store.list().await?;
    let mut listing = Listing::default();
    let mut used = std::collections::BTreeSet::new();
    for o in &objects {
        let Some(id) = o.name.strip_suffix(manifest::MANIFEST_SUFFIX) else {
            continue;
        };
        if !manifest::valid_id(id) {
            continue;
        }
        match read_manifest(store, id).await {
            Ok(m) => {
                if objects.iter().any(|x| x.name == m.object) {
                    used.insert(m.object.clone());
                    used.insert(o.name.clone());
                    listing.backups.push(m);
                } else {
                    listing.unreadable.push((
                        id.to_string(),
                        format!("its data object {} is missing", m.object),
                    ));
                    used.insert(o.name.clone());
                }
            }
            Err(e) => {
                listing.unreadable.push((id.to_string(), e.to_string()));
                used.insert(o.name.clone());
            }
        }
    }
    listing.stray = objects
        .into_iter()
        .filter(|o| !used.contains(&o.name) && o.name.starts_with(manifest::ID_PREFIX))
        .collect();
    listing
        .backups
        .sort_by(|a, b| b.created.cmp(&a.created).then_with(|| a.id.cmp(&b.id)));
    Ok(listing)
}

/// The retention decisions for a listing.
pub fn decide(
    listing: &Listing,
    policy: &Policy,
    now: Timestamp,
    outcome: RunOutcome,
) -> Vec<Decision> {
    let backups: Vec<Backup> = listing
        .backups
        .iter()
        .filter_map(|m| {
            Some(Backup {
                id: m.id.clone(),
                created: m.created_at()?,
                verified: m.verified,
            })
        })
        .collect();
    retention::decide(policy, &backups, now, outcome)
}

/// Deletes the backups `decisions` mark for deletion: manifest first (so a half-deleted
/// backup is never listed), then its data. Returns the IDs deleted.
pub async fn apply(
    store: &dyn Store,
    listing: &Listing,
    decisions: &[Decision],
) -> Result<Vec<String>, StoreError> {
    let mut deleted = Vec::new();
    for d in decisions.iter().filter(|d| d.verdict.is_delete()) {
        let Some(m) = listing.backups.iter().find(|m| m.id == d.id) else {
            continue;
        };
        store.delete(&manifest::manifest_name(&m.id)).await?;
        store.delete(&m.object).await?;
        deleted.push(m.id.clone());
    }
    Ok(deleted)
}

//! kubemaint-backup: regular etcd backups.
//!
//! A backup is one etcd snapshot streamed from a live member through the SHA-256 trailer check
//! (the save path of `kubemaint-etcd`), zstd compression (libzstd's worker threads) and optional
//! age encryption, straight into a store, without holding the snapshot in memory or writing it
//! to local disk first. Each backup is two objects under the destination:
//!
//! - `ID.db.zst` or `ID.db.zst.age` — the data, written first;
//! - `ID.manifest.json` — what it is (time, revision, sizes, SHA-256s, cluster, etcd version,
//!   encryption), written last. Only objects with a manifest are backups: an interrupted
//!   upload never appears in a listing.
//!
//! Stores ([`store::Store`]) are a local directory (files 0600, directories 0700, `.part` then
//! rename) and S3-compatible buckets (`s3://bucket/prefix`, multipart uploads). Retention
//! decisions are pure ([`kubemaint_core::retention`]); [`prune`] applies them.
#![warn(missing_docs)]

pub mod crypto;
pub mod manifest;
pub mod metrics;
pub mod pipeline;
pub mod prune;
pub mod run;
pub mod store;

pub use manifest::BackupManifest;
pub use store::{Location, Store, StoreError};

//! kubemaint-etcd: etcd's on-disk formats (snapshot file, bbolt, WAL) and the client edge.
//!
//! This crate has no Kubernetes dependency; it knows etcd and bbolt only.
#![warn(missing_docs)]

pub mod bbolt;
pub mod client;
pub mod ids;
pub mod proto;
pub mod restore;
pub mod save;
pub mod snap;
pub mod snapshot;
pub mod wal;

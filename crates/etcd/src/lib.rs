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

/// An error and its causes on one line (`a: b: c`), for the places that keep a fault as text
/// (a verify report's fault message); reports printed by the binary show causes on their own.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

//! Test-only helpers shared by kubemaint's crates.
//!
//! Kept free of Kubernetes and etcd dependencies so that every crate, `kubemaint-etcd` included,
//! can use it as a dev-dependency without pulling anything else in.
#![warn(missing_docs)]

pub mod modgraph;

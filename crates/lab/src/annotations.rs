//! Pod annotations the simulated kubelets obey, so a workload (the seed, a test) can shape how its
//! pods start, become Ready, exit and shut down without depending on the simulator itself.

/// Annotation: time from start to Ready, in ms.
pub const READY_DELAY_ANNOTATION: &str = "lab.kubemaint.io/ready-delay-ms";
/// Annotation: time to shut down after deletion, in ms.
pub const SHUTDOWN_DELAY_ANNOTATION: &str = "lab.kubemaint.io/shutdown-delay-ms";
/// Annotation: the containers exit this long after start, in ms.
pub const EXIT_AFTER_ANNOTATION: &str = "lab.kubemaint.io/exit-after-ms";
/// Annotation: the exit code used with [`EXIT_AFTER_ANNOTATION`] (default 0).
pub const EXIT_CODE_ANNOTATION: &str = "lab.kubemaint.io/exit-code";

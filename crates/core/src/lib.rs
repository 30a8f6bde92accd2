//! kubemaint-core: the decisions kubemaint makes, as pure functions from data to data.
//!
//! Nothing here talks to a cluster, a file or a clock: callers feed objects in and get
//! verdicts out, so every rule is unit- and property-tested without a server.
#![warn(missing_docs)]

pub mod drain;
pub mod retention;
pub mod upgrade;

//! bbolt (etcd's storage engine) on-disk format.
//!
//! `format` holds the constants and fixed-size structures shared by the read-only reader and the
//! restore writer.

pub mod format;

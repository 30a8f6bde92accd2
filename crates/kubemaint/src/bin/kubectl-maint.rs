//! `kubectl-maint`: the name under which kubectl finds kubemaint as a plugin (`kubectl maint ...`).
//!
//! kubectl runs the first `kubectl-maint` on `PATH`; this small program replaces itself with the
//! `kubemaint` installed beside it (else the one on `PATH`), keeping the name it was called by so
//! kubemaint's help and usage say `kubectl maint`. Exit codes and signals are kubemaint's own.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let mut args = std::env::args_os();
    let called_as = args
        .next()
        .unwrap_or_else(|| OsString::from("kubectl-maint"));
    let beside = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.join("kubemaint")))
        .filter(|path| path.is_file());
    let kubemaint = beside.unwrap_or_else(|| PathBuf::from("kubemaint"));
    let err = Command::new(&kubemaint).arg0(called_as).args(args).exec();
    eprintln!(
        "error: cannot run {}: {err}; install kubemaint in the same directory as kubectl-maint (cargo install puts both in ~/.cargo/bin)",
        kubemaint.display()
    );
    std::process::exit(1);
}

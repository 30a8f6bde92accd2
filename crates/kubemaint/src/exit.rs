//! Exit codes and the single error report printed at the top.
//!
//! Scripts branch on these, so they are part of the interface (see `kubemaint --help`).

/// Everything asked for was done.
pub const SUCCESS: i32 = 0;
/// The operation failed; the report says why and what to do next.
pub const FAILURE: i32 = 1;
/// Bad usage or bad input (a missing file, a malformed flag value); nothing was changed.
pub const USAGE: i32 = 2;
/// Part of the work was done and part is left pending (e.g. some nodes not drained).
pub const PARTIAL: i32 = 3;

/// An error that carries its own exit code (for input errors, say).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct CodedError {
    /// What went wrong and what to do next.
    pub message: String,
    /// The exit code to use.
    pub code: i32,
}

impl CodedError {
    /// A bad-input error: exit code [`USAGE`].
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        anyhow::Error::new(CodedError {
            message: message.into(),
            code: USAGE,
        })
    }
}

/// Prints the error and its causes, once, to stderr.
pub fn report(err: &anyhow::Error) {
    eprintln!("error: {err}");
    for cause in err.chain().skip(1) {
        eprintln!("  caused by: {cause}");
    }
}

/// The exit code for an error: its own if it carries one, else [`FAILURE`].
pub fn code_for(err: &anyhow::Error) -> i32 {
    err.downcast_ref::<CodedError>().map_or(FAILURE, |e| e.code)
}

//! Exit codes and the single error report printed at the top.
//!
//! Scripts branch on these, so they are part of the interface (see `kubemaint --help`).

use std::fmt;

/// Everything asked for was done.
pub const SUCCESS: i32 = 0;
/// The operation failed; the report says why and what to do next. For the snapshot commands
/// (`verify`, `status`, `restore`): the file was read and is damaged (see [`SNAPSHOT_EXIT_CODES`]).
pub const FAILURE: i32 = 1;
/// Bad usage or bad input (a missing file, a malformed flag value); nothing was changed.
pub const USAGE: i32 = 2;
/// Part of the work was done and part is left pending (e.g. some nodes not drained). For
/// `upgrade plan`: the plan was computed and printed, and a preflight check fails (a blocker).
pub const PARTIAL: i32 = 3;

/// The one rule of `etcd snapshot verify`, `status` and `restore`, shown in each one's `--help`.
pub const SNAPSHOT_EXIT_CODES: &str = "Exit codes: 0 done (verify: the snapshot is valid); 1 the snapshot is damaged: it was read and is not a valid etcd snapshot (too short, SHA-256 trailer missing or wrong, bbolt or etcd structure broken) or another failure (see the report); 2 bad usage: bad flags, or FILE cannot be opened (missing, a directory, no permission).";

/// An error that carries its own exit code. It shows as the error it wraps, whose causes stay
/// in the chain (so the report prints each of them once).
#[derive(Debug)]
pub struct CodedError {
    /// The exit code to use.
    pub code: i32,
    error: anyhow::Error,
}

impl CodedError {
    /// A bad-usage error ([`USAGE`]) with this message.
    pub fn usage(message: impl Into<String>) -> anyhow::Error {
        Self::wrap(USAGE, anyhow::Error::msg(message.into()))
    }

    /// `error` (with its causes), exiting with `code`.
    pub fn wrap(code: i32, error: impl Into<anyhow::Error>) -> anyhow::Error {
        anyhow::Error::new(CodedError {
            code,
            error: error.into(),
        })
    }
}

impl fmt::Display for CodedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The wrapped error's own message only; its causes follow in the chain.
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for CodedError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// Prints the error and its causes, each once, to stderr.
pub fn report(err: &anyhow::Error) {
    eprint!("{}", render(err));
}

/// The report: `error: ...`, then one `caused by:` line per cause. A cause whose text is
/// already part of a line above (a library that formats its source into its own message and
/// also returns it as the source) is not printed again.
pub fn render(err: &anyhow::Error) -> String {
    let mut shown = vec![err.to_string()];
    let mut out = format!("error: {err}\n");
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        if text.is_empty() || shown.iter().any(|line| line.contains(&text)) {
            continue;
        }
        out.push_str(&format!("  caused by: {text}\n"));
        shown.push(text);
    }
    out
}

/// The exit code for an error: the first code found in its chain, else [`FAILURE`].
pub fn code_for(err: &anyhow::Error) -> i32 {
    err.chain()
        .find_map(|e| e.downcast_ref::<CodedError>())
        .map_or(FAILURE, |e| e.code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer: {0}")]
    struct Repeats(#[source] std::io::Error);

    #[test]
    fn each_cause_once() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = anyhow::Error::new(Repeats(io)).context("cannot load");
        assert_eq!(
            render(&err),
            "error: cannot load\n  caused by: outer: no such file\n"
        );
    }

    #[test]
    fn codes_survive_context() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let err = CodedError::wrap(USAGE, anyhow::Error::new(io).context("cannot open x"));
        assert_eq!(code_for(&err), USAGE);
        assert_eq!(
            render(&err),
            "error: cannot open x\n  caused by: no such file\n"
        );
        let outer = err.context("restore failed");
        assert_eq!(code_for(&outer), USAGE);
        assert_eq!(code_for(&anyhow::anyhow!("plain")), FAILURE);
        assert_eq!(code_for(&CodedError::usage("bad flag")), USAGE);
    }
}

//! Values that must never be printed: passwords, tokens, private keys.
//!
//! [`Secret`] has a `Debug` that shows no part of the value and no `Display`, so a secret cannot
//! reach a log line (`?config`), an error message or a report by accident; code that needs the
//! value asks for it with [`Secret::expose`].

use std::convert::Infallible;
use std::fmt;
use std::str::FromStr;

/// A secret string (a password, a token).
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The value, for the one place that sends it where it belongs.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl From<String> for Secret {
    fn from(value: String) -> Self {
        Secret(value)
    }
}

impl FromStr for Secret {
    type Err = Infallible;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(Secret(s.to_string()))
    }
}

/// etcdctl's `--user NAME[:PASSWORD]` for a log or a `Debug`: the name, the password redacted.
pub fn redact_user(user: &str) -> String {
    match user.split_once(':') {
        Some((name, _)) => format!("{name}:<redacted>"),
        None => user.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_shows_nothing_of_the_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(s.clone())), "Some(<redacted>)");
        assert_eq!(s.expose(), "hunter2");
        assert_eq!("x".parse::<Secret>().unwrap().expose(), "x");
    }

    #[test]
    fn user_password_redacted() {
        assert_eq!(redact_user("root:hunter2"), "root:<redacted>");
        assert_eq!(redact_user("root:a:b"), "root:<redacted>");
        assert_eq!(redact_user("root"), "root");
    }
}

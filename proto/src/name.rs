//! Session names: the one rule every component (CLI, keeper, daemon, files
//! on disk) relies on.
//!
//! A name is 1 to 64 characters of `[A-Za-z0-9._-]` and does not start with
//! `.` or `-`. That makes it safe as a file name (no `/`, never `.` or `..`,
//! never hidden, never an option) and in a log line. Socket paths are not
//! derived from it verbatim (see the main crate's `paths`).

use serde::{Deserialize, Serialize};
use std::fmt;
use thiserror::Error;

/// The longest allowed session name, in bytes (all allowed characters are ASCII).
pub const MAX_NAME_LEN: usize = 64;

/// Why a string is not a session name.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum NameError {
    /// The empty string.
    #[error("session name is empty")]
    Empty,
    /// Longer than [`MAX_NAME_LEN`].
    #[error("session name is {0} characters long; the limit is {MAX_NAME_LEN}")]
    TooLong(usize),
    /// Starts with `.` or `-`.
    #[error("session name must not start with '{0}'")]
    BadStart(char),
    /// Contains a character outside `[A-Za-z0-9._-]`.
    #[error("session name contains {0:?}; allowed are letters, digits, '.', '_' and '-'")]
    BadChar(char),
}

/// A validated session name.
///
/// # Format
///
/// On the wire a JSON string; decoding validates it, so a malformed name is a
/// decode error, never a path.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct SessionName(String);

impl SessionName {
    /// Validates `s` as a session name.
    ///
    /// # Errors
    ///
    /// A [`NameError`] describing the first problem found.
    pub fn new(s: &str) -> Result<Self, NameError> {
        if s.is_empty() {
            return Err(NameError::Empty);
        }
        if s.len() > MAX_NAME_LEN {
            return Err(NameError::TooLong(s.chars().count()));
        }
        if let Some(bad) = s.chars().find(|c| !(c.is_ascii_alphanumeric() || "._-".contains(*c))) {
            return Err(NameError::BadChar(bad));
        }
        match s.chars().next() {
            Some(c @ ('.' | '-')) => Err(NameError::BadStart(c)),
            _ => Ok(Self(s.to_owned())),
        }
    }

    /// The name as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The name of a `tether check` probe session made from `nonce`:
    /// `check-` and its first 8 hex digits.
    pub fn probe(nonce: u64) -> SessionName {
        SessionName(format!("{PROBE_PREFIX}{:08x}", nonce >> 32))
    }

    /// Whether this is a name of the form `tether check` gives its probe
    /// sessions: `check-` and 8 lowercase hex digits. Only such names may
    /// be created as probes.
    pub fn is_probe(&self) -> bool {
        self.0.strip_prefix(PROBE_PREFIX).is_some_and(|hex| {
            hex.len() == 8 && hex.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
        })
    }
}

/// How a probe session's name starts ([`SessionName::probe`]).
pub const PROBE_PREFIX: &str = "check-";

impl fmt::Display for SessionName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(&self.0)
    }
}

impl TryFrom<String> for SessionName {
    type Error = NameError;
    fn try_from(s: String) -> Result<Self, NameError> {
        Self::new(&s)
    }
}

impl From<SessionName> for String {
    fn from(n: SessionName) -> String {
        n.0
    }
}

impl std::str::FromStr for SessionName {
    type Err = NameError;
    fn from_str(s: &str) -> Result<Self, NameError> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_valid_names() {
        for ok in ["a", "build", "db-migrate_2.1", "A9", &"x".repeat(64), "a..b", "x-"] {
            assert!(SessionName::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn refuses_invalid_names() {
        let cases: &[(&str, NameError)] = &[
            ("", NameError::Empty),
            ("../x", NameError::BadChar('/')),
            (".hidden", NameError::BadStart('.')),
            ("..", NameError::BadStart('.')),
            ("-rf", NameError::BadStart('-')),
            ("a b", NameError::BadChar(' ')),
            ("naïve", NameError::BadChar('ï')),
            ("a\0", NameError::BadChar('\0')),
        ];
        for (input, want) in cases {
            assert_eq!(SessionName::new(input).as_ref(), Err(want), "{input:?}");
        }
        assert_eq!(SessionName::new(&"y".repeat(65)), Err(NameError::TooLong(65)));
    }

    #[test]
    fn probe_names() {
        let p = SessionName::probe(0x0123_4567_89ab_cdef);
        assert_eq!(p.as_str(), "check-01234567");
        assert!(p.is_probe());
        for not in [
            "check-0123456",
            "check-012345678",
            "check-0123456G",
            "check-ABCDEF01",
            "xcheck-01234567",
            "check",
        ] {
            assert!(!SessionName::new(not).unwrap().is_probe(), "{not}");
        }
    }

    #[test]
    fn decoding_validates() {
        assert!(serde_json::from_str::<SessionName>("\"../etc\"").is_err());
        let n: SessionName = serde_json::from_str("\"ok\"").unwrap();
        assert_eq!(n.as_str(), "ok");
    }
}

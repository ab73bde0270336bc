//! Errors that carry an exit code.
//!
//! Commands return `anyhow::Result`; a [`Failure`] inside the chain decides
//! the exit code (PRODUCT.md's table) and is printed as one clear line.
//! Anything else is an unexpected failure: exit 1 with the whole chain.

use tether_proto::{ErrorCode, ErrorReply};

/// A deliberate, user-facing failure with its category.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[error("{message}")]
pub struct Failure {
    /// Decides the exit code.
    pub code: ErrorCode,
    /// One line for the human.
    pub message: String,
}

impl Failure {
    /// A failure of category `code`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }

    /// Invalid input (exit 2).
    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Invalid, message)
    }

    /// No such session (exit 3).
    pub fn no_such_session(name: impl std::fmt::Display) -> Self {
        Self::new(ErrorCode::NoSuchSession, format!("no session named {name}"))
    }

    /// Conflict (exit 4).
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    /// Cannot reach the keeper (exit 6).
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unavailable, message)
    }

    /// The wire form, for sending to a peer.
    pub fn to_reply(&self) -> ErrorReply {
        ErrorReply { code: self.code, message: self.message.clone() }
    }
}

impl From<ErrorReply> for Failure {
    fn from(e: ErrorReply) -> Self {
        Failure { code: e.code, message: e.message }
    }
}

/// The exit code for an error chain: a [`Failure`]'s category, else 1.
pub fn exit_code(err: &anyhow::Error) -> i32 {
    err.chain().find_map(|e| e.downcast_ref::<Failure>()).map_or(1, |f| f.code.exit_code())
}

/// The line to print for an error chain: a [`Failure`]'s own message, else
/// the whole chain.
pub fn message(err: &anyhow::Error) -> String {
    match err.chain().find_map(|e| e.downcast_ref::<Failure>()) {
        Some(f) => f.message.clone(),
        None => format!("{err:#}"),
    }
}

/// [`message`], made safe to print on a terminal: a message can quote what
/// a peer, a record or a job chose (see [`crate::term::text`]).
pub fn shown(err: &anyhow::Error) -> String {
    crate::term::text::visible(&message(err)).into_owned()
}

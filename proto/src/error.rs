//! Decoding errors: everything that makes a byte stream unusable.
//!
//! "Need more bytes" is not an error: decoders return `Ok(None)` for it. Every
//! variant here means the peer sent something invalid and the connection
//! should be dropped after reporting it.

use thiserror::Error;

/// Why a frame could not be decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// The length prefix announces more than [`crate::MAX_FRAME_LEN`] bytes.
    /// Checked before any allocation.
    #[error("frame of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The announced length.
        len: u32,
        /// The limit.
        max: u32,
    },
    /// The length prefix is zero: a frame needs at least its kind byte.
    #[error("empty frame (length 0)")]
    Empty,
    /// The kind byte names no message this version knows.
    #[error("unknown frame kind 0x{0:02x}")]
    UnknownKind(u8),
    /// The kind is known but its payload does not parse.
    #[error("malformed {kind} payload: {reason}")]
    BadPayload {
        /// The message kind, for the error message.
        kind: &'static str,
        /// What was wrong.
        reason: String,
    },
}

//! tether's byte formats: everything that outlives a process.
//!
//! This crate has no I/O. It turns bytes into typed messages and back; the
//! keeper, the CLI and the daemon own the sockets.
//!
//! # Framing
//!
//! Every message on a tether connection (CLI ↔ keeper, and later daemon ↔
//! keeper and the `tether` SSH subsystem) travels in one frame:
//!
//! ```text
//! +-------------------+-----------+------------------------------+
//! | length: u32 (BE)  | kind: u8  | payload: length - 1 bytes    |
//! +-------------------+-----------+------------------------------+
//! ```
//!
//! `length` counts the kind byte and the payload, so it is at least 1 and at
//! most [`MAX_FRAME_LEN`]. A decoder checks the length before it allocates
//! anything. Data payloads (input, output, redraw) are raw bytes; control
//! payloads are JSON objects, so fields can be added within a protocol
//! version (readers ignore fields they do not know).
//!
//! # Conversation
//!
//! 1. The client sends [`Message::Hello`]; the keeper answers
//!    [`Message::HelloReply`] or, if the versions differ,
//!    [`Message::Error`] with [`ErrorCode::VersionMismatch`] naming both, and
//!    closes. The hello frame's layout never changes, whatever the version.
//! 2. The client sends one request: [`Message::Attach`] (then the connection
//!    becomes a stream, see [`message`]) or [`Message::Request`] (answered by
//!    [`Message::Reply`] or [`Message::Error`]).
//!
//! [`frame`] holds the sans-IO framing; [`message`] the message types;
//! [`name`] the session-name rules shared by every component.
//!
//! # Files
//!
//! [`record`] defines a recording's files (segments, their names, the
//! seek index and keyframe sidecars); [`store`] the session files (record,
//! final screen, lock). The main crate opens, writes and syncs them.

pub mod audit;
pub mod error;
pub mod frame;
pub mod message;
pub mod name;
pub mod record;
pub mod store;

pub use error::DecodeError;
pub use frame::{
    FrameDecoder, MAX_DATA_LEN, MAX_FRAME_LEN, TooLargeToSend, decode, encode, encode_into,
};
pub use message::*;
pub use name::{NameError, SessionName};

/// The protocol version spoken by this build.
///
/// Bump it when a message changes meaning or layout in a way an older peer
/// would misread: a new frame kind, a changed data payload layout, a removed
/// or retyped JSON field. Adding an optional JSON field does not need a bump,
/// since readers ignore unknown fields. The hello exchange itself must stay
/// readable by every version, so that a mismatch is reported, not misparsed.
pub const PROTOCOL_VERSION: u16 = 1;

/// The SSH subsystem that carries this protocol (`ssh -s HOST tether`):
/// the daemon serves it, `tether --host` asks for it.
pub const SSH_SUBSYSTEM: &str = "tether";

/// The port a tether daemon listens on unless told otherwise.
pub const DEFAULT_SSH_PORT: u16 = 2222;

/// The server side of the hello, for every server of this protocol (a
/// keeper, the daemon's subsystem): the reply to send, or the error that
/// names both versions when they differ.
///
/// # Errors
///
/// The versions differ ([`ErrorCode::VersionMismatch`]).
pub fn answer_hello(
    hello: &HelloRequest,
    server: &str,
    session: Option<SessionName>,
) -> Result<HelloReply, ErrorReply> {
    if hello.protocol != PROTOCOL_VERSION {
        let what = if session.is_some() { "keeper" } else { "daemon" };
        return Err(ErrorReply {
            code: ErrorCode::VersionMismatch,
            message: format!(
                "protocol version mismatch: the client ({}) speaks protocol {}, this {what} ({server}) speaks protocol {PROTOCOL_VERSION}",
                hello.software, hello.protocol,
            ),
        });
    }
    Ok(HelloReply { protocol: PROTOCOL_VERSION, software: server.to_owned(), session })
}

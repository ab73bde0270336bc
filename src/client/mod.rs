//! The keeper client: the one way any part of tether reaches a session's
//! keeper. The local CLI, `ssh host COMMAND`, the SSH attach bridge, the
//! session picker and the `tether` subsystem all connect through
//! [`crate::backend::Local`], which asks [`access`] first; nothing else
//! opens a keeper socket.
//!
//! * [`KeeperClient`]: connecting, the hello (written once, here), one
//!   request; [`nonblocking`] hands the same connection to tokio tasks.
//! * [`access`]: roles and the sessions a key may reach.
//! * [`attachment`]: one attachment as a state machine with no I/O, driven
//!   by [`attach`] (the local terminal) and by the SSH bridge alike.
//! * [`cancel`]: cutting a caller's keeper connections when it goes away.

pub mod access;
pub mod attach;
pub mod attachment;
pub mod cancel;
pub mod nonblocking;

use crate::Failure;
use crate::connection::{FrameReader, FrameWriter, split};
use crate::paths::Paths;
use anyhow::{Context, Result};
use std::os::unix::net::UnixStream;
use std::time::Duration;
use tether_proto::{
    HelloReply, HelloRequest, Identity, Message, PROTOCOL_VERSION, Reply, Request, Role,
    RouteRequest, SessionName,
};

/// How long to wait for a keeper's hello reply. A stopped (SIGSTOP) keeper
/// accepts connections in the kernel but never answers.
const HELLO_TIMEOUT: Duration = Duration::from_secs(5);

/// A connection to one session's keeper, after the hello.
pub struct KeeperClient {
    /// Incoming frames.
    pub reader: FrameReader,
    /// Outgoing frames.
    pub writer: FrameWriter,
    /// What the peer said in its hello (a daemon passes a keeper's on).
    pub hello: HelloReply,
}

impl KeeperClient {
    /// Connects to `name`'s keeper and exchanges hellos. Only
    /// [`crate::backend::Local`] calls this, after the caller's rights were
    /// checked.
    ///
    /// # Errors
    ///
    /// The keeper cannot be reached (exit 6) or speaks another protocol
    /// version (exit 6, naming both).
    pub(crate) fn connect(paths: &Paths, name: &SessionName) -> Result<Self> {
        let socket = paths.socket_file(name);
        let stream = UnixStream::connect(&socket).map_err(|e| {
            Failure::unavailable(format!("cannot reach the keeper of session {name}: {e}"))
        })?;
        Self::hello(stream, &format!("the keeper of session {name}"))
    }

    /// Exchanges hellos over a connected stream (to a keeper, or to a
    /// daemon's `tether` subsystem).
    ///
    /// # Errors
    ///
    /// The peer does not answer, refuses, or speaks another protocol version.
    pub fn hello(stream: UnixStream, peer: &str) -> Result<Self> {
        let (reader, mut writer) = split(stream)?;
        reader.stream().set_read_timeout(Some(HELLO_TIMEOUT))?;
        let sent = writer.write_message(&Message::Hello(HelloRequest {
            protocol: PROTOCOL_VERSION,
            software: crate::SOFTWARE.into(),
        }));
        let placeholder = HelloReply { protocol: 0, software: String::new(), session: None };
        let mut client = KeeperClient { reader, writer, hello: placeholder };
        if let Err(e) = sent {
            // A peer that refuses us may have said why and closed before
            // our hello arrived: its reason beats "broken pipe".
            return match client.reader.read_message() {
                Ok(Some(Message::Error(reply))) => Err(Failure::from(reply).into()),
                _ => Err(e.context(format!("saying hello to {peer}"))),
            };
        }
        client.expect_hello(peer)?;
        client.reader.stream().set_read_timeout(None)?;
        Ok(client)
    }

    fn expect_hello(&mut self, peer: &str) -> Result<()> {
        match self.reader.read_message() {
            Ok(Some(Message::HelloReply(reply))) => {
                self.hello = reply;
                Ok(())
            }
            Ok(Some(Message::Error(e))) => Err(Failure::from(e).into()),
            Ok(Some(other)) => Err(Failure::unavailable(format!(
                "{peer} answered hello with frame kind {}",
                other.kind()
            ))
            .into()),
            Ok(None) | Err(_) => Err(Failure::unavailable(format!("{peer} did not answer")).into()),
        }
    }

    /// Through a daemon: from now on, talk to `name`'s keeper.
    ///
    /// # Errors
    ///
    /// The daemon refuses (no such session, no right) or the keeper cannot
    /// be reached.
    pub fn route(&mut self, name: &SessionName) -> Result<()> {
        self.writer.write_message(&Message::Route(RouteRequest { session: name.clone() }))?;
        self.expect_hello(&format!("the keeper of session {name}"))
    }

    /// Sends a request and returns the first reply.
    ///
    /// # Errors
    ///
    /// The keeper reports an error (its category decides the exit code) or
    /// the connection breaks.
    pub fn request(&mut self, request: Request) -> Result<Reply> {
        self.writer.write_message(&Message::Request(request))?;
        self.next_reply()?.ok_or_else(|| {
            Failure::unavailable("the keeper closed the connection without answering").into()
        })
    }

    /// The next reply of a multi-reply request (`tail -f`); `None` at the end.
    ///
    /// # Errors
    ///
    /// As [`KeeperClient::request`].
    pub fn next_reply(&mut self) -> Result<Option<Reply>> {
        match self.reader.read_message().context("reading the keeper's reply")? {
            Some(Message::Reply(r)) => Ok(Some(r)),
            Some(Message::Error(e)) => Err(Failure::from(e).into()),
            Some(other) => Err(Failure::unavailable(format!(
                "unexpected frame kind {} from the keeper",
                other.kind()
            ))
            .into()),
            None => Ok(None),
        }
    }
}

/// Who a local client is: the user, as owner.
pub fn local_identity() -> Identity {
    let name = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| format!("uid {}", rustix::process::getuid().as_raw()));
    Identity { name, fingerprint: None, role: Role::Owner, address: None }
}

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
    /// Nothing is sent before two checks pass: the socket directory is
    /// ours and closed to others ([`Paths::check_runtime_dir`]), and the
    /// process on the other end of the socket runs as our user
    /// (`SO_PEERCRED`). Otherwise someone else's process may be posing as
    /// the keeper, and what the user types would go to it.
    ///
    /// # Errors
    ///
    /// The socket directory is not ours or the socket's peer is another
    /// user (exit 6, saying which), the keeper cannot be reached (exit 6)
    /// or speaks another protocol version (exit 6, naming both).
    pub(crate) fn connect(paths: &Paths, name: &SessionName) -> Result<Self> {
        paths.check_runtime_dir()?;
        let socket = paths.socket_file(name);
        let stream = UnixStream::connect(&socket).map_err(|e| {
            Failure::unavailable(format!("cannot reach the keeper of session {name}: {e}"))
        })?;
        let me = rustix::process::getuid().as_raw();
        let peer = rustix::net::sockopt::socket_peercred(&stream)
            .map_err(|e| {
                Failure::unavailable(format!(
                    "cannot tell who serves the socket of session {name} ({}): {e}",
                    socket.display()
                ))
            })?
            .uid
            .as_raw();
        if peer != me {
            return Err(Failure::unavailable(format!(
                "refusing to talk to the socket of session {name} ({}): it is served by {}, not by you ({}), so it is not your session's keeper (someone may be trying to intercept it); nothing was sent",
                socket.display(),
                crate::fsutil::describe_user(peer),
                crate::fsutil::describe_user(me)
            ))
            .into());
        }
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
    Identity { name: local_user_name(), fingerprint: None, role: Role::Owner, address: None }
}

/// The local user's name, from the uid (`/etc/passwd`), never from `$USER`:
/// anything the process runs under (a job, a script) sets its environment,
/// and the name is shown to others and written to the audit log. A user
/// `/etc/passwd` does not list (a directory service) is `uid N`.
pub fn local_user_name() -> String {
    let uid = rustix::process::getuid().as_raw();
    std::fs::read_to_string("/etc/passwd")
        .ok()
        .and_then(|passwd| user_of(&passwd, uid))
        .unwrap_or_else(|| format!("uid {uid}"))
}

/// The name of `uid` in a `passwd` file's text (`name:x:uid:gid:…`). A name
/// with characters that act on a terminal is shown escaped.
fn user_of(passwd: &str, uid: u32) -> Option<String> {
    passwd.lines().find_map(|line| {
        let mut fields = line.split(':');
        let name = fields.next().filter(|n| !n.is_empty() && !n.starts_with('#'))?;
        let id = fields.nth(1)?.parse::<u32>().ok()?;
        (id == uid).then(|| crate::term::text::visible(name).into_owned())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_name_comes_from_the_passwd_line_of_the_uid() {
        let passwd = "root:x:0:0:root:/root:/bin/sh\n# comment\nalice:x:1000:1000::/home/alice:/bin/sh\nodd\x1b:x:1001:1001::/:/bin/sh\n";
        assert_eq!(user_of(passwd, 0).as_deref(), Some("root"));
        assert_eq!(user_of(passwd, 1000).as_deref(), Some("alice"));
        assert_eq!(user_of(passwd, 1001).as_deref(), Some("odd\\e"));
        assert_eq!(user_of(passwd, 4242), None);
        assert_eq!(user_of("broken", 0), None);
    }
}

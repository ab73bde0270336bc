//! One connection to a keeper: the hello, one request, and for an
//! attachment the two-way stream.
//!
//! Each connection has a thread (reading from the client) and, while
//! attached or following, a writer thread (draining the outbox). Neither
//! ever blocks the PTY reader.

use super::Keeper;
use super::fanout::{BATCH_MAX_BYTES, CLIENT_OUTBOX_MAX_BYTES, Next, Outbox};
use crate::Failure;
use crate::connection::{FrameReader, FrameWriter, split};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::time::Duration;
use tether_proto::{AttachMode, AttachRequest, ErrorCode, ErrorReply, Message, Reply, Request};

/// How long a client has to say hello and make its request: a peer that
/// connects and says nothing must not hold a thread forever.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// How many lines' worth of bytes go into one text reply, well under the
/// frame limit.
const TEXT_CHUNK_BYTES: usize = 256 * 1024;

/// Serves one accepted connection to completion.
pub fn serve(keeper: Arc<Keeper>, stream: UnixStream) {
    let (mut reader, mut writer) = match split(stream) {
        Ok(halves) => halves,
        Err(e) => {
            tracing::warn!("accepting a connection: {e:#}");
            return;
        }
    };
    let peer = match check_peer(reader.stream()) {
        Ok(pid) => pid,
        Err(failure) => {
            let _ = writer.write_message(&Message::Error(failure.to_reply()));
            linger_after_refusal(&mut reader);
            return;
        }
    };
    let request = match handshake(&keeper, &mut reader, &mut writer) {
        Ok(Some(r)) => r,
        Ok(None) => return,
        Err(e) => {
            tracing::debug!("handshake failed: {e:#}");
            return;
        }
    };
    let _ = reader.stream().set_read_timeout(None);
    super::panics::test_point("conn");
    match request {
        Message::Attach(req) => attach(&keeper, &req, peer, reader, writer),
        Message::Request(req) => {
            // Counted like a writer, so that a keeper ending its job waits
            // for this reply (to kill or wait) before it exits.
            keeper.writer_started();
            control(&keeper, req, peer, writer);
            keeper.writer_finished();
        }
        other => {
            let message =
                format!("expected an attach or a request, got frame kind {}", other.kind());
            let _ = writer.write_message(&error(ErrorCode::Invalid, message));
        }
    }
}

/// How long a refused peer may keep writing before the keeper closes.
/// Closing at once would race the peer's hello: its write would fail with
/// EPIPE before it reads why it was refused.
const REFUSAL_LINGER: Duration = Duration::from_secs(2);

/// At most this many bytes are read (and thrown away) from a refused peer.
const REFUSAL_DRAIN_BYTES: usize = 64 * 1024;

/// Half-closes a refused connection and reads (discarding) what the peer
/// still sends, until it closes, a bound or a deadline, so that the peer
/// sees the refusal rather than a broken pipe.
fn linger_after_refusal(reader: &mut FrameReader) {
    use std::io::Read;
    let mut stream = reader.stream();
    let _ = stream.shutdown(Shutdown::Write);
    let _ = stream.set_read_timeout(Some(REFUSAL_LINGER));
    let deadline = std::time::Instant::now() + REFUSAL_LINGER;
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < REFUSAL_DRAIN_BYTES && std::time::Instant::now() < deadline {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Only the keeper's own user may talk to it. Returns the peer's pid
/// (whether it runs inside a session is audited).
fn check_peer(stream: &UnixStream) -> Result<u32, Failure> {
    let ours = rustix::process::getuid();
    match rustix::net::sockopt::socket_peercred(stream) {
        Ok(cred) if cred.uid == ours => Ok(cred.pid.as_raw_nonzero().get().unsigned_abs()),
        Ok(cred) => {
            tracing::warn!(uid = cred.uid.as_raw(), "refused a connection from another user");
            Err(Failure::new(ErrorCode::Refused, "this session belongs to another user"))
        }
        Err(e) => Err(Failure::new(ErrorCode::Refused, format!("cannot identify the peer: {e}"))),
    }
}

/// Reads the hello and the request. `Ok(None)` when the client left or was
/// refused (already told why).
fn handshake(
    keeper: &Keeper,
    reader: &mut FrameReader,
    writer: &mut FrameWriter,
) -> anyhow::Result<Option<Message>> {
    reader.stream().set_read_timeout(Some(HANDSHAKE_TIMEOUT))?;
    let hello = match reader.read_message() {
        Ok(Some(Message::Hello(h))) => h,
        Ok(Some(other)) => {
            let msg = format!("expected hello, got frame kind {}", other.kind());
            writer.write_message(&error(ErrorCode::Invalid, msg))?;
            return Ok(None);
        }
        Ok(None) => return Ok(None),
        Err(e) => {
            writer.write_message(&error(ErrorCode::Invalid, format!("{e:#}")))?;
            return Ok(None);
        }
    };
    match tether_proto::answer_hello(&hello, crate::SOFTWARE, Some(keeper.name().clone())) {
        Ok(reply) => writer.write_message(&Message::HelloReply(reply))?,
        Err(refusal) => {
            writer.write_message(&Message::Error(refusal))?;
            return Ok(None);
        }
    }
    match reader.read_message() {
        Ok(m) => Ok(m),
        Err(e) => {
            writer.write_message(&error(ErrorCode::Invalid, format!("{e:#}")))?;
            Ok(None)
        }
    }
}

fn error(code: ErrorCode, message: String) -> Message {
    Message::Error(ErrorReply { code, message })
}

fn attach(
    keeper: &Arc<Keeper>,
    req: &AttachRequest,
    peer: u32,
    mut reader: FrameReader,
    writer: FrameWriter,
) {
    if req.mode == AttachMode::ReadOnly
        && keeper.needs_consent()
        && let Err(f) = keeper.ask_consent(&req.identity)
    {
        let mut writer = writer;
        let _ = writer.write_message(&Message::Error(f.to_reply()));
        return;
    }
    let outbox = match req.mode {
        AttachMode::Interactive => Outbox::with_capacity(CLIENT_OUTBOX_MAX_BYTES),
        AttachMode::ReadOnly => Outbox::new(),
    };
    let outbox = Arc::new(match writer.stream().try_clone() {
        Ok(socket) => outbox.with_socket(socket),
        Err(_) => outbox,
    });
    let id = match keeper.attach(req, &outbox, peer) {
        Ok(id) => id,
        Err(f) => {
            let mut writer = writer;
            let _ = writer.write_message(&Message::Error(f.to_reply()));
            return;
        }
    };
    spawn_writer(keeper, id, &outbox, writer);
    loop {
        match reader.read_message() {
            Ok(Some(Message::Input(bytes))) => keeper.input_from(id, bytes),
            Ok(Some(Message::Resize(size))) => keeper.resize_from(id, size),
            Ok(Some(Message::Detach) | None) => break,
            Ok(Some(other)) => {
                tracing::warn!(id, kind = other.kind(), "unexpected frame from a client");
                break;
            }
            Err(e) => {
                tracing::debug!(id, "client connection: {e:#}");
                break;
            }
        }
    }
    keeper.detach(id);
    outbox.close();
}

/// Drains `outbox` to the client on its own thread.
fn spawn_writer(keeper: &Arc<Keeper>, id: u64, outbox: &Arc<Outbox>, mut writer: FrameWriter) {
    let (keeper, outbox) = (keeper.clone(), outbox.clone());
    keeper.writer_started();
    let spawned = std::thread::Builder::new().name(format!("client-{id}")).spawn({
        let keeper = keeper.clone();
        move || {
            loop {
                match outbox.next() {
                    Next::Send(msg) => {
                        super::panics::test_point("client");
                        // Whatever else is already queued goes in the same write.
                        let sent = writer.write_batch(&msg, BATCH_MAX_BYTES, || outbox.try_pop());
                        if sent.is_err() {
                            break;
                        }
                    }
                    Next::Rest(bytes) => {
                        if writer.write_raw(&bytes).is_err() {
                            break;
                        }
                    }
                    Next::Resync => keeper.resync(id, &outbox),
                    Next::Changed => {}
                    Next::Closed => break,
                }
            }
            // Wake the reading side if the client vanished while we wrote.
            let _ = writer.stream().shutdown(Shutdown::Both);
            outbox.close();
            keeper.detach(id);
            keeper.writer_finished();
        }
    });
    if let Err(e) = spawned {
        tracing::error!("starting a writer thread: {e}");
        keeper.writer_finished();
        keeper.detach(id);
    }
}

fn control(keeper: &Arc<Keeper>, req: Request, peer: u32, mut writer: FrameWriter) {
    let reply = match req {
        Request::Info => Ok(Reply::Info { session: keeper.info() }),
        Request::List => Ok(Reply::List { sessions: vec![keeper.info()] }),
        Request::Who => Ok(Reply::Who { attachments: keeper.who() }),
        Request::Kill { force } => keeper.kill(force).map(|exit| Reply::Exited { exit }),
        Request::Wait => Ok(keeper
            .wait_exit(None)
            .map_or_else(|| Reply::Info { session: keeper.info() }, |exit| Reply::Exited { exit })),
        Request::Tail { lines, follow: false } => {
            let text = keeper.text(lines.map(|n| n as usize));
            let _ = send_text(&mut writer, text);
            return;
        }
        Request::Tail { lines, follow: true } => {
            follow(keeper, lines.map(|n| n as usize), writer);
            return;
        }
        Request::Snapshot(req) => keeper.snapshot(&req, peer).map(|path| Reply::Snapshot { path }),
        Request::Freeze => keeper.freeze("freeze", peer).map(|()| Reply::Done),
        Request::Thaw => keeper.thaw("thaw", peer).map(|()| Reply::Done),
        Request::Create(_)
        | Request::Health { .. }
        | Request::Lookup { .. }
        | Request::Remove { .. }
        | Request::FinalScreen { .. }
        | Request::Authorize { .. } => {
            Err(Failure::invalid("that request is for a daemon, not a session's keeper"))
        }
    };
    let msg = match reply {
        Ok(r) => Message::Reply(r),
        Err(f) => Message::Error(f.to_reply()),
    };
    let _ = writer.write_message(&msg);
}

/// Sends `lines` as one or more text replies (at least one, even if empty).
/// A logical line longer than [`TEXT_CHUNK_BYTES`] (a job that printed
/// megabytes without a newline) goes out in pieces of that size, one a
/// line, so that no frame exceeds the protocol's limit.
fn send_text(writer: &mut FrameWriter, lines: Vec<String>) -> anyhow::Result<()> {
    let mut chunk = Vec::new();
    let mut bytes = 0;
    for line in lines.into_iter().flat_map(split_long) {
        bytes += line.len() + 8;
        chunk.push(line);
        if bytes >= TEXT_CHUNK_BYTES {
            writer.write_message(&Message::Reply(Reply::Text {
                lines: std::mem::take(&mut chunk),
            }))?;
            bytes = 0;
        }
    }
    writer.write_message(&Message::Reply(Reply::Text { lines: chunk }))
}

/// `line` in pieces of at most [`TEXT_CHUNK_BYTES`], cut at characters.
fn split_long(line: String) -> Vec<String> {
    if line.len() <= TEXT_CHUNK_BYTES {
        return vec![line];
    }
    let mut pieces = Vec::new();
    let mut rest = line.as_str();
    while !rest.is_empty() {
        let mut cut = rest.len().min(TEXT_CHUNK_BYTES);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        pieces.push(rest[..cut].to_owned());
        rest = &rest[cut..];
    }
    pieces
}

/// `tail -f`: completed lines as they appear, then the job's exit.
fn follow(keeper: &Arc<Keeper>, lines: Option<usize>, mut writer: FrameWriter) {
    let outbox = Arc::new(Outbox::notify_only());
    let Some((initial, mut next)) = keeper.follow(&outbox, lines) else {
        let _ = send_text(&mut writer, keeper.text(lines));
        return;
    };
    if send_text(&mut writer, initial).is_err() {
        keeper.unfollow(&outbox);
        return;
    }
    loop {
        let closed = outbox.next() == Next::Closed;
        let (text, after) = keeper.completed_lines(next, closed);
        next = after;
        if !text.is_empty() && send_text(&mut writer, text).is_err() {
            break;
        }
        if closed {
            if let Some(exit) = keeper.wait_exit(Some(Duration::ZERO)) {
                let _ = writer.write_message(&Message::Reply(Reply::Exited { exit }));
            }
            break;
        }
    }
    keeper.unfollow(&outbox);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lines_are_cut_at_characters_and_nothing_is_lost() {
        let line = "é".repeat(TEXT_CHUNK_BYTES);
        let pieces = split_long(line.clone());
        assert!(pieces.len() > 1);
        assert!(pieces.iter().all(|p| p.len() <= TEXT_CHUNK_BYTES));
        assert_eq!(pieces.concat(), line);
        assert_eq!(split_long("short".into()), ["short"]);
    }
}

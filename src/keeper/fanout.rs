//! Outboxes: the bounded, lossy queues between the PTY reader and each
//! attachment.
//!
//! The PTY reader thread pushes every piece of output into every outbox
//! while it holds the session lock; it never waits for a client. Each
//! attachment has a writer thread that pops from its outbox and writes to
//! the socket, waiting on the client as long as it likes.
//!
//! When nothing is queued and the writer thread is idle, the producer
//! writes the frame to the socket itself, without waiting (a non-blocking
//! send): an echo then costs no thread hand-off. What the socket does not
//! take at once (the rest of a frame, or the whole of it) goes to the
//! writer thread, which sends the rest of a frame before anything else.
//!
//! When an outbox would exceed its capacity, its queue is dropped
//! and it is marked for resync: the writer then takes a fresh redraw from
//! the screen model (under the session lock, so no output is lost or
//! repeated between the redraw and what follows) and carries on. A stalled
//! client therefore costs at most one outbox of memory and never slows the
//! job.

use std::collections::VecDeque;
use std::os::unix::net::UnixStream;
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use tether_proto::{Message, encode_into};

/// Output queued for one watcher before it is resynchronised instead.
///
/// 1 MiB holds several screens of even colourful output, so an attentive
/// watcher on a slow link rarely needs a redraw, while 50 stalled watchers
/// still cost only 50 MiB at worst.
pub const OUTBOX_MAX_BYTES: usize = 1 << 20;

/// Output queued for one interactive client. Larger than a watcher's: a
/// live client is fed straight from the PTY reader, and a job flooding at
/// 50 MB/s fills 1 MiB in 20 ms, less than a client loses to the
/// scheduler on a busy two-core machine. An overflow costs a live client
/// dearly during a flood: its redraw is taken where the parser is, and it
/// then catches up at the parser's pace. With 8 MiB (160 ms of a flood)
/// about one 100 MiB flood in two overflowed on a two-core machine and its
/// last byte came 0.7 to 1.7 s after the job's end; 32 MiB rode out every
/// one measured (docs/PERFORMANCE.md). There are few interactive clients,
/// and the memory is used only while one is behind (the chunks are shared
/// with the recorder and the parser's backlog).
pub const CLIENT_OUTBOX_MAX_BYTES: usize = 32 << 20;

/// The most output a writer thread sends in one write: fewer system calls
/// and wake-ups when a client is behind, without holding up the first byte.
pub const BATCH_MAX_BYTES: usize = 256 * 1024;

/// What a writer thread gets next.
// Returned by value once per message; boxing would cost an allocation each.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, PartialEq)]
pub enum Next {
    /// A message to send.
    Send(Message),
    /// The rest of a frame the producer began writing itself: send these
    /// bytes before anything else.
    Rest(Vec<u8>),
    /// The queue overflowed: send a fresh redraw, then continue.
    Resync,
    /// Output happened (notify-only outboxes, used by `tail -f`).
    Changed,
    /// The outbox is closed and empty: finish.
    Closed,
}

#[derive(Debug, Default)]
struct Inner {
    queue: VecDeque<Message>,
    bytes: usize,
    resync: bool,
    changed: bool,
    closed: bool,
    /// The writer thread has taken something and is writing it: the
    /// producer must not write to the socket meanwhile.
    busy: bool,
    /// The unsent end of a frame the producer wrote in part.
    rest: Option<Vec<u8>>,
    /// Encoding space for the producer's own writes.
    scratch: Vec<u8>,
}

/// One attachment's queue. Shared by the reader (producer) and the
/// attachment's writer thread (consumer).
#[derive(Debug)]
pub struct Outbox {
    inner: Mutex<Inner>,
    ready: Condvar,
    /// Only records that output happened, queues nothing (`tail -f`).
    notify_only: bool,
    /// Queued output bytes beyond which the queue is dropped for a resync.
    capacity: usize,
    /// The attachment's socket, for the producer's own non-blocking writes.
    direct: Option<UnixStream>,
}

impl Default for Outbox {
    fn default() -> Self {
        Outbox {
            inner: Mutex::default(),
            ready: Condvar::new(),
            notify_only: false,
            capacity: OUTBOX_MAX_BYTES,
            direct: None,
        }
    }
}

impl Outbox {
    /// An outbox that queues messages (a watcher's capacity).
    pub fn new() -> Self {
        Self::default()
    }

    /// An outbox that queues up to `capacity` bytes of output.
    pub fn with_capacity(capacity: usize) -> Self {
        Outbox { capacity, ..Self::default() }
    }

    /// Lets the producer write to `socket` itself while nothing is queued.
    pub fn with_socket(self, socket: UnixStream) -> Self {
        Outbox { direct: Some(socket), ..self }
    }

    /// An outbox that only records that something changed.
    pub fn notify_only() -> Self {
        Outbox { notify_only: true, ..Self::default() }
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A writer that panicked cannot leave the queue inconsistent (every
        // update is a single field write), so a poisoned lock is still usable.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues output; never blocks. On overflow the queue is dropped and a
    /// resync requested.
    pub fn push_output(&self, msg: Message) {
        let mut inner = self.lock();
        if inner.closed {
            return;
        }
        if self.notify_only {
            inner.changed = true;
        } else if inner.resync {
            // Everything queued will be replaced by the redraw anyway.
        } else if self.write_directly(&mut inner, &msg) {
            return;
        } else {
            let len = message_len(&msg);
            if inner.bytes + len > self.capacity {
                // Output goes (the redraw replaces it); control messages,
                // the attach reply among them, stay.
                inner.queue.retain(|m| !is_output(m));
                inner.bytes = queued_bytes(&inner);
                inner.resync = true;
            } else {
                inner.bytes += len;
                inner.queue.push_back(msg);
            }
        }
        drop(inner);
        self.ready.notify_one();
    }

    /// Writes `msg` to the socket from the producer's thread if nothing is
    /// queued or being written and the socket takes it without waiting.
    /// Returns whether the whole frame went; a part that did not is left
    /// for the writer thread.
    fn write_directly(&self, inner: &mut Inner, msg: &Message) -> bool {
        let Some(socket) = &self.direct else { return false };
        if inner.busy || inner.rest.is_some() || !inner.queue.is_empty() {
            return false;
        }
        let mut frame = std::mem::take(&mut inner.scratch);
        frame.clear();
        if encode_into(msg, &mut frame).is_err() {
            inner.scratch = frame;
            return false;
        }
        let flags = rustix::net::SendFlags::DONTWAIT | rustix::net::SendFlags::NOSIGNAL;
        // Full, or the client is gone (the writer thread finds out): 0.
        let sent = rustix::net::send(socket, &frame, flags).unwrap_or_default();
        let done = if sent == frame.len() {
            true
        } else if sent > 0 {
            inner.rest = Some(frame[sent..].to_vec());
            inner.bytes += frame.len() - sent;
            self.ready.notify_one();
            true
        } else {
            false
        };
        if frame.capacity() <= BATCH_MAX_BYTES {
            inner.scratch = frame;
        }
        done
    }

    /// Queues a control message (notice, exit) that must not be dropped by
    /// an overflow; these are rare and small.
    pub fn push_control(&self, msg: Message) {
        let mut inner = self.lock();
        if !inner.closed {
            inner.queue.push_back(msg);
        }
        drop(inner);
        self.ready.notify_one();
    }

    /// Replaces everything queued with `msgs` (a redraw) and clears the
    /// resync mark. Called with the session lock held, so that nothing the
    /// reader pushes can slip between the redraw and the queue.
    pub fn reset_with(&self, msgs: impl IntoIterator<Item = Message>) {
        let mut inner = self.lock();
        inner.queue.retain(|m| !is_output(m));
        // An attach reply not yet sent stays first: clients expect it so.
        let at = inner.queue.iter().take_while(|m| matches!(m, Message::AttachReply(_))).count();
        for (i, m) in msgs.into_iter().enumerate() {
            inner.queue.insert(at + i, m);
        }
        inner.bytes = queued_bytes(&inner);
        inner.resync = false;
        drop(inner);
        self.ready.notify_one();
    }

    /// No more messages will be accepted; the writer finishes once the queue
    /// is empty.
    pub fn close(&self) {
        self.lock().closed = true;
        self.ready.notify_all();
    }

    /// Whether [`Outbox::close`] was called.
    pub fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// The next queued message if there is one and no resync is due;
    /// never waits. For a writer batching what is already queued.
    pub fn try_pop(&self) -> Option<Message> {
        let mut inner = self.lock();
        if inner.resync || inner.rest.is_some() {
            return None;
        }
        let msg = inner.queue.pop_front()?;
        inner.bytes = inner.bytes.saturating_sub(message_len(&msg));
        Some(msg)
    }

    /// Waits for the next thing to do.
    ///
    /// Calling it again means the previous message has been written: until
    /// something is taken, the producer may write to the socket itself.
    pub fn next(&self) -> Next {
        let mut inner = self.lock();
        inner.busy = false;
        loop {
            // The rest of a frame comes first: even a resync must not cut
            // a frame in two.
            if let Some(rest) = inner.rest.take() {
                inner.bytes = inner.bytes.saturating_sub(rest.len());
                inner.busy = true;
                return Next::Rest(rest);
            }
            // Also when closed: a client told of the job's end still gets
            // the final screen (the keeper clears the mark of an
            // attachment that is gone).
            if inner.resync {
                return Next::Resync;
            }
            if let Some(msg) = inner.queue.pop_front() {
                inner.bytes = inner.bytes.saturating_sub(message_len(&msg));
                inner.busy = true;
                return Next::Send(msg);
            }
            if inner.changed {
                inner.changed = false;
                return Next::Changed;
            }
            if inner.closed {
                return Next::Closed;
            }
            inner = self.ready.wait(inner).unwrap_or_else(PoisonError::into_inner);
        }
    }
}

/// What `inner` holds, in [`message_len`] units.
fn queued_bytes(inner: &Inner) -> usize {
    inner.queue.iter().map(message_len).sum::<usize>() + inner.rest.as_ref().map_or(0, Vec::len)
}

fn is_output(m: &Message) -> bool {
    matches!(m, Message::Output(_) | Message::Redraw(_))
}

fn message_len(m: &Message) -> usize {
    match m {
        Message::Output(b) | Message::Redraw(b) => b.len(),
        _ => 64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;
    use tether_proto::Notice;

    fn out(n: usize) -> Message {
        Message::Output(Bytes::from(vec![b'x'; n]))
    }

    #[test]
    fn delivers_in_order_then_closes() {
        let o = Outbox::new();
        o.push_output(out(1));
        o.push_output(out(2));
        o.close();
        o.push_output(out(3));
        assert_eq!(o.next(), Next::Send(out(1)));
        assert_eq!(o.next(), Next::Send(out(2)));
        assert_eq!(o.next(), Next::Closed);
    }

    #[test]
    fn overflow_drops_queue_and_asks_for_resync() {
        let o = Outbox::new();
        for _ in 0..(OUTBOX_MAX_BYTES / 1000 + 5) {
            o.push_output(out(1000));
        }
        let notice = Message::Notice(Notice { text: "n".into(), clients: None, watchers: None });
        o.push_control(notice.clone());
        assert_eq!(o.next(), Next::Resync);
        o.reset_with([Message::Redraw(Bytes::from_static(b"R"))]);
        o.push_output(out(1));
        assert_eq!(o.next(), Next::Send(Message::Redraw(Bytes::from_static(b"R"))));
        assert_eq!(o.next(), Next::Send(notice));
        assert_eq!(o.next(), Next::Send(out(1)));
    }

    #[test]
    fn memory_stays_bounded_under_a_stalled_consumer() {
        let o = Outbox::new();
        for _ in 0..10_000 {
            o.push_output(out(4096));
        }
        assert!(o.lock().bytes <= OUTBOX_MAX_BYTES);
    }

    #[test]
    fn try_pop_takes_what_is_queued_and_never_waits() {
        let o = Outbox::with_capacity(10);
        assert_eq!(o.try_pop(), None);
        o.push_output(out(4));
        o.push_output(out(4));
        assert_eq!(o.try_pop(), Some(out(4)));
        o.push_output(out(8));
        // Over capacity: a resync is due, nothing more to batch.
        assert_eq!(o.try_pop(), None);
        assert_eq!(o.next(), Next::Resync);
    }

    #[test]
    fn an_idle_outbox_writes_itself_and_leaves_the_rest_of_a_frame_first() {
        use std::io::Read;
        use tether_proto::FrameDecoder;
        let (ours, mut peer) = UnixStream::pair().unwrap();
        let o =
            Outbox::with_capacity(CLIENT_OUTBOX_MAX_BYTES).with_socket(ours.try_clone().unwrap());
        // Idle: the frame is on the socket at once, nothing is queued.
        o.push_output(out(3));
        let mut buf = vec![0u8; 1 << 20];
        let n = peer.read(&mut buf).unwrap();
        let mut dec = FrameDecoder::new();
        dec.extend(&buf[..n]);
        assert_eq!(dec.next_message().unwrap(), Some(out(3)));
        assert!(o.try_pop().is_none());
        // A peer that does not read: the socket fills, a frame is cut, and
        // its rest comes before anything queued after it.
        let mut pushed = 0;
        while o.lock().rest.is_none() {
            o.push_output(out(60_000));
            pushed += 1;
            assert!(pushed < 1000, "the socket never filled");
        }
        o.push_output(out(5));
        assert!(o.try_pop().is_none(), "nothing overtakes the rest of a frame");
        let Next::Rest(rest) = o.next() else { panic!("the rest of the frame first") };
        // The writer thread is busy now: nothing more is written directly.
        o.push_output(out(7));
        assert_eq!(o.lock().queue.len(), 2);
        // What the peer reads, with the rest and the queue, is whole frames in order.
        peer.set_nonblocking(true).unwrap();
        let mut dec = FrameDecoder::new();
        while let Ok(n) = peer.read(&mut buf) {
            dec.extend(&buf[..n]);
        }
        dec.extend(&rest);
        for _ in 0..pushed {
            assert_eq!(dec.next_message().unwrap(), Some(out(60_000)));
        }
        assert_eq!(dec.next_message().unwrap(), None);
        assert_eq!(o.next(), Next::Send(out(5)));
        assert_eq!(o.next(), Next::Send(out(7)));
    }

    #[test]
    fn a_closed_outbox_still_resyncs_then_closes() {
        // A client that fell behind just before the job ended still gets
        // the final screen, then the exit; once the mark is cleared (the
        // keeper does so even for an attachment that is gone, or the
        // writer would spin) the outbox closes.
        let o = Outbox::with_capacity(10);
        o.push_output(out(20));
        let exit = Message::Notice(Notice { text: "end".into(), clients: None, watchers: None });
        o.push_control(exit.clone());
        o.close();
        assert_eq!(o.next(), Next::Resync);
        o.reset_with([Message::Redraw(Bytes::from_static(b"R"))]);
        assert_eq!(o.next(), Next::Send(Message::Redraw(Bytes::from_static(b"R"))));
        assert_eq!(o.next(), Next::Send(exit));
        assert_eq!(o.next(), Next::Closed);
    }

    #[test]
    fn an_overflow_keeps_control_messages() {
        // Regression: an overflow right after attaching dropped the attach
        // reply with the output, and the client took the session for lost.
        let o = Outbox::with_capacity(100);
        let session = serde_json::from_value(serde_json::json!({
            "name": "s", "state": "running", "frozen": false, "pid": 1, "keeper_pid": 2,
            "exit_code": null, "signal": null, "started": null, "ended": null, "cols": 80,
            "rows": 24, "clients": 1, "watchers": 0, "protected": false, "recording": "off",
            "recording_path": null
        }));
        let reply = Message::AttachReply(tether_proto::AttachReply { session: session.unwrap() });
        let notice = Message::Notice(Notice { text: "n".into(), clients: None, watchers: None });
        o.reset_with([reply.clone(), Message::Redraw(Bytes::from_static(b"first"))]);
        o.push_control(notice.clone());
        o.push_output(out(60));
        o.push_output(out(60));
        assert_eq!(o.next(), Next::Resync);
        o.reset_with([Message::Redraw(Bytes::from_static(b"R"))]);
        assert_eq!(o.next(), Next::Send(reply), "the attach reply stays first");
        assert_eq!(o.next(), Next::Send(Message::Redraw(Bytes::from_static(b"R"))));
        assert_eq!(o.next(), Next::Send(notice));
    }

    #[test]
    fn notify_only_coalesces() {
        let o = Outbox::notify_only();
        o.push_output(out(10));
        o.push_output(out(10));
        assert_eq!(o.next(), Next::Changed);
        o.close();
        assert_eq!(o.next(), Next::Closed);
    }

    #[test]
    fn wakes_a_waiting_writer() {
        let o = std::sync::Arc::new(Outbox::new());
        let o2 = o.clone();
        let t = std::thread::spawn(move || o2.next());
        o.push_output(out(5));
        assert_eq!(t.join().unwrap(), Next::Send(out(5)));
    }
}

//! Input to the job: what clients type and the keeper's answers to the
//! job's terminal queries, written to the PTY in the order they come.
//!
//! A write to the PTY blocks when the job does not read its input (the
//! terminal's input buffer holds about 4 KiB), so it must never happen on
//! a thread that others wait for. A keystroke is written straight from
//! its client's connection thread when nothing else is waiting to be
//! written and the PTY has room (one thread hand-off fewer on every
//! echo); otherwise it joins a bounded queue that the `pty-writer` thread
//! drains. Only the typing client's thread can be held up by a job that
//! does not read, and only once the queue is full.
//!
//! The PTY writer lives as long as the keeper: dropping portable-pty's
//! writer sends EOF to the job.

use bytes::Bytes;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::sync::{Mutex, PoisonError};

/// Input chunks queued for the PTY writer; a job that does not read its
/// input makes typing clients wait rather than the keeper grow.
const QUEUE_CAP: usize = 256;

/// The largest input written directly: typing, not a paste, so that room
/// in the PTY (checked just before) is room enough.
const DIRECT_MAX: usize = 256;

/// The way into the job's terminal.
pub struct PtyInput {
    /// The PTY master's writing end; held while one chunk is written.
    writer: Mutex<Box<dyn Write + Send>>,
    /// Chunks waiting for the `pty-writer` thread.
    queue: SyncSender<Bytes>,
    /// Chunks queued and not yet written: a direct write may only overtake
    /// nothing.
    queued: AtomicUsize,
}

impl PtyInput {
    /// Input through `writer`; the receiver is for [`PtyInput::pump`].
    pub fn new(writer: Box<dyn Write + Send>) -> (PtyInput, Receiver<Bytes>) {
        let (queue, rx) = sync_channel(QUEUE_CAP);
        (PtyInput { writer: Mutex::new(writer), queue, queued: AtomicUsize::new(0) }, rx)
    }

    /// Writes `bytes` to the job, after anything already waiting; `ready`
    /// says whether the PTY takes input without waiting. Blocks the caller
    /// (and only it) when the queue is full.
    pub fn send(&self, bytes: Bytes, ready: impl FnOnce() -> bool) {
        if self.queued.load(Ordering::SeqCst) == 0
            && bytes.len() <= DIRECT_MAX
            && ready()
            && let Ok(mut writer) = self.writer.try_lock()
            // Checked again under the lock: a chunk queued meanwhile goes first.
            && self.queued.load(Ordering::SeqCst) == 0
        {
            write_chunk(&mut **writer, &bytes);
            return;
        }
        self.queued.fetch_add(1, Ordering::SeqCst);
        if self.queue.send(bytes).is_err() {
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// Queues `bytes` without ever waiting (the keeper's own answers: if
    /// the queue is full the job is not reading anyway). Returns whether
    /// it was queued.
    pub fn try_send(&self, bytes: Bytes) -> bool {
        self.queued.fetch_add(1, Ordering::SeqCst);
        match self.queue.try_send(bytes) {
            Ok(()) => true,
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.queued.fetch_sub(1, Ordering::SeqCst);
                false
            }
        }
    }

    /// The `pty-writer` thread: writes queued chunks in order, for the
    /// keeper's whole life.
    pub fn pump(&self, rx: &Receiver<Bytes>) {
        for bytes in rx {
            super::panics::test_point("pty-writer");
            let mut writer = self.writer.lock().unwrap_or_else(PoisonError::into_inner);
            write_chunk(&mut **writer, &bytes);
            drop(writer);
            self.queued.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

fn write_chunk(writer: &mut dyn Write, bytes: &[u8]) {
    // An error means the job is gone: the input has nowhere to go, and
    // clients must not block on it.
    let _ = writer.write_all(bytes).and_then(|()| writer.flush());
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    /// A writer that records what reaches it.
    #[derive(Clone, Default)]
    struct Sink(Arc<Mutex<Vec<u8>>>);

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn direct_and_queued_writes_keep_their_order() {
        let sink = Sink::default();
        let (input, rx) = PtyInput::new(Box::new(sink.clone()));
        let input = Arc::new(input);
        // Nothing queued: written at once, no pump needed.
        input.send(Bytes::from_static(b"a"), || true);
        assert_eq!(&*sink.0.lock().unwrap(), b"a");
        // A PTY without room: queued (the pump is not running yet).
        input.send(Bytes::from_static(b"b"), || false);
        assert_eq!(&*sink.0.lock().unwrap(), b"a");
        // Something queued: later input waits behind it.
        input.send(Bytes::from_static(b"c"), || true);
        assert_eq!(&*sink.0.lock().unwrap(), b"a");
        let pump = {
            let input = input.clone();
            std::thread::spawn(move || input.pump(&rx))
        };
        while sink.0.lock().unwrap().len() < 3 {
            std::thread::yield_now();
        }
        assert_eq!(&*sink.0.lock().unwrap(), b"abc");
        input.send(Bytes::from_static(b"d"), || true);
        assert_eq!(&*sink.0.lock().unwrap(), b"abcd");
        // A paste is never written directly.
        input.send(Bytes::from(vec![b'p'; DIRECT_MAX + 1]), || true);
        while sink.0.lock().unwrap().len() < 4 + DIRECT_MAX + 1 {
            std::thread::yield_now();
        }
        drop(input);
        let _ = pump.is_finished();
    }
}

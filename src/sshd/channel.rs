//! One session channel between the connection's handler and the program
//! serving it (a command, the picker, the subsystem).
//!
//! russh runs a connection as one loop that calls the handler for every
//! message of every channel, so the handler must never wait on one
//! channel's program: that would stall the other channels and the
//! keepalives. And russh grants the client more window as data arrives,
//! whether or not anyone consumed it, so the window cannot hold a client
//! back. Hence:
//!
//! * **Input** goes through a queue bounded in bytes per channel
//!   ([`input_queue`]): [`InputSender::offer`] never waits; it reports a
//!   full queue, and the handler fails that channel alone. A program that
//!   reads no input drops its receiver, and what the client sends is
//!   discarded as it arrives.
//! * **Output** ([`Output`]) is written with SSH flow control (waiting for
//!   the client's window) and gives up the moment the channel is gone,
//!   instead of waiting for a window that will never open.
//! * **Lifetime**: the handler holds the channel's [`Line`]; dropping it
//!   (the client closed the channel, or the connection is gone) hangs up:
//!   every [`Output`] call fails at once, the input queue ends, and the
//!   keeper connections made for the channel (watched by its
//!   [`Cancel`]) are shut down, so a command blocked on a keeper returns
//!   and releases its thread and sockets. The program's [`Output`] marks
//!   the channel ended when it is dropped, which is how the handler learns
//!   that a channel it closed itself no longer counts.

use super::Input;
use crate::client::cancel::Cancel;
use bytes::Bytes;
use russh::ChannelWriteHalf;
use russh::server::Msg;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{mpsc, watch};

/// Input bytes queued for one channel at most: the window russh grants a
/// client (its default `window_size`), so a client that respects flow
/// control and a program that keeps up never meet the bound.
pub const INPUT_LIMIT: usize = 2 << 20;

/// What a queued message costs besides its bytes, so that a flood of empty
/// messages (or of window changes) is bounded too.
const MESSAGE_COST: usize = 64;

/// Why input was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refused {
    /// The program has [`INPUT_LIMIT`] bytes waiting already.
    Full,
    /// The program takes no (more) input.
    Closed,
}

/// The handler's end of a channel's input queue.
#[derive(Debug)]
pub struct InputSender {
    tx: mpsc::UnboundedSender<Input>,
    queued: Arc<AtomicUsize>,
}

/// The program's end of a channel's input queue.
#[derive(Debug)]
pub struct InputReceiver {
    rx: mpsc::UnboundedReceiver<Input>,
    queued: Arc<AtomicUsize>,
}

/// A new input queue for one channel.
pub fn input_queue() -> (InputSender, InputReceiver) {
    let (tx, rx) = mpsc::unbounded_channel();
    let queued = Arc::new(AtomicUsize::new(0));
    (InputSender { tx, queued: queued.clone() }, InputReceiver { rx, queued })
}

fn cost(input: &Input) -> usize {
    MESSAGE_COST + if let Input::Data(b) = input { b.len() } else { 0 }
}

impl InputSender {
    /// Queues `input` unless the program already has [`INPUT_LIMIT`] bytes
    /// waiting or takes no input; never waits.
    ///
    /// # Errors
    ///
    /// [`Refused`]: the queue is full, or its receiver is gone.
    pub fn offer(&self, input: Input) -> Result<(), Refused> {
        if self.tx.is_closed() {
            return Err(Refused::Closed);
        }
        let cost = cost(&input);
        // Only the handler offers, so nothing but the receiver (which only
        // makes room) changes the count between this check and the add.
        if self.queued.load(Ordering::SeqCst) + cost > INPUT_LIMIT {
            return Err(Refused::Full);
        }
        self.queued.fetch_add(cost, Ordering::SeqCst);
        self.tx.send(input).map_err(|_| Refused::Closed)
    }
}

impl InputReceiver {
    /// The next input; `None` once the client is gone and everything
    /// queued was read.
    pub async fn recv(&mut self) -> Option<Input> {
        let input = self.rx.recv().await?;
        self.queued.fetch_sub(cost(&input), Ordering::SeqCst);
        Some(input)
    }

    /// Takes no more input: what is queued is dropped, and what the
    /// client sends from now on is discarded as it arrives.
    pub fn close(&mut self) {
        self.rx.close();
        while self.rx.try_recv().is_ok() {}
        self.queued.store(0, Ordering::SeqCst);
    }
}

/// The channel is gone: the client closed it or the connection dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gone;

/// The handler's hold on a channel: dropping it hangs up.
#[derive(Debug)]
pub struct Line {
    /// Never sent on: its drop wakes every [`Output::gone`].
    _alive: watch::Sender<()>,
    cancel: Cancel,
    ended: Arc<AtomicBool>,
}

impl Line {
    /// A line for a newly opened channel, and the channel's output.
    pub fn open(write: ChannelWriteHalf<Msg>) -> (Line, Output) {
        let (alive, watcher) = watch::channel(());
        let cancel = Cancel::new();
        let ended = Arc::new(AtomicBool::new(false));
        let out = Output { write, alive: watcher, cancel: cancel.clone(), ended: ended.clone() };
        (Line { _alive: alive, cancel, ended }, out)
    }

    /// Whether the program on the channel has ended (its output dropped):
    /// it closed the channel, so the channel no longer counts as open.
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }
}

impl Drop for Line {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// The writing half of a channel: output waits for the client's window,
/// and every call fails at once when the channel is gone.
#[derive(Debug)]
pub struct Output {
    write: ChannelWriteHalf<Msg>,
    alive: watch::Receiver<()>,
    cancel: Cancel,
    ended: Arc<AtomicBool>,
}

impl Output {
    /// Writes to the channel's stdout.
    ///
    /// # Errors
    ///
    /// [`Gone`].
    pub async fn data_bytes(&self, bytes: Bytes) -> Result<(), Gone> {
        self.unless_gone(self.write.data_bytes(bytes)).await
    }

    /// Writes to an extended stream (1: stderr).
    ///
    /// # Errors
    ///
    /// [`Gone`].
    pub async fn extended_data_bytes(&self, ext: u32, bytes: Bytes) -> Result<(), Gone> {
        self.unless_gone(self.write.extended_data_bytes(ext, bytes)).await
    }

    /// Sends the exit status.
    ///
    /// # Errors
    ///
    /// [`Gone`].
    pub async fn exit_status(&self, code: u32) -> Result<(), Gone> {
        self.unless_gone(self.write.exit_status(code)).await
    }

    /// Sends EOF.
    ///
    /// # Errors
    ///
    /// [`Gone`].
    pub async fn eof(&self) -> Result<(), Gone> {
        self.unless_gone(self.write.eof()).await
    }

    /// Closes the channel.
    ///
    /// # Errors
    ///
    /// [`Gone`].
    pub async fn close(&self) -> Result<(), Gone> {
        self.unless_gone(self.write.close()).await
    }

    /// Watches keeper connections made for this channel: they are shut
    /// down when it goes away.
    pub fn cancel(&self) -> &Cancel {
        &self.cancel
    }

    /// Whether the channel is gone.
    pub fn is_gone(&self) -> bool {
        self.alive.has_changed().is_err()
    }

    /// Resolves once the channel is gone.
    pub async fn gone(&self) {
        let mut alive = self.alive.clone();
        // Nothing is ever sent: this returns when the sender is dropped.
        while alive.changed().await.is_ok() {}
    }

    async fn unless_gone<F>(&self, send: F) -> Result<(), Gone>
    where
        F: Future<Output = Result<(), russh::Error>>,
    {
        if self.is_gone() {
            return Err(Gone);
        }
        tokio::select! {
            biased;
            () = self.gone() => Err(Gone),
            sent = send => sent.map_err(|_| Gone),
        }
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        self.ended.store(true, Ordering::SeqCst);
        self.cancel.release();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn input_is_bounded_in_bytes_and_makes_room_as_it_is_read() {
        let (tx, mut rx) = input_queue();
        let chunk = Bytes::from(vec![b'x'; 32 * 1024]);
        let mut queued = 0;
        while tx.offer(Input::Data(chunk.clone())).is_ok() {
            queued += 1;
        }
        assert_eq!(queued, INPUT_LIMIT / (32 * 1024 + MESSAGE_COST));
        assert_eq!(tx.offer(Input::Data(chunk.clone())), Err(Refused::Full));
        assert!(matches!(rx.recv().await, Some(Input::Data(_))));
        assert_eq!(tx.offer(Input::Data(chunk.clone())), Ok(()));
        rx.close();
        assert_eq!(tx.offer(Input::Eof), Err(Refused::Closed));
        drop(rx);
        assert_eq!(tx.offer(Input::Eof), Err(Refused::Closed));
    }

    #[tokio::test]
    async fn resizes_are_bounded_too() {
        let (tx, _rx) = input_queue();
        let size = tether_proto::WindowSize { cols: 80, rows: 24 };
        let accepted = (0..100_000).take_while(|_| tx.offer(Input::Resize(size)).is_ok()).count();
        assert_eq!(accepted, INPUT_LIMIT / MESSAGE_COST);
    }
}

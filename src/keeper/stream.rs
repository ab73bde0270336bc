//! The live stream: output routed to attachments straight from the PTY
//! reader, ahead of the screen model.
//!
//! The screen model (avt) is the slowest stage of the keeper. If every
//! byte had to pass through it before reaching a client, an attached
//! client could never see output faster than the emulator parses it, and
//! every keystroke's echo would wait for one more thread. So the reader
//! scans each read itself ([`Router`]: sequence boundaries, queries, what
//! watchers must not get) and pushes it into the outboxes of the
//! attachments that are *live*; the parser follows in its own time.
//!
//! A redraw can only be taken where the parser is. An attachment that
//! needs one (it attaches, or its outbox overflowed) gets a redraw at the
//! parser's position and then *catches up*: the parser feeds it, item by
//! item, from that position on (`State::catchup`). When the parser has
//! caught up with the reader (both at the same complete position, checked
//! under both locks), catching-up attachments become live. With an idle
//! session that happens at once; during a flood an attaching client is
//! served at the parser's pace, as it always was.
//!
//! Lock order: the keeper's state lock first, then [`Stream`]'s. The reader
//! takes only the stream lock, so it never waits for the parser.

use super::fanout::Outbox;
use crate::term::scan::{Passthrough, Span, VtScanner};
use crate::term::screen::{Routed, route};
use bytes::Bytes;
use std::sync::Arc;
use tether_proto::{AttachMode, Message};

/// One attachment's place in the fan-out (live or catching up).
#[derive(Clone)]
pub struct Subscriber {
    /// The attachment's id.
    pub id: u64,
    /// Interactive or read-only: decides which routing it gets.
    pub mode: AttachMode,
    /// Where its output goes.
    pub outbox: Arc<Outbox>,
    /// The stream position up to which it may already have received output
    /// live, before it was restarted behind the parser: output before it is
    /// replayed without queries and other sequences that act beyond the
    /// screen (a second answer from the client's terminal would reach the
    /// job as typed input).
    pub replay_until: u64,
}

impl Subscriber {
    /// Queues `routed`, which begins at stream position `from`, as this
    /// attachment receives it.
    pub fn push(&self, routed: &Routed, from: u64, active: Option<u64>, watchers_unsafe_ok: bool) {
        let bytes = if from < self.replay_until {
            routed.replayed()
        } else {
            routed.for_attachment(self.mode, active == Some(self.id), watchers_unsafe_ok)
        };
        self.outbox.push_output(Message::Output(bytes));
    }
}

/// The reader's scanner: sequence boundaries and routing, no screen.
#[derive(Default)]
pub struct Router {
    scanner: VtScanner,
    /// The incomplete tail of the last read, routed with the next.
    pending: Vec<u8>,
    spans: Vec<Span>,
    /// Complete bytes routed so far: the stream position, in the same
    /// units as the screen model's (`Screen` holds back the same tails).
    position: u64,
}

impl Router {
    /// A router giving interactive clients what `passthrough` allows (the
    /// screen model must route with the same setting).
    pub fn new(passthrough: Passthrough) -> Self {
        Router { scanner: VtScanner::with_passthrough(passthrough), ..Router::default() }
    }

    /// Routes one read; the incomplete tail waits for the next.
    pub fn route(&mut self, chunk: &Bytes) -> Routed {
        self.spans.clear();
        if self.pending.is_empty() {
            let complete = self.scanner.scan(chunk, &mut self.spans);
            self.pending.extend_from_slice(&chunk[complete..]);
            self.position += complete as u64;
            if self.spans.is_empty() {
                // The common case costs no copy.
                Routed { output: chunk.slice(..complete), ..Routed::default() }
            } else {
                route(&chunk[..complete], &self.spans)
            }
        } else {
            self.pending.extend_from_slice(chunk);
            let complete = self.scanner.scan(&self.pending, &mut self.spans);
            let routed = route(&self.pending[..complete], &self.spans);
            self.pending.drain(..complete);
            self.position += complete as u64;
            routed
        }
    }

    /// Complete bytes routed so far.
    pub fn position(&self) -> u64 {
        self.position
    }
}

/// The live side of the fan-out, behind the keeper's stream lock.
#[derive(Default)]
pub struct Stream {
    /// Scans what the reader reads.
    pub router: Router,
    /// Attachments served by the reader.
    pub live: Vec<Subscriber>,
    /// The most recently active interactive attachment (a copy of the
    /// state's, kept in step under both locks).
    pub active: Option<u64>,
}

impl Stream {
    /// An empty fan-out whose router gives interactive clients what
    /// `passthrough` allows.
    pub fn new(passthrough: Passthrough) -> Self {
        Stream { router: Router::new(passthrough), ..Stream::default() }
    }

    /// Routes one PTY read and queues it for every live attachment. Never
    /// blocks on a client: outboxes are lossy.
    pub fn on_read(&mut self, chunk: &Bytes, watchers_unsafe_ok: bool) {
        let routed = self.router.route(chunk);
        if routed.is_empty() {
            return;
        }
        for sub in &self.live {
            // Live attachments are never behind a replay.
            sub.push(&routed, u64::MAX, self.active, watchers_unsafe_ok);
        }
    }

    /// Stops serving attachment `id`; returns whether it was live.
    pub fn remove(&mut self, id: u64) -> bool {
        let before = self.live.len();
        self.live.retain(|s| s.id != id);
        self.live.len() != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::term::screen::Screen;
    use tether_proto::WindowSize;

    /// Splits `input` at every boundary in `cuts` (and the end).
    fn pieces<'a>(input: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
        let mut out = Vec::new();
        let mut at = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            let c = c.min(input.len()).max(at);
            out.push(&input[at..c]);
            at = c;
        }
        out
    }

    #[test]
    fn router_and_screen_agree_on_output_and_position_however_reads_fall() {
        let input: &[u8] =
            b"ab\x1b[6ncd\x1b[31mred\x1b]11;?\x07\xe2\x82\xac\x1b]52;c;eA==\x07\xc2\x9d52;c;eA==\xc2\x9cend\r\n";
        for cut_a in 0..input.len() {
            for cut_b in cut_a..input.len() {
                let mut router = Router::default();
                let mut screen = Screen::new(WindowSize { cols: 80, rows: 24 }, 1000);
                let (mut from_router, mut from_screen) = (Vec::new(), Vec::new());
                let (mut watch_router, mut watch_screen) = (Vec::new(), Vec::new());
                for piece in pieces(input, &[cut_a, cut_b]) {
                    let r = router.route(&Bytes::copy_from_slice(piece));
                    from_router.extend_from_slice(&r.output);
                    watch_router.extend_from_slice(r.watchers.as_ref().unwrap_or(&r.output));
                    let f = screen.feed(piece);
                    from_screen.extend_from_slice(&f.output);
                    watch_screen.extend_from_slice(f.watchers.as_ref().unwrap_or(&f.output));
                }
                assert_eq!(from_router, from_screen, "cuts {cut_a} {cut_b}");
                assert_eq!(watch_router, watch_screen, "cuts {cut_a} {cut_b}");
                assert_eq!(router.position(), input.len() as u64);
                assert_eq!(screen.pending_len(), 0);
            }
        }
    }

    #[test]
    fn an_incomplete_tail_waits_and_is_not_counted() {
        let mut router = Router::default();
        let r = router.route(&Bytes::from_static(b"x\x1b[3"));
        assert_eq!(&r.output[..], b"x");
        assert_eq!(router.position(), 1);
        let r = router.route(&Bytes::from_static(b"1my"));
        assert_eq!(&r.output[..], b"\x1b[31my");
        assert_eq!(router.position(), 7);
    }

    #[test]
    fn live_attachments_get_their_routing() {
        // Clipboard writes allowed to interactive clients (config.toml
        // `clipboard = true`); never to watchers.
        let mut stream = Stream::new(Passthrough::ALL);
        let (client, other, watcher) =
            (Arc::new(Outbox::new()), Arc::new(Outbox::new()), Arc::new(Outbox::new()));
        let sub = |id, mode, outbox: &Arc<Outbox>| Subscriber {
            id,
            mode,
            outbox: outbox.clone(),
            replay_until: 0,
        };
        stream.live = vec![
            sub(1, AttachMode::Interactive, &client),
            sub(2, AttachMode::Interactive, &other),
            sub(3, AttachMode::ReadOnly, &watcher),
        ];
        stream.active = Some(1);
        stream.on_read(&Bytes::from_static(b"a\x1b]11;?\x07\x1b]52;c;eA==\x07b"), false);
        let got = |o: &Outbox| match o.next() {
            super::super::fanout::Next::Send(Message::Output(b)) => b,
            other => panic!("{other:?}"),
        };
        assert_eq!(&got(&client)[..], b"a\x1b]11;?\x07\x1b]52;c;eA==\x07b");
        assert_eq!(&got(&other)[..], b"a\x1b]52;c;eA==\x07b");
        assert_eq!(&got(&watcher)[..], b"ab");
        assert!(stream.remove(1));
        assert!(!stream.remove(1));
        assert_eq!(stream.live.len(), 2);
        // Replayed output (behind where a restarted client already was)
        // carries no query and nothing that acts beyond the screen.
        let mut router = Router::new(Passthrough::ALL);
        let routed = router.route(&Bytes::from_static(b"a\x1b]11;?\x07\x1b]52;c;eA==\x07b"));
        for from in [0, 100] {
            sub(1, AttachMode::Interactive, &client).push(&routed, from, Some(1), false);
            assert_eq!(&got(&client)[..], b"a\x1b]11;?\x07\x1b]52;c;eA==\x07b");
        }
        let replay = Subscriber { replay_until: 50, ..sub(1, AttachMode::Interactive, &client) };
        replay.push(&routed, 0, Some(1), false);
        assert_eq!(&got(&client)[..], b"ab");
        replay.push(&routed, 50, Some(1), false);
        assert_eq!(&got(&client)[..], b"a\x1b]11;?\x07\x1b]52;c;eA==\x07b");
        // By default (tmux's), the clipboard write reaches nobody.
        let mut stream = Stream::new(Passthrough::default());
        stream.live = vec![sub(1, AttachMode::Interactive, &client)];
        stream.active = Some(1);
        stream.on_read(&Bytes::from_static(b"a\x1b]52;c;eA==\x07b"), true);
        assert_eq!(&got(&client)[..], b"ab");
    }
}

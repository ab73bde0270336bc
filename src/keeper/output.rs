//! The output path of a keeper: each PTY read from the reader (routed to
//! live attachments) and from the parser (the screen model, attachments
//! catching up, keyframes), and the hand-overs between the two
//! (`stream.rs` explains the policy).

use super::fanout::Outbox;
use super::stream::Subscriber;
use super::{KEYFRAME_EVERY, Keeper, State, lock, redraw_frames};
use crate::term::redraw::Caps;
use crate::term::screen::{self, Fed, ShellEvent};
use bytes::Bytes;
use tether_proto::Message;
use tether_proto::record::keyframe::Keyframe;

impl Keeper {
    /// The reader's half of one PTY read: routes it to the live
    /// attachments, ahead of the screen model. Never waits for the parser
    /// or a client.
    pub fn on_read(&self, chunk: &Bytes) {
        lock(&self.stream).on_read(chunk, self.watchers_unsafe_ok);
    }

    /// The parser's half of one PTY read: updates the screen, feeds the
    /// attachments catching up, and returns the answers to the job's
    /// queries.
    pub fn on_output(&self, data: &[u8]) -> Vec<u8> {
        let mut st = self.state();
        let from = Self::parsed_position(&st);
        let marks = self.marks.as_deref();
        let mut vouch = |end: usize| marks.is_some_and(|m| m.vouches(from + end as u64));
        let Fed { output, one_client, watchers, replies, commands } =
            st.screen.feed_marked(data, &mut vouch);
        st.parsed += data.len() as u64;
        if !commands.is_empty() {
            self.record_commands(&mut st, from, commands);
        }
        self.keyframe_if_due(&mut st);
        let routed = screen::Routed { output, one_client, watchers };
        if !routed.is_empty() {
            for sub in &st.catchup {
                sub.push(&routed, from, st.active, self.watchers_unsafe_ok);
            }
            for f in &st.followers {
                f.push_output(Message::Output(Bytes::new()));
            }
        }
        if !st.catchup.is_empty() {
            self.go_live_if_caught_up(&mut st);
        }
        replies
    }

    /// Records the commands the shell's marks began and ended.
    /// `from`: where in the output the bytes the marks ended in began.
    fn record_commands(&self, st: &mut State, from: u64, commands: Vec<(usize, ShellEvent)>) {
        use tether_proto::record::{Command, MarkSource, Phase};
        let source = |authentic: bool| if authentic { MarkSource::Tether } else { MarkSource::Job };
        for (end, event) in commands {
            let out = Some(from + end as u64);
            let command = match event {
                ShellEvent::Start { command, cwd, authentic } => {
                    st.commands += 1;
                    let (who, fingerprint) = st.enter_by.clone().unzip();
                    Command {
                        n: st.commands,
                        phase: Phase::Start,
                        command: Some(command),
                        cwd,
                        who,
                        fingerprint: fingerprint.flatten(),
                        exit: None,
                        out,
                        marks: source(authentic),
                    }
                }
                ShellEvent::End { exit, authentic } => Command {
                    n: st.commands,
                    phase: Phase::End,
                    command: None,
                    cwd: None,
                    who: None,
                    fingerprint: None,
                    exit,
                    out,
                    marks: source(authentic),
                },
            };
            tracing::debug!(n = command.n, phase = ?command.phase, "command");
            if let Some(r) = &self.recorder {
                r.command(command);
            }
        }
    }

    /// Output the parser will never see (an unreadable spill file): counted
    /// as taken, so that the parser's position can meet the reader's again.
    pub fn output_lost(&self, bytes: u64) {
        self.state().parsed += bytes;
    }

    /// Where the parser is in the stream: complete bytes interpreted.
    pub(super) fn parsed_position(st: &State) -> u64 {
        st.parsed - st.screen.pending_len() as u64
    }

    /// Moves the attachments catching up to the live stream once the parser
    /// stands where the reader does: nothing between them is lost or sent
    /// twice.
    pub(super) fn go_live_if_caught_up(&self, st: &mut State) {
        let mut stream = lock(&self.stream);
        if stream.router.position() == Self::parsed_position(st) {
            tracing::debug!(count = st.catchup.len(), "caught up: attachments go live");
            stream.live.append(&mut st.catchup);
        }
    }

    /// (Re)starts attachment `id`'s stream: its queued output is replaced by
    /// `prefix` and a redraw at the parser's position, after which it
    /// catches up (or is live at once, when the parser is not behind).
    /// Called with the state lock held, so the parser stands still.
    pub(super) fn restart_stream(&self, st: &mut State, id: u64, prefix: Vec<Message>) {
        let Some(a) = st.attachments.iter().find(|a| a.id == id) else { return };
        let mut sub = Subscriber { id, mode: a.mode, outbox: a.outbox.clone(), replay_until: 0 };
        let frames =
            prefix.into_iter().chain(redraw_frames(&st.screen, a.caps)).collect::<Vec<_>>();
        if let Some(old) = st.catchup.iter().find(|s| s.id == id) {
            sub.replay_until = old.replay_until;
        }
        st.catchup.retain(|s| s.id != id);
        let mut stream = lock(&self.stream);
        if stream.remove(id) {
            // It may have shown output up to where the reader is.
            sub.replay_until = stream.router.position();
        }
        // Reset under the stream lock: the reader cannot slip output in
        // between the redraw and what follows it.
        sub.outbox.reset_with(frames);
        let live = stream.router.position() == Self::parsed_position(st);
        tracing::debug!(id, live, "stream restarted with a redraw");
        if live {
            stream.live.push(sub);
        } else {
            st.catchup.push(sub);
        }
    }

    /// Whether attachment `id` is served live while the parser is behind
    /// the reader: restarting it now would take it back in time.
    pub(super) fn live_and_ahead(&self, st: &State, id: u64) -> bool {
        let stream = lock(&self.stream);
        stream.live.iter().any(|s| s.id == id)
            && stream.router.position() != Self::parsed_position(st)
    }

    /// Makes `id` the most recently active interactive attachment.
    pub(super) fn set_active(&self, st: &mut State, id: Option<u64>) {
        st.active = id;
        lock(&self.stream).active = id;
    }

    /// Every [`KEYFRAME_EVERY`] bytes, hands the recorder a redraw of the
    /// screen as it is after exactly that much output.
    pub(super) fn keyframe_if_due(&self, st: &mut State) {
        let Some(recorder) = &self.recorder else { return };
        let out = st.parsed - st.screen.pending_len() as u64;
        if out < st.next_keyframe {
            return;
        }
        st.next_keyframe = out + KEYFRAME_EVERY;
        let size = st.screen.size();
        // Read back by tether's own model: every capability.
        let dump = String::from_utf8_lossy(&st.screen.redraw_for(Caps::ALL)).into_owned();
        recorder.keyframe(Keyframe { out, cols: size.cols, rows: size.rows, dump });
    }

    /// Replaces attachment `id`'s queue with a fresh redraw (after its
    /// outbox overflowed).
    pub fn resync(&self, id: u64, outbox: &Outbox) {
        let mut st = self.state();
        if st.attachments.iter().any(|a| a.id == id) {
            self.restart_stream(&mut st, id, Vec::new());
        } else {
            // Detached meanwhile: nothing to redraw, but the mark must go.
            outbox.reset_with(Vec::new());
        }
    }
}

//! Presence and consent: what interactive clients see when someone starts
//! or stops watching, and the y/n prompt of a session created with
//! `--consent`.
//!
//! A notice is drawn over the first row of every interactive client's
//! terminal (saving and restoring the cursor), and a few seconds later the
//! keeper repaints those clients from the screen model, so the owner's
//! screen ends exactly as it was. Watchers get the same text as a
//! [`Notice`] with the new counts, for their status line.

use super::{Keeper, State, lock};
use crate::Failure;
use crate::keeper::fanout::Outbox;
use bytes::Bytes;
use std::sync::{Arc, PoisonError};
use std::time::{Duration, Instant};
use tether_proto::{AttachMode, ErrorCode, Identity, Message, Notice};

/// How long a notice stays before the screen is repainted.
pub const NOTICE_TIME: Duration = Duration::from_secs(3);

/// How often a deferred repaint checks whether the parser has caught up,
/// and for how many tries (a minute) before it lets the output scroll the
/// notice away on its own.
const REPAINT_RETRY: Duration = Duration::from_millis(250);
const REPAINT_TRIES: u32 = 240;

/// How long a watcher waits for consent.
pub const CONSENT_TIMEOUT: Duration = Duration::from_secs(60);

/// A watch request waiting for an answer.
#[derive(Debug)]
pub struct Consent {
    id: u64,
    label: String,
    answer: Option<bool>,
}

/// Bytes that draw `text` right-aligned on the first row, in reverse video,
/// leaving the cursor, its attributes and the rest of the screen alone.
fn overlay(text: &str, cols: u16) -> Bytes {
    let max = usize::from(cols).saturating_sub(2).max(1);
    let text: String = crate::term::text::visible(text).chars().take(max).collect();
    let width = text.chars().count() + 2;
    let col = usize::from(cols).saturating_sub(width) + 1;
    Bytes::from(format!("\x1b7\x1b[1;{col}H\x1b[0;7m {text} \x1b[0m\x1b8"))
}

impl Keeper {
    /// Tells everyone attached that `text` happened: an overlay for
    /// interactive clients (repainted away after [`NOTICE_TIME`]), a notice
    /// with the counts for everyone.
    pub(super) fn announce(self: &Arc<Self>, st: &State, text: &str) {
        self.notify(st, text);
        self.repaint_later();
    }

    /// Tells everyone attached that `text` happened (an overlay and a
    /// notice, as [`Keeper::announce`]) without repainting it away.
    pub(super) fn notify(&self, st: &State, text: &str) {
        let cols = st.screen.size().cols;
        let count = |m| st.attachments.iter().filter(|a| a.mode == m).count() as u32;
        let notice = Notice {
            text: text.to_owned(),
            clients: Some(count(AttachMode::Interactive)),
            watchers: Some(count(AttachMode::ReadOnly)),
        };
        for a in &st.attachments {
            if a.mode == AttachMode::Interactive {
                a.outbox.push_control(Message::Output(overlay(text, cols)));
            }
            a.outbox.push_control(Message::Notice(notice.clone()));
        }
    }

    /// After [`NOTICE_TIME`], repaints interactive clients from the model.
    fn repaint_later(self: &Arc<Self>) {
        self.repaint_after(NOTICE_TIME);
    }

    /// Repaints interactive clients after `delay`; a live client the parser
    /// is behind (a flood) is repainted once the parser has caught up, so
    /// that its screen never goes back in time.
    fn repaint_after(self: &Arc<Self>, delay: Duration) {
        let keeper = Arc::downgrade(self);
        let _ = std::thread::Builder::new().name("notice".into()).spawn(move || {
            std::thread::sleep(delay);
            for _ in 0..REPAINT_TRIES {
                let Some(k) = keeper.upgrade() else { return };
                if k.repaint_now() {
                    return;
                }
                drop(k);
                std::thread::sleep(REPAINT_RETRY);
            }
        });
    }

    /// Draws the pending watch request, if any, on `outbox`'s client.
    pub(super) fn show_prompt(&self, st: &State, outbox: &Outbox) {
        if let Some(c) = st.consents.iter().find(|c| c.answer.is_none()) {
            let text = format!("{} wants to watch. Allow? [y/n]", c.label);
            outbox.push_control(Message::Output(overlay(&text, st.screen.size().cols)));
        }
    }

    /// Whether a session needs consent for watchers.
    pub fn needs_consent(&self) -> bool {
        self.consent
    }

    /// Asks interactive clients whether `who` may watch; waits up to
    /// [`CONSENT_TIMEOUT`].
    ///
    /// # Errors
    ///
    /// Declined, or nobody answered in time (exit 5).
    pub fn ask_consent(self: &Arc<Self>, who: &Identity) -> Result<(), Failure> {
        let label = super::describe_identity(who);
        let id = {
            let mut st = self.state();
            st.next_id += 1;
            let id = st.next_id;
            st.consents.push_back(Consent { id, label, answer: None });
            for a in st.attachments.iter().filter(|a| a.mode == AttachMode::Interactive) {
                self.show_prompt(&st, &a.outbox);
            }
            id
        };
        let deadline = Instant::now() + CONSENT_TIMEOUT;
        let mut st = self.state();
        let answer = loop {
            if let Some(c) = st.consents.iter().find(|c| c.id == id)
                && let Some(answer) = c.answer
            {
                break Some(answer);
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { break None };
            st = self.changed.wait_timeout(st, left).unwrap_or_else(PoisonError::into_inner).0;
        };
        st.consents.retain(|c| c.id != id);
        drop(st);
        // Take the prompt off the clients' screens (and show the next one).
        self.repaint_after(Duration::ZERO);
        match answer {
            Some(true) => Ok(()),
            Some(false) => Err(Failure::new(
                ErrorCode::Refused,
                format!("the clients of {} declined to be watched", self.name()),
            )),
            None => Err(Failure::new(
                ErrorCode::Refused,
                format!("nobody attached to {} answered within 60 s", self.name()),
            )),
        }
    }

    /// Repaints every interactive client from the model (and redraws the
    /// pending watch request, if any), except live ones the parser is
    /// behind. Returns whether every client was repainted.
    fn repaint_now(&self) -> bool {
        let mut st = lock(&self.state);
        let ids: Vec<u64> = st
            .attachments
            .iter()
            .filter(|a| a.mode == AttachMode::Interactive)
            .map(|a| a.id)
            .collect();
        let mut all = true;
        for id in ids {
            if self.live_and_ahead(&st, id) {
                all = false;
                continue;
            }
            self.restart_stream(&mut st, id, Vec::new());
            if let Some(a) = st.attachments.iter().find(|a| a.id == id) {
                self.show_prompt(&st, &a.outbox);
            }
        }
        all
    }

    /// Treats `input` as the answer to the pending watch request if it is
    /// a lone y or n. Returns whether it was consumed.
    pub(super) fn answer_prompt(&self, st: &mut State, input: &[u8]) -> bool {
        let Some(pending) = st.consents.iter_mut().find(|c| c.answer.is_none()) else {
            return false;
        };
        let answer = match input {
            [b'y' | b'Y'] => true,
            [b'n' | b'N'] => false,
            _ => return false,
        };
        pending.answer = Some(answer);
        self.changed.notify_all();
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlays_save_and_restore_the_cursor() {
        let o = overlay("mentor (watcher) is watching", 80);
        let text = std::str::from_utf8(&o).unwrap();
        assert!(text.starts_with("\x1b7\x1b[1;51H") && text.ends_with("\x1b[0m\x1b8"), "{text:?}");
        let tiny = overlay("a long text that does not fit", 10);
        assert!(std::str::from_utf8(&tiny).unwrap().contains("[1;1H"));
        let hostile = overlay("evil\x1b]52;c;x\x07name", 80);
        let hostile = std::str::from_utf8(&hostile).unwrap();
        assert!(!hostile.contains('\x07') && !hostile.contains("\x1b]"), "{hostile:?}");
        assert!(hostile.contains("evil\\e]52;c;x\\x07name"), "{hostile:?}");
    }
}

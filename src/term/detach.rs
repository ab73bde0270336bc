//! The detach key, as a pure state machine (the attach loop supplies the
//! clock).
//!
//! One press detaches. Pressing it twice within [`DOUBLE_PRESS`] sends one
//! to the job instead, so programs that use the key still get it. A press
//! followed quickly by any other byte detaches too (the other bytes are
//! dropped: they were typed after asking to leave).

use std::time::{Duration, Instant};

/// How long after a press a second press still counts as "send it to the
/// job". Short enough that a single press feels immediate.
pub const DOUBLE_PRESS: Duration = Duration::from_millis(300);

/// What the attach loop should do with a chunk of input.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Step {
    /// Bytes for the job.
    pub forward: Vec<u8>,
    /// Leave the session.
    pub detach: bool,
}

/// The detach-key state of one attached client.
#[derive(Debug)]
pub struct DetachKey {
    /// The key's byte; 0 disables detaching by key.
    key: u8,
    /// When the key was pressed, if we are waiting to see a second press.
    pending: Option<Instant>,
}

impl DetachKey {
    /// A state machine for `key` (0: none).
    pub fn new(key: u8) -> Self {
        DetachKey { key, pending: None }
    }

    /// Handles input read at `now`.
    pub fn feed(&mut self, input: &[u8], now: Instant) -> Step {
        let mut step = self.tick(now);
        if step.detach {
            return step;
        }
        for &b in input {
            if self.pending.is_some() {
                self.pending = None;
                if b == self.key {
                    step.forward.push(b);
                    continue;
                }
                step.detach = true;
                return step;
            }
            if self.key != 0 && b == self.key {
                self.pending = Some(now);
            } else {
                step.forward.push(b);
            }
        }
        step
    }

    /// Detaches if a single press has waited long enough.
    pub fn tick(&mut self, now: Instant) -> Step {
        match self.pending {
            Some(t) if now.duration_since(t) >= DOUBLE_PRESS => {
                self.pending = None;
                Step { forward: Vec::new(), detach: true }
            }
            _ => Step::default(),
        }
    }

    /// When [`DetachKey::tick`] should next be called.
    pub fn deadline(&self) -> Option<Instant> {
        self.pending.map(|t| t + DOUBLE_PRESS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: u8 = 0x1c;

    #[test]
    fn plain_input_passes() {
        let mut d = DetachKey::new(KEY);
        let now = Instant::now();
        assert_eq!(d.feed(b"ls\r", now), Step { forward: b"ls\r".to_vec(), detach: false });
        assert_eq!(d.deadline(), None);
    }

    #[test]
    fn single_press_detaches_after_the_window() {
        let mut d = DetachKey::new(KEY);
        let t0 = Instant::now();
        assert_eq!(d.feed(b"ab\x1c", t0), Step { forward: b"ab".to_vec(), detach: false });
        assert_eq!(d.deadline(), Some(t0 + DOUBLE_PRESS));
        assert!(!d.tick(t0 + DOUBLE_PRESS / 2).detach);
        assert!(d.tick(t0 + DOUBLE_PRESS).detach);
    }

    #[test]
    fn double_press_sends_one() {
        let mut d = DetachKey::new(KEY);
        let t0 = Instant::now();
        assert!(!d.feed(b"\x1c", t0).detach);
        let step = d.feed(b"\x1c", t0 + Duration::from_millis(50));
        assert_eq!(step, Step { forward: vec![KEY], detach: false });
        assert_eq!(d.deadline(), None);
        // Both presses in one read.
        assert_eq!(d.feed(b"\x1c\x1cx", t0), Step { forward: vec![KEY, b'x'], detach: false });
    }

    #[test]
    fn press_then_other_key_detaches() {
        let mut d = DetachKey::new(KEY);
        let t0 = Instant::now();
        let step = d.feed(b"\x1cq", t0);
        assert!(step.detach);
        assert!(step.forward.is_empty());
    }

    #[test]
    fn late_second_press_is_a_new_press() {
        let mut d = DetachKey::new(KEY);
        let t0 = Instant::now();
        d.feed(b"\x1c", t0);
        assert!(d.feed(b"\x1c", t0 + DOUBLE_PRESS * 2).detach);
    }

    #[test]
    fn disabled_key_never_detaches() {
        let mut d = DetachKey::new(0);
        let step = d.feed(b"\x1c\x00", Instant::now());
        assert_eq!(step, Step { forward: b"\x1c\x00".to_vec(), detach: false });
    }
}

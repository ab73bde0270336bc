//! Keeper connections opened on someone's behalf, to be cut when that
//! someone goes away.
//!
//! The daemon runs `ssh host wait NAME` and `tail -f` on blocking threads
//! that read a keeper socket until the job ends, and attachments on tasks
//! that may wait on a keeper that does not read. When the SSH channel
//! behind them closes, [`Cancel::cancel`] shuts those sockets down: the
//! blocked read or write returns at once, the command ends through its
//! ordinary error path, and its thread and descriptors are released.
//! Nothing else in tether needs this: the local CLI dies with its user.

use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex, PoisonError};

/// Shuts down the keeper sockets it watches when cancelled. Clones share
/// one state.
#[derive(Debug, Clone, Default)]
pub struct Cancel {
    state: Arc<Mutex<State>>,
}

#[derive(Debug, Default)]
enum State {
    /// Nothing watched, nothing cut.
    #[default]
    Open,
    /// Copies of the watched sockets (`dup`s: shutting one down shuts the
    /// socket down for every descriptor of it).
    Watching(Vec<UnixStream>),
    /// Cut; whatever is watched from now on is cut at once.
    Cancelled,
}

impl Cancel {
    /// A cancel that nothing has triggered yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Watches `stream`: shut down when [`Cancel::cancel`] is called, or at
    /// once if it already was.
    pub fn watch(&self, stream: &UnixStream) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if matches!(*state, State::Cancelled) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        }
        let Ok(copy) = stream.try_clone() else {
            // Out of descriptors: cut it now rather than leave a read that
            // nothing could end.
            let _ = stream.shutdown(std::net::Shutdown::Both);
            return;
        };
        match &mut *state {
            State::Watching(v) => v.push(copy),
            other => *other = State::Watching(vec![copy]),
        }
    }

    /// Shuts down every watched socket, and any watched later.
    pub fn cancel(&self) {
        let old = std::mem::replace(
            &mut *self.state.lock().unwrap_or_else(PoisonError::into_inner),
            State::Cancelled,
        );
        if let State::Watching(streams) = old {
            for s in streams {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
    }

    /// Stops watching (the work is done): closes the copies, cuts nothing.
    pub fn release(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if let State::Watching(_) = *state {
            *state = State::Open;
        }
    }

    /// Whether [`Cancel::cancel`] was called.
    pub fn is_cancelled(&self) -> bool {
        matches!(*self.state.lock().unwrap_or_else(PoisonError::into_inner), State::Cancelled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn cancelling_ends_a_blocked_read_and_later_watches() {
        let (a, _b) = UnixStream::pair().unwrap();
        let cancel = Cancel::new();
        cancel.watch(&a);
        let reader = std::thread::spawn(move || {
            let mut a = a;
            let mut buf = [0u8; 8];
            a.read(&mut buf).unwrap_or(0)
        });
        std::thread::sleep(std::time::Duration::from_millis(50));
        cancel.cancel();
        assert_eq!(reader.join().unwrap(), 0);
        assert!(cancel.is_cancelled());
        let (c, _d) = UnixStream::pair().unwrap();
        cancel.watch(&c);
        let mut buf = [0u8; 8];
        assert_eq!((&c).read(&mut buf).unwrap(), 0);
    }

    #[test]
    fn releasing_cuts_nothing() {
        let (a, mut b) = UnixStream::pair().unwrap();
        let cancel = Cancel::new();
        cancel.watch(&a);
        cancel.release();
        cancel.cancel();
        std::io::Write::write_all(&mut b, b"x").unwrap();
        let mut buf = [0u8; 1];
        assert_eq!((&a).read(&mut buf).unwrap(), 1);
    }
}

//! The user's terminal: raw mode that is always undone (on return, on
//! error, on panic), and its size.

use rustix::termios::{self, OptionalActions, Termios};
use std::io::IsTerminal;
use std::sync::{Mutex, Once, PoisonError};
use tether_proto::WindowSize;

/// The settings to restore, shared with the panic hook.
static SAVED: Mutex<Option<Termios>> = Mutex::new(None);
static HOOK: Once = Once::new();

/// Whether stdin is a terminal.
pub fn stdin_is_terminal() -> bool {
    std::io::stdin().is_terminal()
}

/// The terminal's size (from stdin, else stdout), or the default.
pub fn size() -> WindowSize {
    let ws = termios::tcgetwinsize(std::io::stdin())
        .or_else(|_| termios::tcgetwinsize(std::io::stdout()));
    match ws {
        Ok(ws) => WindowSize { cols: ws.ws_col, rows: ws.ws_row }.sanitized(),
        Err(_) => WindowSize::DEFAULT,
    }
}

/// Raw mode on stdin for as long as this lives.
#[derive(Debug)]
pub struct RawMode(());

impl RawMode {
    /// Switches stdin to raw mode.
    ///
    /// # Errors
    ///
    /// Stdin is not a terminal.
    pub fn enable() -> std::io::Result<RawMode> {
        let stdin = std::io::stdin();
        let saved = termios::tcgetattr(&stdin)?;
        let mut raw = saved.clone();
        raw.make_raw();
        *SAVED.lock().unwrap_or_else(PoisonError::into_inner) = Some(saved);
        HOOK.call_once(|| {
            let previous = std::panic::take_hook();
            std::panic::set_hook(Box::new(move |info| {
                restore();
                previous(info);
            }));
        });
        termios::tcsetattr(&stdin, OptionalActions::Now, &raw)?;
        Ok(RawMode(()))
    }
}

impl Drop for RawMode {
    fn drop(&mut self) {
        restore();
    }
}

/// Puts the saved terminal settings back, if any.
pub fn restore() {
    let saved = SAVED.lock().unwrap_or_else(PoisonError::into_inner).take();
    if let Some(saved) = saved {
        let _ = termios::tcsetattr(std::io::stdin(), OptionalActions::Now, &saved);
    }
}

//! A keeper thread that panics ends its session visibly.
//!
//! Every thread of a keeper shares the session: the reader feeds the
//! recorder and the parser, the parser the screen model, client threads
//! resize the screen and write to the job. A thread that dies leaves the
//! others running a session that silently stops working (a dead reader
//! stalls the job once the PTY buffer fills; a dead recorder stops the
//! recording), so the keeper ends the session instead, however harmless
//! the panic may look.
//!
//! The panic hook ([`install`]) runs on the panicking thread, which may
//! have been interrupted anywhere, so it takes no lock of the keeper: it
//! logs the panic, keeps the first one's reason and wakes the
//! `supervisor` thread ([`wait`]), which ends the session the way `kill`
//! does (keeper/mod.rs, `Keeper::end_for`). The panicking thread then
//! unwinds, releasing (and poisoning) what it held; every lock of the
//! keeper is taken poison-tolerantly.

use std::sync::{Condvar, Mutex, PoisonError};

/// The first panic's reason, once there was one.
static REASON: Mutex<Option<String>> = Mutex::new(None);

/// Signalled when [`REASON`] is set.
static PANICKED: Condvar = Condvar::new();

/// The longest panic message kept in the reason (the log has all of it).
const MESSAGE_MAX: usize = 300;

/// Installs the keeper's panic hook (in the keeper process only).
pub fn install() {
    std::panic::set_hook(Box::new(|info| {
        let thread = std::thread::current();
        let thread = thread.name().unwrap_or("unnamed");
        let payload = info.payload();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
            .unwrap_or("(a non-string payload)");
        let location = info.location().map_or_else(|| "?".into(), ToString::to_string);
        // Wake the supervisor first: logging may itself fail or block.
        record(&reason(thread, message));
        tracing::error!("keeper thread {thread} panicked at {location}: {message}");
        // With RUST_BACKTRACE in the keeper's environment (slow: after the
        // supervisor is on its way).
        let backtrace = std::backtrace::Backtrace::capture();
        if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
            tracing::error!("the panic's backtrace:\n{backtrace}");
        }
    }));
}

/// "keeper thread parser panicked: MESSAGE", with the message cut short.
fn reason(thread: &str, message: &str) -> String {
    let mut message = message.to_owned();
    if message.len() > MESSAGE_MAX {
        let mut cut = MESSAGE_MAX;
        while !message.is_char_boundary(cut) {
            cut -= 1;
        }
        message.truncate(cut);
        message.push('…');
    }
    format!("keeper thread {thread} panicked: {message}")
}

/// Keeps the first reason and wakes [`wait`].
fn record(reason: &str) {
    // Only this module takes this lock, never around anything that panics.
    let mut first = REASON.lock().unwrap_or_else(PoisonError::into_inner);
    if first.is_none() {
        *first = Some(reason.to_owned());
    }
    drop(first);
    PANICKED.notify_all();
}

/// The first panic's reason, if a keeper thread has panicked.
pub fn reason_so_far() -> Option<String> {
    REASON.lock().unwrap_or_else(PoisonError::into_inner).clone()
}

/// Blocks until a keeper thread panics (at once if one already has) and
/// returns the reason.
pub fn wait() -> String {
    let mut first = REASON.lock().unwrap_or_else(PoisonError::into_inner);
    loop {
        if let Some(reason) = first.as_ref() {
            return reason.clone();
        }
        first = PANICKED.wait(first).unwrap_or_else(PoisonError::into_inner);
    }
}

/// A deterministic panic for black-box tests: with the `test-hooks`
/// feature and `TETHER_TEST_PANIC=THREAD` in the keeper's environment, the
/// first call with that `thread` panics (once per keeper). The points are
/// each thread's first unit of work: `pty-reader` after its first read,
/// `parser` on its first chunk, `recorder` on its first event,
/// `pty-writer` on its first queued input, `accept` on its first
/// connection, `conn` on its first request, `client` (the client-N
/// writers) on its first message, `main` before it waits for the job,
/// `signals` and `orphans` when they start, `supervisor` never.
#[inline]
#[track_caller]
pub fn test_point(thread: &str) {
    #[cfg(feature = "test-hooks")]
    {
        use std::sync::OnceLock;
        use std::sync::atomic::{AtomicBool, Ordering};
        static WANTED: OnceLock<Option<String>> = OnceLock::new();
        static FIRED: AtomicBool = AtomicBool::new(false);
        let wanted = WANTED.get_or_init(|| std::env::var("TETHER_TEST_PANIC").ok());
        if wanted.as_deref() == Some(thread) && !FIRED.swap(true, Ordering::SeqCst) {
            panic!("injected by TETHER_TEST_PANIC={thread}");
        }
    }
    #[cfg(not(feature = "test-hooks"))]
    let _ = thread;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_name_the_thread_and_cut_long_messages_at_characters() {
        assert_eq!(reason("parser", "boom"), "keeper thread parser panicked: boom");
        let long = reason("conn", &"é".repeat(MESSAGE_MAX));
        assert!(long.ends_with('…'), "{long}");
        assert!(long.len() <= "keeper thread conn panicked: ".len() + MESSAGE_MAX + '…'.len_utf8());
    }
}

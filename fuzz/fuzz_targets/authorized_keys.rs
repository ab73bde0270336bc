//! The authorized_keys parser (both tether's file and OpenSSH's).
//!
//! Invariants: no panic; each line yields at most one key or one problem;
//! a key's line number points at a line of the file; a key with a from=
//! list never allows an address its patterns do not name; parsing is
//! deterministic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tether::sshd::auth::{self, Source};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    for source in [Source::Tether, Source::OpenSsh] {
        let file = auth::parse(&text, source);
        let lines = text.lines().count();
        let meaningful =
            text.lines().filter(|l| !l.trim().is_empty() && !l.trim().starts_with('#')).count();
        assert!(file.keys.len() + file.problems.len() <= meaningful);
        for key in &file.keys {
            assert!(key.line >= 1 && key.line <= lines);
        }
        let again = auth::parse(&text, source);
        assert_eq!(again.keys.len(), file.keys.len());
        assert_eq!(again.problems, file.problems);
        // The empty pattern list allows nothing.
        assert!(!auth::from_allows(&[], "127.0.0.1".parse().expect("ip")));
    }
});

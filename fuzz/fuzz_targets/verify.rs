//! The recording verifier, against a real signed recording (the seed made
//! by `tether`, in seeds/) with bytes changed by the fuzzer, and against
//! arbitrary files.
//!
//! Invariants: no panic; the untouched recording verifies; a changed
//! recording verifies only if every event in it reads back exactly as in
//! the original (a change the verifier accepts never changes what
//! happened); arbitrary bytes never verify.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::path::Path;
use tether::recording::Recording;
use tether::recording::verify::verify;

const ORIGINAL: &[u8] = include_bytes!("../seeds/recording.cast");
const KEY: &str = include_str!("../seeds/signing_ed25519_key.pub");

fn check(dir: &Path, bytes: &[u8]) -> Option<(bool, Vec<String>)> {
    // The seed's own name: a name of tether's form after another session
    // or start would be reported as renamed.
    let path = dir.join("seed-20261128T112200Z.cast");
    std::fs::write(&path, bytes).ok()?;
    let rec = Recording::open(&path).ok()?;
    let key = russh::keys::PublicKey::from_openssh(KEY.trim()).expect("the seed key");
    let report = verify(&rec, Some((key, "seed".into()))).ok()?;
    let events = rec.events().map(|e| e.map(|e| format!("{e:?}")).unwrap_or_default()).collect();
    Some((report.ok(), events))
}

fuzz_target!(|data: &[u8]| {
    let dir = tempfile::tempdir().expect("a temp dir");
    let (original_ok, original_events) = check(dir.path(), ORIGINAL).expect("the seed opens");
    assert!(original_ok, "the untouched seed recording must verify");
    // data: [mode, (position u16, byte)*]
    let Some((&mode, edits)) = data.split_first() else { return };
    if mode & 1 == 0 {
        let mut changed = ORIGINAL.to_vec();
        for edit in edits.chunks_exact(3) {
            let at = usize::from(u16::from_le_bytes([edit[0], edit[1]])) % changed.len();
            changed[at] = edit[2];
        }
        if let Some((true, events)) = check(dir.path(), &changed) {
            assert_eq!(events, original_events, "a change was accepted and changed the content");
        }
    } else if let Some((ok, _)) = check(dir.path(), edits) {
        assert!(!ok || edits == ORIGINAL, "arbitrary bytes verified");
    }
});

//! The keeper's terminal model: the scanner that answers queries and
//! filters output, the emulator, and the redraw a reattaching client gets.
//!
//! Invariants: no panic; feeding the output in pieces gives the same
//! output, answers and screen as feeding it whole; feeding the redraw into
//! a fresh screen of the same size reproduces the visible text and the
//! cursor (the reattach promise: the exact screen), and holds no REP;
//! a keyframe (a redraw with every capability) is read back the same. And
//! the PTY reader's router, which serves live clients ahead of the screen,
//! routes the same
//! bytes the same way and stands at the same position however its reads
//! and the screen's are cut (the hand-over from catching up to live
//! relies on it).
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use tether::term::redraw::Caps;
use tether::term::screen::Screen;
use tether::keeper::stream::Router;
use tether_proto::WindowSize;

const SCROLLBACK: usize = 2_000;

fn run(size: WindowSize, pieces: &[&[u8]]) -> (Screen, Vec<u8>, Vec<u8>) {
    let mut screen = Screen::new(size, SCROLLBACK);
    let (mut output, mut replies) = (Vec::new(), Vec::new());
    for piece in pieces {
        let fed = screen.feed(piece);
        output.extend_from_slice(&fed.output);
        replies.extend_from_slice(&fed.replies);
    }
    (screen, output, replies)
}

fuzz_target!(|data: &[u8]| {
    let [c, r, cut, rest @ ..] = data else { return };
    let size = WindowSize { cols: u16::from(*c % 100) + 1, rows: u16::from(*r % 40) + 1 };
    let (whole, out_whole, replies_whole) = run(size, &[rest]);
    let step = usize::from(*cut).max(1);
    let pieces: Vec<&[u8]> = rest.chunks(step).collect();
    let (split, out_split, replies_split) = run(size, &pieces);
    assert_eq!(out_whole, out_split, "output depends on how reads are cut");
    assert_eq!(replies_whole, replies_split, "answers depend on how reads are cut");
    assert_eq!(whole.visible_text(), split.visible_text());
    assert_eq!(whole.cursor(), split.cursor());
    assert_eq!(extras(&whole), extras(&split), "attributes depend on how reads are cut");

    // The router, cut differently from the screen, agrees with it.
    let mut router = Router::default();
    let (mut routed, mut routed_watchers, mut fed) = (Vec::new(), Vec::new(), 0u64);
    for piece in rest.chunks(step / 2 + 1) {
        let r = router.route(&Bytes::copy_from_slice(piece));
        routed.extend_from_slice(&r.output);
        routed_watchers.extend_from_slice(r.watchers.as_ref().unwrap_or(&r.output));
        fed += piece.len() as u64;
        assert!(router.position() <= fed);
    }
    assert_eq!(routed, out_split, "the router and the screen route differently");
    let mut screen = Screen::new(size, SCROLLBACK);
    let mut watchers = Vec::new();
    for piece in &pieces {
        let f = screen.feed(piece);
        watchers.extend_from_slice(f.watchers.as_ref().unwrap_or(&f.output));
    }
    assert_eq!(routed_watchers, watchers, "watchers would get different bytes");
    let position = rest.len() as u64 - screen.pending_len() as u64;
    assert_eq!(router.position(), position, "the router and the screen stand apart");

    let redraw = whole.redraw();
    assert!(!has_rep(&redraw), "REP in a redraw");
    let (fresh, _, _) = run(size, &[&redraw]);
    assert_eq!(fresh.visible_text(), whole.visible_text(), "redraw lost the screen");
    assert_eq!(fresh.cursor(), whole.cursor(), "redraw moved the cursor");
    // A keyframe (every capability) is read back the same.
    let (fresh, _, _) = run(size, &[&whole.redraw_for(Caps::ALL)]);
    assert_eq!(fresh.visible_text(), whole.visible_text(), "a keyframe lost the screen");
    assert_eq!(links(&fresh), links(&whole), "a keyframe lost a hyperlink");
});

/// What each visible cell holds beyond avt's attributes: (row, column,
/// the extras with the link's target in place of its number).
fn extras(screen: &Screen) -> Vec<(usize, usize, String)> {
    let table = screen.table();
    let mut out = Vec::new();
    for (row, line) in screen.visible_lines().enumerate() {
        for (col, cell) in line.cells().iter().enumerate() {
            if let Some(special) = table.get(cell.char()) {
                let mut e = special.extras;
                let link = table.link(std::mem::take(&mut e.link)).unwrap_or("");
                if !e.is_default() || !link.is_empty() {
                    out.push((row, col, format!("{e:?} {link}")));
                }
            }
        }
    }
    out
}

/// The visible cells under a hyperlink: (row, column, link).
fn links(screen: &Screen) -> Vec<(usize, usize, String)> {
    extras(screen)
        .into_iter()
        .filter_map(|(r, c, e)| e.split_once("} ").map(|(_, l)| (r, c, l.to_owned())))
        .filter(|(_, _, l)| !l.is_empty())
        .collect()
}

/// Whether `bytes` hold REP (`CSI n b`), which many terminals lack.
fn has_rep(bytes: &[u8]) -> bool {
    bytes.windows(2).enumerate().filter(|(_, w)| *w == b"\x1b[").any(|(i, _)| {
        let rest = &bytes[i + 2..];
        let digits = rest.iter().take_while(|b| b.is_ascii_digit()).count();
        rest.get(digits) == Some(&b'b')
    })
}

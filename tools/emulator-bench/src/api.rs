//! What the public API gives for writing our own redraw: each item is read
//! back after feeding a probe, so "yes" always comes with the value seen.

use crate::emu::{Api, Emulator};
use crate::workload::{COLS, ROWS};
use std::fmt::Debug;

/// Primary text, then the alternate screen with every piece of state set.
const PROBE: &str = concat!(
    "PRIMARY-TOP\r\n",
    "\x1b[?1049h\x1b[HALT-TOP",
    "\x1b[3;10r",                              // scroll region rows 2..=9
    "\x1b[5;7H\x1b7",                          // saved cursor col 6, row 4
    "\x1b)0\x0e",                              // G1 = DEC graphics, shifted out
    "\x1b[3g\x1b[1;5H\x1bH\x1b[1;9H\x1bH",     // tab stops 4 and 8
    "\x1b[?1h\x1b[?2004h\x1b[?1000h\x1b[?25l", // modes
    "\x1b[8;3H",                               // cursor col 2, row 7
);

/// Small screen and history so eviction starts quickly.
const SMALL_COLS: usize = 20;
const SMALL_ROWS: usize = 5;
const SMALL_HISTORY: usize = 10;
const SMALL_LINES: usize = 30;

fn show<T: Debug>(got: Api<T>) -> String {
    match got {
        Ok(v) => format!("yes: {v:?}"),
        Err(e) => e.to_string(),
    }
}

/// The checklist, one (item, finding) pair each.
pub fn run<E: Emulator>() -> Vec<(&'static str, String)> {
    let mut out = vec![
        ("cell char + zero-width extras", zero_width::<E>()),
        ("attributes", attributes::<E>()),
        ("colours (fg/bg)", colours::<E>()),
    ];
    let mut e = E::new(COLS, ROWS, 100);
    e.feed(PROBE.as_bytes());
    out.push(("cursor pos/visibility", format!("yes: {:?}", e.cursor())));
    out.push(("both screens", both_screens(&e)));
    out.push(("scroll region", show(e.scroll_region())));
    out.push(("saved cursor", show(e.saved_cursor())));
    out.push(("charsets", show(e.charsets())));
    out.push(("tab stops", show(e.tab_stops())));
    out.push(("modes", show(e.modes())));
    out.push(("crate's own state dump", own_dump(&e)));
    let (history, evicted) = history::<E>();
    out.push(("scrollback lines", history));
    out.push(("eviction hook", evicted));
    out
}

fn zero_width<E: Emulator>() -> String {
    let mut e = E::new(COLS, ROWS, 0);
    e.feed("e\u{301}a\u{200D}".as_bytes());
    match (e.cell(0, 0), e.cell(0, 1)) {
        (Some(a), Some(b)) => format!(
            "cell 0 = {:?}, cell 1 = {:?}: extras {}",
            a.text,
            b.text,
            if a.text.chars().count() > 1 { "kept" } else { "dropped" }
        ),
        _ => "no cells".to_owned(),
    }
}

fn attributes<E: Emulator>() -> String {
    let mut e = E::new(COLS, ROWS, 0);
    e.feed(b"\x1b[1;3;4:3;5;8;58;5;9m\x1b]8;;http://x\x1b\\X");
    let Some(c) = e.cell(0, 0) else {
        return "no cells".to_owned();
    };
    let mut have = vec!["bold", "italic"];
    let optional = [
        (c.underline.is_ok(), "underline"),
        (c.blink.is_ok(), "blink"),
        (c.concealed.is_ok(), "concealed"),
        (c.underline_colour.is_ok(), "underline colour"),
        (c.link.is_ok(), "hyperlink"),
    ];
    have.extend(optional.iter().filter(|(ok, _)| *ok).map(|(_, n)| *n));
    let missing: Vec<&str> = optional.iter().filter(|(ok, _)| !*ok).map(|(_, n)| *n).collect();
    format!(
        "of those probed: {}; none for: {}; read back: {}",
        have.join(", "),
        if missing.is_empty() { "-".to_owned() } else { missing.join(", ") },
        c.describe()
    )
}

fn colours<E: Emulator>() -> String {
    let mut e = E::new(COLS, ROWS, 0);
    e.feed(b"\x1b[31;48;5;100mA\x1b[38;2;1;2;3;49mB");
    match (e.cell(0, 0), e.cell(0, 1)) {
        (Some(a), Some(b)) => format!("yes: A fg {} bg {}, B fg {} bg {}", a.fg, a.bg, b.fg, b.bg),
        _ => "no cells".to_owned(),
    }
}

fn both_screens<E: Emulator>(e: &E) -> String {
    let alt = e.alternate_active();
    let top = e.cell(0, 0).map(|c| c.text).unwrap_or_default();
    match e.hidden_primary_row(0) {
        Ok(primary) => format!(
            "yes: alternate active {alt:?}, its cell 0 {top:?}; hidden primary row 0 {primary:?}"
        ),
        Err(e) => format!("active one only (alternate active {alt:?}); hidden primary: {e}"),
    }
}

/// Scrollback contents and the eviction hook, after more lines than fit.
fn history<E: Emulator>() -> (String, String) {
    let mut e = E::new(SMALL_COLS, SMALL_ROWS, SMALL_HISTORY);
    e.keep_evicted_text();
    for n in 1..=SMALL_LINES {
        e.feed(format!("line {n}\r\n").as_bytes());
    }
    let scrolled = SMALL_LINES + 1 - SMALL_ROWS;
    let history = match e.scrollback() {
        Ok((held, oldest)) => {
            format!("yes: {held} held (limit {SMALL_HISTORY}), oldest {oldest:?}")
        }
        Err(err) => err.to_string(),
    };
    let evicted = match e.evicted() {
        Ok((n, last)) => format!(
            "yes: {n} reported of {} evicted ({scrolled} scrolled off, {SMALL_HISTORY} kept), last {last:?}",
            scrolled - SMALL_HISTORY
        ),
        Err(err) => err.to_string(),
    };
    (history, evicted)
}

/// Longest dump shown; the rest is counted.
const DUMP_SHOWN: usize = 400;

/// The crate's own serialisation after the probe, escapes made visible and
/// runs of spaces shortened.
fn own_dump<E: Emulator>(e: &E) -> String {
    let dump = match e.own_dump() {
        Ok(d) => d,
        Err(err) => return err.to_string(),
    };
    let mut shown = String::new();
    let mut spaces = 0;
    for ch in dump.chars() {
        if ch == ' ' {
            spaces += 1;
            continue;
        }
        if spaces > 0 {
            shown.push_str(&if spaces > 3 { format!("␠×{spaces}") } else { " ".repeat(spaces) });
            spaces = 0;
        }
        match ch {
            '\x1b' => shown.push_str("ESC"),
            c if c.is_control() => shown.push_str(&c.escape_default().to_string()),
            c => shown.push(c),
        }
    }
    let total = shown.chars().count();
    if total > DUMP_SHOWN {
        shown = shown.chars().take(DUMP_SHOWN).collect();
        shown.push_str(&format!("…({total} chars)"));
    }
    format!("yes ({} bytes): `{shown}`", dump.len())
}

//! The fidelity cases: each feeds a fresh emulator a few bytes and checks
//! what its public API then shows.

use crate::emu::{Api, CellView, Colour, Emulator, Underline};
use crate::workload::{COLS, ROWS};
use std::fmt;
use std::panic::{AssertUnwindSafe, catch_unwind};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Pass,
    Fail,
    /// The crate has no public API to tell.
    NoApi,
    /// Behaviour reported as is, with no single right answer.
    Info,
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Status::Pass => "PASS",
            Status::Fail => "FAIL",
            Status::NoApi => "n/a (no public API)",
            Status::Info => "info",
        })
    }
}

pub struct Verdict {
    pub status: Status,
    pub detail: String,
}

fn verdict(pass: bool, detail: String) -> Verdict {
    let status = if pass { Status::Pass } else { Status::Fail };
    Verdict { status, detail }
}

fn no_api(detail: String) -> Verdict {
    Verdict { status: Status::NoApi, detail }
}

/// One case: what to feed and how to judge the result.
pub struct Case<E> {
    pub name: &'static str,
    pub input: String,
    pub check: fn(&mut E) -> Verdict,
}

fn case<E: Emulator>(name: &'static str, input: &str, check: fn(&mut E) -> Verdict) -> Case<E> {
    Case { name, input: input.to_owned(), check }
}

/// Every case, in report order.
pub fn cases<E: Emulator>() -> Vec<Case<E>> {
    vec![
        case("combining mark e+U+0301", "e\u{301}x", combining),
        case("VS16 U+2714 U+FE0F", "\u{2714}\u{FE0F}x", vs16),
        case("VS16 U+26A0 U+FE0F", "\u{26A0}\u{FE0F}x", vs16),
        case("ZWJ a U+200D b", "a\u{200D}b", zero_width),
        case("ZWSP a U+200B b", "a\u{200B}b", zero_width),
        case("SGR 38:5:208", "\x1b[38:5:208mX", fg_208),
        case("SGR 38:2:10:20:30", "\x1b[38:2:10:20:30mY", fg_rgb),
        case("SGR 38:2::10:20:30", "\x1b[38:2::10:20:30mZ", fg_rgb),
        case("concealed SGR 8", "\x1b[8mX", concealed),
        case("curly underline 4:3", "\x1b[4:3mX", curly),
        case("double underline 21", "\x1b[21mX", double),
        case("double underline 4:2", "\x1b[4:2mX", double),
        case("underline colour 58;5;196", "\x1b[58;5;196mX", ul_196),
        case("58;5;196 leaves blink off", "\x1b[58;5;196mX", no_blink),
        case("underline colour 58:2::1:2:3", "\x1b[58:2::1:2:3mX", ul_rgb),
        case("58:2::1:2:3 leaves blink off", "\x1b[58:2::1:2:3mX", no_blink),
        case("blink SGR 5", "\x1b[5mX", blink),
        case("modifyOtherKeys >4;2m", "\x1b[>4;2m", modify_other_keys),
        case("cursor blink ?12h", "\x1b[?12h", cursor_blink),
        case("reverse video ?5h", "\x1b[?5h", reverse_video),
        case("OSC 10/11/12 colours", OSC_COLOURS, osc_colours),
        case("OSC 8 hyperlink on cell", OSC_8, hyperlink),
        case("tab stops via TBC+HTS", TABS, tabs),
        case("tab stops readable", TABS, tabs_readable),
        case("REP a CSI 3 b", "a\x1b[3b", rep),
        Case { name: "autowrap at bottom-right, bg 44", input: autowrap_input(), check: autowrap },
    ]
}

const OSC_COLOURS: &str = "\x1b]10;#a0b0c0\x07\x1b]11;#102030\x07\x1b]12;#405060\x07";
const OSC_8: &str = "\x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\";
const TABS: &str = "\x1b[3g\x1b[5G\x1bH\x1b[9G\x1bH\r\ta\tb";

/// Blue background, the last row filled to the margin, then one more char.
fn autowrap_input() -> String {
    format!("\x1b[44m\x1b[{ROWS};1H{}Z", "A".repeat(COLS))
}

/// Runs every case on a fresh emulator each.
pub fn run<E: Emulator>() -> Vec<(&'static str, Verdict)> {
    cases::<E>().into_iter().map(|c| (c.name, run_case(&c))).collect()
}

fn run_case<E: Emulator>(case: &Case<E>) -> Verdict {
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        let mut emu = E::new(COLS, ROWS, 100);
        emu.feed(case.input.as_bytes());
        let mut v = (case.check)(&mut emu);
        let notes = emu.take_notes();
        if !notes.is_empty() {
            v.detail.push_str(&format!("; embedder saw: {}", notes.join(", ")));
        }
        v
    }));
    outcome.unwrap_or_else(|_| verdict(false, "panicked".to_owned()))
}

fn cell<E: Emulator>(e: &E, row: usize, col: usize) -> CellView {
    e.cell(row, col).unwrap_or_else(|| panic!("no cell at {row},{col}"))
}

/// The column of the first cell on `row` whose text starts with `text`.
fn find<E: Emulator>(e: &E, row: usize, text: &str) -> Option<usize> {
    (0..COLS).find(|&c| e.cell(row, c).is_some_and(|v| v.text.starts_with(text)))
}

fn row_text<E: Emulator>(e: &E, row: usize) -> String {
    let text: String =
        (0..COLS).filter_map(|c| e.cell(row, c)).filter(|v| v.width > 0).map(|v| v.text).collect();
    text.trim_end().to_owned()
}

fn combining<E: Emulator>(e: &mut E) -> Verdict {
    let first = cell(e, 0, 0);
    let x = find(e, 0, "x");
    let kept = first.text.contains('\u{301}') || first.text == "\u{e9}";
    let detail = format!(
        "cell 0 = {:?} (width {}), mark kept: {kept}, x at col {x:?}, row = {:?}",
        first.text,
        first.width,
        row_text(e, 0)
    );
    verdict(first.width == 1 && x == Some(1) && kept, detail)
}

fn vs16<E: Emulator>(e: &mut E) -> Verdict {
    let first = cell(e, 0, 0);
    let x = find(e, 0, "x");
    let detail = format!(
        "emoji width {} (xterm: 1), VS16 kept in cell: {}, x at col {x:?}",
        first.width,
        first.text.contains('\u{FE0F}')
    );
    verdict(first.width >= 1 && x == Some(first.width), detail)
}

fn zero_width<E: Emulator>(e: &mut E) -> Verdict {
    let first = cell(e, 0, 0);
    let b = find(e, 0, "b");
    let detail = format!("cell 0 = {:?}, b at col {b:?}", first.text);
    verdict(b == Some(1), detail)
}

fn fg_is<E: Emulator>(e: &E, want: Colour) -> Verdict {
    let c = cell(e, 0, 0);
    verdict(c.fg == want, c.describe())
}

fn fg_208<E: Emulator>(e: &mut E) -> Verdict {
    fg_is(e, Colour::Indexed(208))
}

fn fg_rgb<E: Emulator>(e: &mut E) -> Verdict {
    fg_is(e, Colour::Rgb(10, 20, 30))
}

/// Judges an optional accessor: PASS if it gives `want`.
fn api_is<T: PartialEq + fmt::Debug>(got: Api<T>, want: T, context: String) -> Verdict {
    match got {
        Err(_) => no_api(context),
        Ok(v) => {
            let pass = v == want;
            verdict(pass, format!("{v:?}; {context}"))
        }
    }
}

fn concealed<E: Emulator>(e: &mut E) -> Verdict {
    let c = cell(e, 0, 0);
    api_is(c.concealed, true, c.describe())
}

fn underline_is<E: Emulator>(e: &E, want: Underline) -> Verdict {
    let c = cell(e, 0, 0);
    api_is(c.underline, want, c.describe())
}

fn curly<E: Emulator>(e: &mut E) -> Verdict {
    underline_is(e, Underline::Curly)
}

fn double<E: Emulator>(e: &mut E) -> Verdict {
    underline_is(e, Underline::Double)
}

fn ul_196<E: Emulator>(e: &mut E) -> Verdict {
    let c = cell(e, 0, 0);
    api_is(c.underline_colour, Some(Colour::Indexed(196)), c.describe())
}

fn ul_rgb<E: Emulator>(e: &mut E) -> Verdict {
    let c = cell(e, 0, 0);
    api_is(c.underline_colour, Some(Colour::Rgb(1, 2, 3)), c.describe())
}

fn no_blink<E: Emulator>(e: &mut E) -> Verdict {
    let c = cell(e, 0, 0);
    api_is(c.blink, false, c.describe())
}

fn blink<E: Emulator>(e: &mut E) -> Verdict {
    let c = cell(e, 0, 0);
    api_is(c.blink, true, c.describe())
}

fn modify_other_keys<E: Emulator>(e: &mut E) -> Verdict {
    api_is(e.modify_other_keys(), 2, String::new())
}

fn cursor_blink<E: Emulator>(e: &mut E) -> Verdict {
    api_is(e.cursor_blink(), true, String::new())
}

fn reverse_video<E: Emulator>(e: &mut E) -> Verdict {
    api_is(e.reverse_video(), true, String::new())
}

fn osc_colours<E: Emulator>(e: &mut E) -> Verdict {
    let got: Api<Vec<_>> = [10, 11, 12].iter().map(|&n| e.dynamic_colour(n)).collect();
    let want = vec![Some((0xa0, 0xb0, 0xc0)), Some((0x10, 0x20, 0x30)), Some((0x40, 0x50, 0x60))];
    api_is(got, want, "OSC 10, 11, 12".to_owned())
}

fn hyperlink<E: Emulator>(e: &mut E) -> Verdict {
    let linked = cell(e, 0, 0);
    let after = cell(e, 0, 4);
    let context = format!("cell 4 link: {:?}", after.link);
    api_is(linked.link, Some("http://x".to_owned()), context)
}

fn tabs<E: Emulator>(e: &mut E) -> Verdict {
    let (a, b) = (find(e, 0, "a"), find(e, 0, "b"));
    verdict(a == Some(4) && b == Some(8), format!("a at col {a:?}, b at col {b:?}"))
}

fn tabs_readable<E: Emulator>(e: &mut E) -> Verdict {
    api_is(e.tab_stops(), vec![4, 8], String::new())
}

fn rep<E: Emulator>(e: &mut E) -> Verdict {
    let text = row_text(e, 0);
    verdict(text == "aaaa", format!("row 0 = {text:?}"))
}

fn autowrap<E: Emulator>(e: &mut E) -> Verdict {
    let last = ROWS - 1;
    let z = cell(e, last, 0);
    let blank = cell(e, last, 1);
    let above = cell(e, last - 1, COLS - 1);
    // xterm scrolls in a line of the current background (bce); tmux 3.3
    // wraps with the default one (screen_write_linefeed(ctx, 1, 8)).
    let like = match blank.bg {
        Colour::Indexed(4) => "like xterm (bce)",
        Colour::Default => "like tmux",
        _ => "like neither xterm nor tmux",
    };
    let detail = format!(
        "new line: Z bg {}, blank cells bg {} ({like}); row above ends {:?} bg {}; cursor {:?}",
        z.bg,
        blank.bg,
        above.text,
        above.bg,
        e.cursor()
    );
    Verdict { status: Status::Info, detail }
}

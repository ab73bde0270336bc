//! The bytes that paint a session's screen on a client's terminal, written
//! for every terminal people attach from, not for one emulator.
//!
//! The screen model ([`super::screen`]) describes its whole state (both
//! screens, saved cursors, margins, tab stops, charsets, modes) as avt's
//! dump: a stream that avt itself, and asciinema's player, replay exactly,
//! but that uses what many terminals lack. [`portable`] rewrites it into
//! what GNU screen, tmux, mosh, the Linux console and xterm-compatible
//! emulators all render the same:
//!
//! * **No REP** (`CSI n b`): a run of equal cells is written out. Blanks
//!   with no visible attribute before the end of a line are not written at
//!   all: the redraw starts from a cleared screen.
//! * **SGR in the `;` form** (`38;5;208`, `38;2;R;G;B`), always from a
//!   reset, never the colon form that parsers knowing only `;` misread.
//! * **Tab stops the portable way**: `CSI 3 g` clears them, `ESC H` sets
//!   one (ECMA-48's CTC, which avt writes, is ignored by tmux, screen and
//!   most emulators); default stops are set explicitly too, so a terminal
//!   left with another session's stops gets the model's.
//!
//! * **Cells beyond avt** ([`super::cells`]): a placeholder is written as
//!   the grapheme it stands for, with its concealed attribute, and with its
//!   underline style and colour only where the client's terminal has them
//!   ([`Caps`], from its terminfo entry as tmux does); otherwise as a plain
//!   underline.
//!
//! [`Style`] is the one SGR writer: the redraw, the watcher view and the
//! history the model carries over when it is rebuilt all use it.

use crate::term::cells::{Colour, Extras, Table, Underline};
use avt::{Color, Pen};
use std::fmt::Write as _;
use unicode_width::UnicodeWidthChar;

/// Optional capabilities of the terminal a redraw is written for. None by
/// default: a capability is used only where the terminal says it has it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    /// Underline styles, `CSI 4 : n m` (terminfo `Smulx`).
    pub styled_underline: bool,
    /// Underline colours, `CSI 58 ; … m` (terminfo `Setulc`).
    pub underline_color: bool,
}

impl Caps {
    /// Everything: for redraws that tether itself reads back (keyframes).
    pub const ALL: Caps = Caps { styled_underline: true, underline_color: true };
}

/// Graphic rendition: the attributes and colours of a cell, as the screen
/// model holds them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Style {
    flags: u8,
    fg: Option<Color>,
    bg: Option<Color>,
}

const BOLD: u8 = 1;
const FAINT: u8 = 2;
const ITALIC: u8 = 4;
const UNDERLINE: u8 = 8;
const BLINK: u8 = 16;
const INVERSE: u8 = 32;
const STRIKE: u8 = 64;

/// SGR parameter of each flag, in the order they are written.
const FLAG_CODES: [(u8, u8); 7] =
    [(BOLD, 1), (FAINT, 2), (ITALIC, 3), (UNDERLINE, 4), (BLINK, 5), (INVERSE, 7), (STRIKE, 9)];

impl Style {
    /// The style of a cell of the model.
    pub fn of(pen: &Pen) -> Style {
        let mut flags = 0;
        for (on, flag) in [
            (pen.is_bold(), BOLD),
            (pen.is_faint(), FAINT),
            (pen.is_italic(), ITALIC),
            (pen.is_underline(), UNDERLINE),
            (pen.is_blink(), BLINK),
            (pen.is_inverse(), INVERSE),
            (pen.is_strikethrough(), STRIKE),
        ] {
            if on {
                flags |= flag;
            }
        }
        Style { flags, fg: pen.foreground(), bg: pen.background() }
    }

    /// Whether the style underlines.
    pub fn underlined(&self) -> bool {
        self.flags & UNDERLINE != 0
    }

    /// Whether a blank in this style looks like a cleared cell: no
    /// background, no inverse, no line through or under it.
    pub fn blank_is_invisible(&self) -> bool {
        self.bg.is_none() && self.flags & (INVERSE | UNDERLINE | STRIKE) == 0
    }

    /// Appends the SGR sequence that sets exactly this style, starting from
    /// a reset, in the `;` form every terminal parses.
    pub fn write_sgr(&self, out: &mut String) {
        out.push_str("\x1b[0");
        for (flag, code) in FLAG_CODES {
            if self.flags & flag != 0 {
                let _ = write!(out, ";{code}");
            }
        }
        for (color, base) in [(self.fg, 30u8), (self.bg, 40u8)] {
            match color {
                Some(Color::Indexed(i)) if i < 8 => {
                    let _ = write!(out, ";{}", base + i);
                }
                Some(Color::Indexed(i)) if i < 16 => {
                    let _ = write!(out, ";{}", base + 60 + i - 8);
                }
                Some(Color::Indexed(i)) => {
                    let _ = write!(out, ";{};5;{i}", base + 8);
                }
                Some(Color::RGB(c)) => {
                    let _ = write!(out, ";{};2;{};{};{}", base + 8, c.r, c.g, c.b);
                }
                None => {}
            }
        }
        out.push('m');
    }

    /// The SGR sequence for this style (see [`Style::write_sgr`]).
    pub fn sgr(&self) -> String {
        let mut s = String::with_capacity(16);
        self.write_sgr(&mut s);
        s
    }

    /// Applies the parameters of one SGR sequence (`;`- or `:`-separated,
    /// as avt writes them) to this style.
    fn apply(&mut self, params: &str) {
        let groups: Vec<&str> = params.split(';').collect();
        let mut i = 0;
        while i < groups.len() {
            let group = groups[i];
            i += 1;
            let mut parts = group.split(':').map(|p| p.parse::<u16>().unwrap_or(0));
            let first = parts.next().unwrap_or(0);
            match first {
                0 => *self = Style::default(),
                1 => self.flags = (self.flags & !FAINT) | BOLD,
                2 => self.flags = (self.flags & !BOLD) | FAINT,
                3 => self.flags |= ITALIC,
                4 => self.flags |= UNDERLINE,
                5 => self.flags |= BLINK,
                7 => self.flags |= INVERSE,
                9 => self.flags |= STRIKE,
                21 | 22 => self.flags &= !(BOLD | FAINT),
                23 => self.flags &= !ITALIC,
                24 => self.flags &= !UNDERLINE,
                25 => self.flags &= !BLINK,
                27 => self.flags &= !INVERSE,
                29 => self.flags &= !STRIKE,
                30..=37 => self.fg = Some(Color::Indexed((first - 30) as u8)),
                39 => self.fg = None,
                40..=47 => self.bg = Some(Color::Indexed((first - 40) as u8)),
                49 => self.bg = None,
                90..=97 => self.fg = Some(Color::Indexed((first - 90 + 8) as u8)),
                100..=107 => self.bg = Some(Color::Indexed((first - 100 + 8) as u8)),
                38 | 48 => {
                    // Sub-parameters after ':' (avt's form), else the next
                    // ';' groups (xterm's form).
                    let mut sub: Vec<u16> = parts.collect();
                    if sub.is_empty() {
                        let want = match groups.get(i).and_then(|g| g.parse::<u16>().ok()) {
                            Some(5) => 2,
                            Some(2) => 4,
                            _ => 0,
                        };
                        sub =
                            groups[i..].iter().take(want).map(|g| g.parse().unwrap_or(0)).collect();
                        i += sub.len();
                    }
                    let color = match sub.as_slice() {
                        [5, n, ..] => Some(Color::Indexed(*n as u8)),
                        [2, r, g, b] | [2, _, r, g, b, ..] => {
                            Some(Color::rgb(*r as u8, *g as u8, *b as u8))
                        }
                        _ => None,
                    };
                    if let Some(color) = color {
                        if first == 38 {
                            self.fg = Some(color);
                        } else {
                            self.bg = Some(color);
                        }
                    }
                }
                _ => {}
            }
        }
    }
}

/// Appends what a cell with `extras` needs beyond `style` (already in
/// effect), as far as `caps` allows.
pub fn write_extras(extras: &Extras, style: &Style, caps: Caps, out: &mut String) {
    if extras.conceal {
        out.push_str("\x1b[8m");
    }
    if caps.styled_underline && style.underlined() && extras.underline != Underline::Plain {
        let _ = write!(out, "\x1b[4:{}m", extras.underline.code());
    }
    match extras.underline_color.filter(|_| caps.underline_color) {
        Some(Colour::Indexed(i)) => {
            let _ = write!(out, "\x1b[58;5;{i}m");
        }
        Some(Colour::Rgb(r, g, b)) => {
            let _ = write!(out, "\x1b[58;2;{r};{g};{b}m");
        }
        None => {}
    }
}

/// Appends the tab stops of a terminal `cols` wide with a stop every eight
/// columns, set the portable way (the cursor is left in column 1).
pub fn write_default_tabs(cols: usize, out: &mut String) {
    out.push_str("\x1b[3g");
    for col in (8..cols).step_by(8) {
        let _ = write!(out, "\x1b[{}G\x1bH", col + 1);
    }
    out.push('\r');
}

/// Whether avt's dump sets tab stops (it does only when they differ from
/// the default).
pub fn sets_tabs(dump: &str) -> bool {
    dump.contains("\x1b[5W")
}

/// Rewrites avt's dump of a screen `cols` wide into what every common
/// terminal renders (see the module header), appending it to `out`; the
/// terminal's cursor is in column 1. Placeholders are looked up in
/// `table`, optional capabilities used as far as `caps` allows.
pub fn portable(dump: &str, cols: usize, table: &Table, caps: Caps, out: &mut String) {
    let mut w = Writer {
        out,
        style: Style::default(),
        extras: Extras::default(),
        link: 0,
        table,
        caps,
        last: None,
        blanks: 0,
        blank_start: None,
        cols: cols.max(1),
        col: Some(0),
    };
    let mut rest = dump;
    while let Some(c) = rest.chars().next() {
        if c != '\x1b' {
            rest = &rest[c.len_utf8()..];
            w.char(c);
            continue;
        }
        let seq_len = crate::term::feed::sequence_len(rest);
        let seq = &rest[..seq_len];
        rest = &rest[seq_len..];
        w.sequence(seq);
    }
    w.flush_blanks();
    if w.link != 0 {
        // The link open at the end, if any, is the modes' to restore.
        w.open_link(0);
    }
}

struct Writer<'a> {
    out: &'a mut String,
    /// The style in effect on the terminal being painted.
    style: Style,
    /// The cell attributes beyond `style` in effect there (their link
    /// aside: an SGR does not close a hyperlink).
    extras: Extras,
    /// The hyperlink open there ([`Extras::link`]).
    link: u16,
    table: &'a Table,
    caps: Caps,
    /// The last character printed, for REP.
    last: Option<char>,
    /// Invisible blanks not yet written: dropped if the line ends first.
    blanks: usize,
    /// The column the first of them would be written in.
    blank_start: Option<usize>,
    cols: usize,
    /// The terminal's cursor column (`cols`: after the last column, a
    /// wrap pending), where known.
    col: Option<usize>,
}

impl Writer<'_> {
    fn char(&mut self, c: char) {
        if c.is_control() {
            self.control(c);
            return;
        }
        let special = self.table.get(c);
        let mut extras = special.map(|s| s.extras).unwrap_or_default();
        let link = std::mem::take(&mut extras.link);
        if link != self.link {
            self.flush_blanks();
            self.open_link(link);
        }
        if extras != self.extras {
            self.flush_blanks();
            // From a reset: the base style, then what this cell adds.
            self.style.write_sgr(self.out);
            write_extras(&extras, &self.style, self.caps, self.out);
            self.extras = extras;
        }
        self.last = Some(c);
        if let Some(special) = special {
            self.flush_blanks();
            self.out.push_str(&special.text);
        } else if c == ' ' && self.style.blank_is_invisible() {
            if self.blanks == 0 {
                self.blank_start = self.col;
            }
            self.blanks += 1;
            return;
        } else {
            self.flush_blanks();
            self.out.push(c);
        }
        // A placeholder has the width avt gave the cell.
        self.advance(usize::from(c.width() == Some(2)) + 1);
    }

    /// The cursor after printing a character `width` cells wide.
    fn advance(&mut self, width: usize) {
        self.col = self.col.map(|col| {
            if col + width > self.cols {
                // Wraps (or was pending a wrap) and lands on the next line.
                width
            } else {
                col + width
            }
        });
    }

    fn control(&mut self, c: char) {
        // At a line's end, trailing invisible blanks are not needed on a
        // cleared screen, if they all sit on this line (blanks that wrap
        // from the line above move the cursor to this one).
        let on_this_line =
            self.blank_start.is_some_and(|s| s < self.cols && s + self.blanks <= self.cols);
        if c == '\r' && on_this_line {
            self.blanks = 0;
        } else {
            self.flush_blanks();
        }
        self.out.push(c);
        self.col = match c {
            '\r' => Some(0),
            '\n' => self.col.map(|col| col.min(self.cols - 1)),
            '\x07' | '\x0e' | '\x0f' => self.col,
            _ => None,
        };
    }

    /// Opens hyperlink `link` (closes the open one if 0).
    fn open_link(&mut self, link: u16) {
        let _ = write!(self.out, "\x1b]8;{}\x1b\\", self.table.link(link).unwrap_or(";"));
        self.link = link;
    }

    fn flush_blanks(&mut self) {
        for _ in 0..std::mem::take(&mut self.blanks) {
            self.out.push(' ');
            self.advance(1);
        }
    }

    /// Follows the cursor's column through a sequence the dump holds.
    fn moved_by(&mut self, params: &str, fin: &str) {
        let n = |i: usize| -> usize {
            params.split(';').nth(i).and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1)
        };
        let last = self.cols - 1;
        self.col = match fin {
            "H" | "f" => Some((n(1) - 1).min(last)),
            "G" | "`" => Some((n(0) - 1).min(last)),
            "C" => self.col.map(|c| (c.min(last) + n(0)).min(last)),
            "D" => self.col.map(|c| c.min(last).saturating_sub(n(0))),
            "E" | "F" | "r" => Some(0),
            // Tab moves, restored cursors, anything else that may move.
            "I" | "Z" | "u" | "s" => None,
            _ => self.col,
        };
    }

    fn sequence(&mut self, seq: &str) {
        if self.link != 0 && !seq.ends_with('m') {
            // Erases and moves with no link open, as the cells they touch
            // hold none.
            self.flush_blanks();
            self.open_link(0);
        }
        let csi = seq.strip_prefix("\x1b[");
        let Some(body) = csi else {
            self.flush_blanks();
            self.out.push_str(seq);
            // ESC 8 restores a cursor, ESC c resets, ESC E is a new line.
            self.col = match seq {
                "\x1b8" => None,
                "\x1bc" | "\x1bE" => Some(0),
                _ => self.col,
            };
            return;
        };
        let (params, fin) = body.split_at(body.len().saturating_sub(1));
        match fin {
            "b" if !params.starts_with(['?', '>', '<', '=']) => {
                let n = params.parse::<usize>().unwrap_or(1).max(1);
                if let Some(c) = self.last {
                    for _ in 0..n {
                        self.char(c);
                    }
                }
            }
            "m" if !params.starts_with(['?', '>', '<', '=']) => {
                let mut style = self.style;
                style.apply(params);
                if style != self.style {
                    // Blanks owed so far are in the old style.
                    self.flush_blanks();
                    self.style = style;
                    style.write_sgr(self.out);
                    // The reset took the extras away too.
                    self.extras = Extras::default();
                }
            }
            "W" => {
                self.flush_blanks();
                match params {
                    "" | "0" => self.out.push_str("\x1bH"),
                    "2" => self.out.push_str("\x1b[0g"),
                    "5" => self.out.push_str("\x1b[3g"),
                    _ => {}
                }
            }
            _ => {
                // Moves and everything else: owed blanks first, so that
                // relative moves and saved positions stay right.
                self.flush_blanks();
                self.out.push_str(seq);
                if !params.starts_with(['?', '>', '<', '=', '!']) {
                    self.moved_by(params, fin);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewrite(dump: &str) -> String {
        let mut out = String::new();
        portable(dump, 80, &Table::default(), Caps::default(), &mut out);
        out
    }

    #[test]
    fn rep_is_written_out() {
        assert_eq!(rewrite("x\x1b[5b|\r\n"), "xxxxxx|\r\n");
        assert_eq!(rewrite("─\x1b[3b"), "────");
    }

    #[test]
    fn invisible_trailing_blanks_are_dropped_and_inner_ones_kept() {
        assert_eq!(rewrite("a \x1b[9b\r\nb  c"), "a\r\nb  c");
        // A background makes blanks visible.
        assert_eq!(rewrite("\x1b[44m \x1b[2b\r\n"), "\x1b[0;44m   \r\n");
    }

    #[test]
    fn sgr_is_rewritten_in_the_semicolon_form() {
        assert_eq!(rewrite("\x1b[38:5:208mX"), "\x1b[0;38;5;208mX");
        assert_eq!(
            rewrite("\x1b[1;48:2:1:2:3mX\x1b[22mY"),
            "\x1b[0;1;48;2;1;2;3mX\x1b[0;48;2;1;2;3mY"
        );
        assert_eq!(rewrite("\x1b[38;5;9;48;2;4;5;6m"), "\x1b[0;91;48;2;4;5;6m");
    }

    #[test]
    fn tab_stops_are_set_the_portable_way() {
        assert_eq!(rewrite("\x1b[5W\x1b[5G\x1b[0W"), "\x1b[3g\x1b[5G\x1bH");
        let mut tabs = String::new();
        write_default_tabs(20, &mut tabs);
        assert_eq!(tabs, "\x1b[3g\x1b[9G\x1bH\x1b[17G\x1bH\r");
    }

    #[test]
    fn the_style_of_a_pen_round_trips() {
        let mut style = Style::default();
        style.apply("1;3;4;5;7;9;38;5;208;48;2;1;2;3");
        let mut again = Style::default();
        let sgr = style.sgr();
        again.apply(&sgr[2..sgr.len() - 1]);
        assert_eq!(style, again);
    }
}

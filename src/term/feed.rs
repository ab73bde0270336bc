//! What the screen model is fed: the job's text, with what avt cannot hold
//! or would misread put in a form it keeps.
//!
//! * **Zero-width characters** (combining marks such as U+0301, the
//!   variation selectors VS15/VS16, ZWJ, ZWSP and the other characters
//!   `unicode-width` measures as 0) join the character before them, as in
//!   xterm: they never take a cell of their own. The cell becomes a
//!   placeholder for the whole grapheme, as the job wrote it
//!   ([`super::cells`]); the base character's width is the cell's (`✔`
//!   followed by VS16 is one cell, as xterm and tmux 3.3 draw it). A
//!   zero-width character right after a control or a sequence has no cell
//!   to join and is dropped; one at the start of a read joins the last
//!   cell of the previous read ([`Feeder::carried`]), so that how reads are
//!   cut changes nothing.
//! * **Attributes avt lacks** (underline styles, an underline colour,
//!   concealed text) are followed here, taken out of the SGR sequences avt
//!   sees (it would read the `5` of `58;5;N` as blink, the `2` of
//!   `58;2;R;G;B` as faint, and `21` as "normal intensity"), and carried
//!   by placeholders on the cells printed while they are on.
//!
//! * **Hyperlinks** (OSC 8) are followed here too: the cells printed while
//!   one is open carry it ([`Extras::link`]), so that a redraw opens and
//!   closes each link where the job did.
//!
//! * **DEL** (0x7f) outside sequences is dropped: terminals ignore it, avt
//!   would give it a cell.
//!
//! The bytes the clients and the recording get are never changed.

use crate::term::cells::{Colour, Extras, Special, Table, Underline, is_placeholder};
use std::borrow::Cow;
use unicode_width::UnicodeWidthChar;

/// The model's side of the job's text: the attributes avt lacks, as the
/// job last set them, and the placeholders given out so far.
#[derive(Debug, Default)]
pub struct Feeder {
    extras: Extras,
    table: Table,
    /// The screen's width: a character wider than that has no cell to
    /// join (0: not set, no limit).
    cols: usize,
    /// The model's character for the last cell the previous text printed,
    /// if nothing but text followed it.
    carry: Option<char>,
}

impl Feeder {
    /// The placeholders given out so far.
    pub fn table(&self) -> &Table {
        &self.table
    }

    /// The model's character for the last cell the text so far printed, if
    /// nothing but text followed it: zero-width characters at the start of
    /// the next text join it.
    pub fn carry(&self) -> Option<char> {
        self.carry
    }

    /// Something other than text happened to the model (a resize to
    /// `cols` columns): the next text cannot join the last cell.
    pub fn interrupt(&mut self, cols: usize) {
        self.carry = None;
        self.cols = cols;
    }

    /// Whether a cell holding `c` can take zero-width characters: it fits
    /// the screen (a wide character on a one-column screen does not).
    fn joinable(&self, c: char) -> bool {
        self.cols == 0 || c.width().unwrap_or(1) <= self.cols
    }

    /// The zero-width characters `text` starts with, if they can join the
    /// last cell of the previous text: that cell's character, what it
    /// becomes with them, and the rest of `text`.
    pub fn carried<'a>(&mut self, text: &'a str) -> Option<(char, char, &'a str)> {
        let held = self.carry?;
        // DEL is nothing to a terminal: marks after it still join.
        let lead = text.find(|c: char| !is_zero_width(c) && c != '\u{7f}').unwrap_or(text.len());
        if !text[..lead].chars().any(is_zero_width) {
            return None;
        }
        let mut joined = String::new();
        joined.push(held);
        for c in text[..lead].chars().filter(|c| is_zero_width(*c)) {
            let at = joined.len() - joined.chars().last().map_or(0, char::len_utf8);
            self.join(&mut joined, at, c);
        }
        let now = joined.chars().next_back()?;
        self.carry = Some(now);
        Some((held, now, &text[lead..]))
    }

    /// `text` as the screen model should read it (see the module header).
    pub fn for_model<'a>(&mut self, text: &'a str) -> Cow<'a, str> {
        if text.is_empty() {
            // Nothing happened: the last cell can still be joined.
            return Cow::Borrowed(text);
        }
        let bytes = text.as_bytes();
        if self.extras.is_default()
            && !bytes.contains(&0x7f)
            && !has_sgr_suspect(text)
            && (bytes.is_ascii()
                || !text.chars().any(|c| is_zero_width(c) || is_placeholder(c) || is_c1(c)))
        {
            self.carry = last_cell(text).filter(|c| self.joinable(*c));
            return Cow::Borrowed(text);
        }
        let mut out = String::with_capacity(text.len() + 16);
        // Byte offset in `out` of the last character that took a cell,
        // while nothing but zero-width characters followed it.
        let mut last: Option<usize> = None;
        // Whether anything but DEL and dropped marks was seen: if not, the
        // last cell of the previous text can still be joined.
        let mut touched = false;
        let mut rest = text;
        while let Some(c) = rest.chars().next() {
            if c != '\u{7f}' && !(is_zero_width(c) && last.is_none()) {
                touched = true;
            }
            if c == '\x1b' || is_c1_introducer(c) {
                let len = sequence_len(rest);
                let seq = &rest[..len];
                rest = &rest[len..];
                last = None;
                if let Some(link) = osc8(seq) {
                    self.extras.link = match link {
                        Some(link) => self.table.intern_link(&link),
                        None => 0,
                    };
                }
                match seq.strip_prefix("\x1b[").and_then(|s| s.strip_suffix('m')) {
                    Some(params) if !params.starts_with(['<', '=', '>', '?', ':']) => {
                        out.push_str("\x1b[");
                        // C0 controls inside are executed before the SGR
                        // takes effect, as avt does (and inside it: the
                        // ESC has ended whatever came before); the SGR is
                        // read without them.
                        let controls = params.contains(|c: char| c.is_ascii_control());
                        let params = if controls {
                            out.extend(params.chars().filter(|c| *c < ' '));
                            Cow::Owned(params.replace(|c: char| c.is_ascii_control(), ""))
                        } else {
                            Cow::Borrowed(params)
                        };
                        // Nothing left for avt: an SGR it skips (the ESC
                        // still ends whatever sequence came before).
                        out.push_str(&self.sgr(&params).unwrap_or_else(|| "59".to_owned()));
                        out.push('m');
                    }
                    _ => out.push_str(seq),
                }
                continue;
            }
            rest = &rest[c.len_utf8()..];
            if is_zero_width(c) {
                if let Some(at) = last {
                    self.join(&mut out, at, c);
                }
                continue;
            }
            if c == '\u{7f}' {
                // DEL: terminals ignore it; avt would print it in a cell.
                continue;
            }
            if c.is_control() {
                last = None;
                out.push(c);
                continue;
            }
            last = self.joinable(c).then_some(out.len());
            if !self.extras.is_default() || is_placeholder(c) {
                let special = Special { text: c.to_string().into(), extras: self.extras };
                out.push(self.table.intern(c, special).unwrap_or(c));
            } else {
                out.push(c);
            }
        }
        if touched {
            self.carry = last.and_then(|at| out[at..].chars().next());
        }
        Cow::Owned(out)
    }

    /// Joins zero-width `c` to the cell whose character is at `out[at..]`.
    fn join(&mut self, out: &mut String, at: usize, c: char) {
        let Some(held) = out[at..].chars().next() else { return };
        let (base, mut text) = match self.table.get(held) {
            Some(special) => {
                (special.text.chars().next().unwrap_or(held), special.text.to_string())
            }
            None => (held, held.to_string()),
        };
        text.push(c);
        let special = Special { text: text.into(), extras: self.extras };
        if let Some(placeholder) = self.table.intern(base, special) {
            out.truncate(at);
            out.push(placeholder);
        }
    }

    /// Follows one SGR sequence's parameters; returns those avt should
    /// see, or `None` when none are left (an empty SGR would reset
    /// everything).
    fn sgr(&mut self, params: &str) -> Option<String> {
        let groups: Vec<&str> = params.split(';').collect();
        let mut kept: Vec<&str> = Vec::with_capacity(groups.len());
        let mut i = 0;
        while i < groups.len() {
            let group = groups[i];
            i += 1;
            let mut parts = group.split(':');
            let first = parts.next().unwrap_or("");
            match first {
                "" | "0" => {
                    // A reset leaves a hyperlink open.
                    self.extras = Extras { link: self.extras.link, ..Extras::default() };
                    kept.push(group);
                }
                "4" => {
                    let style = parts.next().map(|p| p.parse::<u8>().unwrap_or(1));
                    self.extras.underline = match style {
                        Some(2) => Underline::Double,
                        Some(3) => Underline::Curly,
                        Some(4) => Underline::Dotted,
                        Some(5) => Underline::Dashed,
                        _ => Underline::Plain,
                    };
                    kept.push(if style == Some(0) { "24" } else { "4" });
                }
                "21" => {
                    self.extras.underline = Underline::Double;
                    kept.push("4");
                }
                "24" => {
                    self.extras.underline = Underline::Plain;
                    kept.push(group);
                }
                "8" => self.extras.conceal = true,
                "28" => self.extras.conceal = false,
                "59" => self.extras.underline_color = None,
                "38" | "48" | "58" => {
                    // A colour: sub-parameters after ':', or the next ';'
                    // groups (their 5 or 2 must not be read as attributes).
                    let mut sub: Vec<&str> = parts.collect();
                    let start = i;
                    if sub.is_empty() {
                        let n = match groups.get(i).copied() {
                            Some("5") => 2,
                            Some("2") => 4,
                            _ => 0,
                        };
                        i = (i + n).min(groups.len());
                        sub = groups[start..i].to_vec();
                    }
                    if first == "58" {
                        self.extras.underline_color = color(&sub);
                    } else {
                        kept.extend_from_slice(&groups[start - 1..i]);
                    }
                }
                _ => kept.push(group),
            }
        }
        (!kept.is_empty() || groups.is_empty()).then(|| kept.join(";"))
    }
}

/// The last character of plain `text` if it takes a cell and nothing
/// follows it.
fn last_cell(text: &str) -> Option<char> {
    let c = text.chars().next_back().filter(|c| !c.is_control())?;
    match text.rfind('\x1b') {
        Some(esc) if esc + sequence_len(&text[esc..]) >= text.len() => None,
        _ => Some(c),
    }
}

/// The colour of `5;N`, `2;R;G;B` or `2;CS;R;G;B` (sub-parameters of 38,
/// 48 or 58).
fn color(sub: &[&str]) -> Option<Colour> {
    let n: Vec<u16> = sub.iter().map(|s| s.parse().unwrap_or(0)).collect();
    match n.as_slice() {
        [5, i, ..] => Some(Colour::Indexed(*i as u8)),
        [2, r, g, b] | [2, _, r, g, b, ..] => Some(Colour::Rgb(*r as u8, *g as u8, *b as u8)),
        _ => None,
    }
}

/// A character that takes no cell of its own. C1 controls (U+0080 to
/// U+009F) are controls to avt, never marks, whatever their width says.
fn is_zero_width(c: char) -> bool {
    !c.is_ascii() && !c.is_control() && c.width() == Some(0)
}

/// Length of the escape sequence at the start of `s` (which starts with
/// ESC, or with a C1 control that introduces one: U+009B CSI, U+009D OSC,
/// U+0090 DCS, U+0098 SOS, U+009E PM, U+009F APC), as avt delimits it:
/// CSI up to its final byte; OSC, DCS, SOS, PM and APC strings up to their
/// terminator; otherwise ESC, its intermediates and final byte. A
/// character from U+00A0 on ends a CSI or escape as a final would (avt
/// reads it as one); CAN and SUB end any of them too (and belong to it);
/// ESC or a C1 control (U+0080..U+009F, ST among them) ends it before
/// itself. The C0 controls inside are the terminal's to execute.
pub(crate) fn sequence_len(s: &str) -> usize {
    let b = s.as_bytes();
    // The kind of sequence, and where its body starts.
    let (kind, body) = match s.chars().next() {
        Some('\u{9b}') => (Some(b'['), 2),
        Some('\u{9d}') => (Some(b']'), 2),
        Some('\u{90}') => (Some(b'P'), 2),
        Some('\u{98}' | '\u{9e}' | '\u{9f}') => (Some(b'X'), 2),
        _ => {
            // C0 controls right after ESC are executed and DEL is
            // ignored; the escape goes on.
            let mut k = 1;
            while k < b.len() && matches!(b[k], 0x00..=0x17 | 0x19 | 0x1c..=0x1f | 0x7f) {
                k += 1;
            }
            (b.get(k).copied(), k + 1)
        }
    };
    match kind {
        Some(b'[') => {
            for (i, c) in s[body..].char_indices() {
                let i = i + body;
                match c {
                    '\u{40}'..='\u{7e}' | '\u{18}' | '\u{1a}' => return i + 1,
                    '\u{1b}' | '\u{80}'..='\u{9f}' => return i,
                    '\u{a0}'.. => return i + c.len_utf8(),
                    _ => {}
                }
            }
            b.len()
        }
        Some(b']' | b'P' | b'X' | b'^' | b'_') => {
            for (i, c) in s[body..].char_indices() {
                let i = i + body;
                match c {
                    '\u{07}' | '\u{18}' | '\u{1a}' => return i + 1,
                    '\u{1b}' if b.get(i + 1) == Some(&b'\\') => return i + 2,
                    // ST ends the string and belongs to it.
                    '\u{9c}' => return i + c.len_utf8(),
                    // ESC starts another; another C1 control is the
                    // terminal's to execute.
                    '\u{1b}' | '\u{80}'..='\u{9f}' => return i,
                    _ => {}
                }
            }
            b.len()
        }
        _ => esc_len(s),
    }
}

/// Whether `c` is a C1 control (U+0080..U+009F).
fn is_c1(c: char) -> bool {
    ('\u{80}'..='\u{9f}').contains(&c)
}

/// Whether `c` is a C1 control that starts a sequence (see
/// [`sequence_len`]).
fn is_c1_introducer(c: char) -> bool {
    matches!(c, '\u{9b}' | '\u{9d}' | '\u{90}' | '\u{98}' | '\u{9e}' | '\u{9f}')
}

/// Length of an escape sequence that is not CSI or a string, as avt
/// delimits it: ESC, its intermediates and a final byte (a character from
/// U+00A0 on counts as one). C0 controls inside are executed and the
/// sequence goes on; CAN and SUB end it (and belong to it); ESC or a C1
/// control ends it before itself.
fn esc_len(s: &str) -> usize {
    for (i, c) in s.char_indices().skip(1) {
        match c {
            '\u{20}'..='\u{2f}' | '\u{7f}' => {}
            '\u{30}'..='\u{7e}' | '\u{18}' | '\u{1a}' => return i + 1,
            '\u{1b}' | '\u{80}'..='\u{9f}' => return i,
            '\u{a0}'.. => return i + c.len_utf8(),
            _ => {} // C0 controls: executed, the escape goes on.
        }
    }
    s.len()
}

/// What OSC 8 sequence `seq` (a whole sequence, as [`sequence_len`]
/// delimits it) does to the open hyperlink, as the scanner reads it
/// (`crate::term::scan`): `None` if it is no OSC 8 or changes nothing (not
/// terminated, or too long to be read); `Some(None)` if it closes the link;
/// `Some(Some(link))` if it opens `link` (`params;target`, without controls).
fn osc8(seq: &str) -> Option<Option<String>> {
    let body = seq.strip_prefix("\x1b]").or_else(|| seq.strip_prefix('\u{9d}'))?;
    let body = body
        .strip_suffix('\x07')
        .or_else(|| body.strip_suffix("\x1b\\"))
        .or_else(|| body.strip_suffix('\u{9c}'))?;
    let pt = body.strip_prefix("8;")?;
    if body.len() > crate::term::scan::COLLECT_MAX {
        return None;
    }
    Some(crate::term::scan::hyperlink(pt.as_bytes()))
}

/// Whether the text holds a sequence the feeder must follow (a cheap test:
/// most output has colours alone, or no sequences at all): an SGR with
/// attributes avt lacks, or a hyperlink.
fn has_sgr_suspect(text: &str) -> bool {
    let mut i = 0;
    while let Some(p) = text[i..].find('\x1b') {
        let start = i + p;
        let len = sequence_len(&text[start..]);
        let seq = &text.as_bytes()[start..start + len];
        match seq {
            [0x1b, b'[', params @ .., b'm'] if sgr_needs_work(params) => return true,
            [0x1b, b']', b'8', b';', ..] => return true,
            _ => {}
        }
        i = start + len.max(1);
    }
    false
}

/// Whether SGR parameters hold anything but avt's own attributes and
/// colours: underline styles or colour, `21`, concealed; or controls,
/// which the feeder takes out of what it reads.
fn sgr_needs_work(params: &[u8]) -> bool {
    if params.iter().any(|b| *b < 0x20 || *b == 0x7f) {
        return true;
    }
    let mut groups = params.split(|b| *b == b';').peekable();
    while let Some(g) = groups.next() {
        // Read as the feeder reads it: the part before a `:`.
        let first = g.split(|b| *b == b':').next().unwrap_or_default();
        let sub = first.len() < g.len();
        match first {
            b"38" | b"48" if !sub => {
                // Skip the colour's own groups (none unless a 5 or a 2
                // follows: then the next group is an attribute).
                let n = match groups.peek().copied() {
                    Some(b"5") => 2,
                    Some(b"2") => 4,
                    _ => 0,
                };
                for _ in 0..n {
                    groups.next();
                }
            }
            b"21" | b"8" | b"28" | b"58" | b"59" => return true,
            b"4" if sub => return true,
            _ => {}
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fed(feeder: &mut Feeder, text: &str) -> String {
        let out = feeder.for_model(text).into_owned();
        feeder.table().text(out.chars())
    }

    #[test]
    fn plain_text_and_colours_are_borrowed() {
        let mut f = Feeder::default();
        assert!(matches!(f.for_model("hello\r\n\x1b[31mred"), Cow::Borrowed(_)));
        assert!(matches!(f.for_model("café ✔ 日本"), Cow::Borrowed(_)));
        assert!(matches!(f.for_model("\x1b[38;5;8m\x1b[38:5:210m\x1b[1;4m"), Cow::Borrowed(_)));
    }

    #[test]
    fn controls_inside_an_sgr_the_feeder_rewrites_are_kept() {
        // Found by fuzzing: a backspace inside an SGR with an underline
        // colour (which the feeder takes out) was lost with it.
        let mut f = Feeder::default();
        // (A mark makes the feeder read the text rather than pass it on.)
        assert_eq!(fed(&mut f, "e\u{301}\x1b[48;58;2;\x08m"), "e\u{301}\x1b[\x0848m");
        assert_eq!(fed(&mut f, "e\u{301}\x1b[4:3;\r\x7f1m"), "e\u{301}\x1b[\r4;1m");
        // A text with nothing else for the feeder reads such an SGR too
        // (found by fuzzing: `21` with a control inside was left to avt
        // when the text came alone, and read when it came with a DEL).
        assert!(has_sgr_suspect("\x1b[21\x13m"));
        // And the part before a `:`, as the feeder reads it.
        assert!(has_sgr_suspect("\x1b[21:m"));
        assert!(has_sgr_suspect("\x1b[1;8:2m"));
        assert!(!has_sgr_suspect("\x1b[38:5:21m\x1b[4m"));
        assert!(has_sgr_suspect("\x1b[48;8m"), "8 is concealed, not a colour mode");
        assert!(!has_sgr_suspect("\x1b[48;5;8m\x1b[38;2;8;21;8m"));
        // Inside it, not before it: the ESC ends an unfinished OSC first.
        assert_eq!(fed(&mut f, "[\x1b]\x1b[\x08m\u{303}"), "[\x1b]\x1b[\x08m");
    }

    #[test]
    fn zero_width_characters_join_the_cell_before() {
        let mut f = Feeder::default();
        let out = f.for_model("e\u{301}x|\u{2714}\u{fe0f}y|a\u{200d}b").into_owned();
        assert_eq!(out.chars().count(), 8, "one character per cell: {out:?}");
        assert_eq!(f.table().text(out.chars()), "e\u{301}x|\u{2714}\u{fe0f}y|a\u{200d}b");
        // No base: nothing to join.
        assert_eq!(fed(&mut f, "\u{301}x"), "x");
        assert_eq!(fed(&mut f, "e\x1b[1m\u{301}x"), "e\x1b[1mx");
    }

    #[test]
    fn attributes_avt_lacks_are_taken_out_and_carried_by_the_cells() {
        let mut f = Feeder::default();
        let out = f
            .for_model("\x1b[58;5;196mA\x1b[1;58;2;1;2;3;31mB\x1b[4:3mC\x1b[0;21mD\x1b[8mE\x1b[mF");
        assert_eq!(
            out.chars().filter(|c| !is_placeholder(*c)).collect::<String>(),
            "\x1b[59m\x1b[1;31m\x1b[4m\x1b[0;4m\x1b[59m\x1b[mF"
        );
        let extras: Vec<Extras> =
            out.chars().filter_map(|c| f.table().get(c)).map(|s| s.extras).collect();
        assert_eq!(extras[0].underline_color, Some(Colour::Indexed(196)));
        assert_eq!(extras[1].underline_color, Some(Colour::Rgb(1, 2, 3)));
        assert_eq!(extras[2].underline, Underline::Curly);
        assert_eq!(extras[3], Extras { underline: Underline::Double, ..Extras::default() });
        assert!(extras[4].conceal);
        assert_eq!(extras.len(), 5, "F is plain again");
    }

    #[test]
    fn a_sequence_ends_where_terminals_end_it() {
        // Found by fuzzing: SUB aborts a CSI, and a mark after the line
        // feed that follows has no cell to join.
        assert_eq!(sequence_len("\x1b[\x01\0\x1a\0\n\u{301}?"), 5);
        assert_eq!(sequence_len("\x1b[1\u{301}x"), 5, "avt takes U+0301 as a final");
        assert_eq!(sequence_len("\x1b[1;2\x1b[m"), 5);
        assert_eq!(sequence_len("\x1b]2;t\x1a\u{301}"), 6);
        // Found by fuzzing: a C1 control ends a string (avt goes to ground).
        assert_eq!(sequence_len("\x1bP[5\u{fffd}\u{94}&\u{fe0f}"), 7);
        let mut f = Feeder::default();
        assert_eq!(f.for_model("x\x1b[\x01\x1a\n\u{301}?"), "x\x1b[\x01\x1a\n?");
    }

    #[test]
    fn marks_fed_one_by_one_join_the_same_cell() {
        // Found by fuzzing: reads of one character each.
        let mut f = Feeder::default();
        let mut out = f.for_model("a").into_owned();
        for mark in ["\u{200b}", "\u{fe0f}"] {
            let (held, now, rest) = f.carried(mark).unwrap();
            assert_eq!(out.pop(), Some(held));
            out.push(now);
            assert_eq!(f.for_model(rest), "");
        }
        assert_eq!(f.table().text(out.chars()), "a\u{200b}\u{fe0f}");
    }

    #[test]
    fn a_sequence_taken_out_still_ends_the_one_before() {
        // Found by fuzzing: an unfinished CSI, then SGR 8, then text.
        let mut f = Feeder::default();
        let out = f.for_model("\x1b[\x1b[8mhid").into_owned();
        assert!(out.starts_with("\x1b[\x1b[59m"), "{out:?}");
    }

    #[test]
    fn controls_inside_an_escape_do_not_end_it() {
        // Found by fuzzing: ESC, C0 controls, then its final byte.
        assert_eq!(sequence_len("\x1b\x01\x11\0;\u{fe0f}x"), 5);
        // DEL after ESC is ignored, as avt does (found by fuzzing).
        assert_eq!(sequence_len("\x1b\x01\x7f[1\0\u{fffd}y"), 9);
        assert_eq!(sequence_len("\x1b(\x010x"), 4);
        assert_eq!(sequence_len("\x1b\x1b7"), 1);
        // ESC, controls, then '[': a CSI (found by fuzzing).
        assert_eq!(sequence_len("\x1b\0\x11[e\u{35c}"), 5);
        let mut f = Feeder::default();
        let _ = f.for_model("y\x1b\x01;");
        assert_eq!(f.carry(), None, "the ; ended the escape");
    }

    #[test]
    fn del_takes_no_cell() {
        // Found by fuzzing: avt prints DEL, terminals ignore it.
        let mut f = Feeder::default();
        assert_eq!(f.for_model("a\u{7f}\u{7f}b"), "ab");
        assert_eq!(f.for_model("\x1b]2;a\u{7f}\x07"), "\x1b]2;a\u{7f}\x07");
        // Marks after a DEL, in the same read or the next, still join.
        let out = f.for_model("e\u{7f}\u{301}").into_owned();
        assert_eq!(f.table().text(out.chars()), "e\u{301}");
        let _ = f.for_model("e");
        assert_eq!(f.for_model("\u{7f}"), "");
        assert!(f.carried("\u{301}x").is_some());
    }

    #[test]
    fn an_escape_before_a_character_is_no_sequence_of_it() {
        // Found by a black-box test: ESC then a multibyte character.
        let mut f = Feeder::default();
        let text = "\x1b\u{5d2}N\u{301}\x1b[8m\x1b\u{5d2}x";
        let out = f.for_model(text).into_owned();
        assert!(out.starts_with("\x1b\u{5d2}"), "{out:?}");
    }

    #[test]
    fn sequences_are_never_split_into_placeholders() {
        let mut f = Feeder::default();
        let text = "\x1b[8m\x1b(0q\x1b]2;title\x07\x1b[28mx";
        let out = f.for_model(text).into_owned();
        assert!(out.starts_with("\x1b[59m\x1b(0"), "{out:?}");
        assert!(out.contains("\x1b]2;title\x07"), "{out:?}");
    }
}

//! Text that tether did not write (commands, identities, key comments,
//! titles, reasons, error messages that quote them) made safe to print on
//! someone's terminal: every character that would act on the terminal
//! instead of being shown is written out visibly.
//!
//! A job controls its own argv and title, a key's owner its comment, the
//! peer of an error its message; printed raw in `ls`, `who`, a notice or a
//! status line, an `ESC ] 52 ;` would write the viewer's clipboard and an
//! `ESC ] 2 ;` set their window title. Human output goes through
//! [`visible`]; JSON output stays exact (serde escapes controls itself).

use std::borrow::Cow;
use std::fmt::Write as _;

/// Whether `c` acts on a terminal rather than being printed: the C0
/// controls (ESC among them), DEL and the C1 controls, and the
/// bidirectional formatting characters, which reorder what is shown.
pub fn acts_on_terminal(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{061c}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

/// `s` with every character that would act on a terminal written out:
/// `\e` for ESC, `\t`, `\n` and `\r`, `\xNN` for the other C0 controls and
/// DEL, `\u{NNNN}` for C1 controls and bidirectional formatting. Borrowed
/// (no copy) when there is nothing to escape.
pub fn visible(s: &str) -> Cow<'_, str> {
    if !s.chars().any(acts_on_terminal) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\x1b' => out.push_str("\\e"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c if u32::from(c) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", u32::from(c));
            }
            c if acts_on_terminal(c) => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn controls_are_shown_not_executed() {
        let cases = [
            ("make -j8", "make -j8"),
            ("a\x1b]52;c;aGk=\x07b", "a\\e]52;c;aGk=\\x07b"),
            ("tab\there\r\n", "tab\\there\\r\\n"),
            ("del\x7f nul\0", "del\\x7f nul\\x00"),
            ("c1 \u{9b}31m osc \u{9d}2;t\u{9c}", "c1 \\u{9b}31m osc \\u{9d}2;t\\u{9c}"),
            ("bidi \u{202e}gnp.exe", "bidi \\u{202e}gnp.exe"),
            ("été ✓ 日本", "été ✓ 日本"),
        ];
        for (raw, shown) in cases {
            assert_eq!(visible(raw), shown, "{raw:?}");
            assert!(!visible(raw).chars().any(acts_on_terminal));
        }
        assert!(matches!(visible("plain"), Cow::Borrowed(_)));
    }
}

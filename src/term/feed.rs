//! What the screen model is fed: the job's text, with the few things avt
//! would misread put in the form it reads right.
//!
//! * **Zero-width characters** (combining marks such as U+0301, the
//!   variation selectors VS15/VS16, ZWJ, ZWSP and the other characters
//!   `unicode-width` measures as 0) join the character before them, as in
//!   xterm: they never take a cell of their own. Where Unicode has the
//!   composed character (`e` + U+0301 is `é`) the model keeps that; where it
//!   has none (VS16, ZWJ, a mark on a letter with no precomposed form) the
//!   mark itself is not kept, but the geometry is: every following
//!   character lands in the column the terminal put it in. The base
//!   character keeps its own width (`✔` followed by VS16 is one cell, as
//!   xterm and tmux draw it).
//! * **SGR forms avt misparses**: an underline colour (`58;5;N`,
//!   `58;2;R;G;B`) is dropped whole (avt would read its `5` as blink and
//!   its `2` as faint); the underline styles (`4:3` curly, `4:2` or `21`
//!   double) become a plain underline and `4:0` no underline (avt would drop
//!   the first and take `21` as "normal intensity").
//!
//! The bytes the clients and the recording get are never changed.

use std::borrow::Cow;
use unicode_width::UnicodeWidthChar;

/// `text` as the screen model should read it (see the module header).
pub fn for_model(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let sgr_suspect = has_sgr_suspect(bytes);
    // Most text has no zero-width character: look before copying.
    let zero_width = !bytes.is_ascii() && text.chars().any(is_zero_width);
    if !zero_width && !sgr_suspect {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    // Byte offset in `out` of the last character that took a cell, while
    // nothing else followed it.
    let mut last: Option<usize> = None;
    let mut rest = text;
    let mut changed = false;
    while let Some(c) = rest.chars().next() {
        if c == '\x1b' && rest.as_bytes().get(1) == Some(&b'[') {
            let end = rest.as_bytes()[2..]
                .iter()
                .position(|b| (0x40..=0x7e).contains(b))
                .map_or(rest.len(), |p| p + 3);
            let seq = &rest[..end];
            rest = &rest[end..];
            last = None;
            match seq.strip_prefix("\x1b[").and_then(|s| s.strip_suffix('m')) {
                Some(params) if sgr_suspect && !params.starts_with(['<', '=', '>', '?']) => {
                    match fix_sgr(params) {
                        Some(fixed) => {
                            changed = true;
                            if !fixed.is_empty() {
                                out.push_str("\x1b[");
                                out.push_str(&fixed);
                                out.push('m');
                            }
                        }
                        None => out.push_str(seq),
                    }
                }
                _ => out.push_str(seq),
            }
            continue;
        }
        rest = &rest[c.len_utf8()..];
        if is_zero_width(c) {
            changed = true;
            if let Some(at) = last {
                let base = out[at..].chars().next().unwrap_or(' ');
                if let Some(composed) = unicode_normalization::char::compose(base, c) {
                    out.truncate(at);
                    out.push(composed);
                }
            }
            continue;
        }
        last = (!c.is_control()).then_some(out.len());
        out.push(c);
    }
    if changed { Cow::Owned(out) } else { Cow::Borrowed(text) }
}

/// A character that takes no cell of its own.
fn is_zero_width(c: char) -> bool {
    !c.is_ascii() && c.width() == Some(0)
}

/// Whether the text holds an SGR sequence that [`fix_sgr`] may change (a
/// cheap test: most output has colours alone, or no sequences at all).
fn has_sgr_suspect(bytes: &[u8]) -> bool {
    let mut i = 0;
    while let Some(p) = bytes[i..].iter().position(|b| *b == 0x1b) {
        let body = i + p + 2;
        if bytes.get(body - 1) != Some(&b'[') {
            i = body - 1;
            continue;
        }
        let len = bytes[body..]
            .iter()
            .position(|b| (0x40..=0x7e).contains(b))
            .unwrap_or(bytes.len() - body);
        let params = &bytes[body..body + len];
        if bytes.get(body + len) == Some(&b'm')
            && params.windows(2).any(|w| matches!(w, b"58" | b"21" | b"4:"))
        {
            return true;
        }
        i = body + len;
    }
    false
}

/// The parameters of one SGR sequence with what avt misreads rewritten,
/// or `None` if nothing needs to change. Empty when nothing is left: the
/// sequence is dropped (an empty SGR would reset everything).
fn fix_sgr(params: &str) -> Option<String> {
    let groups: Vec<&str> = params.split(';').collect();
    let mut out: Vec<&str> = Vec::with_capacity(groups.len());
    let mut changed = false;
    let mut i = 0;
    while i < groups.len() {
        let group = groups[i];
        i += 1;
        match group {
            "58" => {
                // Underline colour in the `;` form: its sub-parameters go too.
                changed = true;
                i += match groups.get(i).copied() {
                    Some("5") => 2,
                    Some("2") => 4,
                    _ => 0,
                };
                i = i.min(groups.len());
            }
            "21" => {
                changed = true;
                out.push("4");
            }
            "4:0" => {
                changed = true;
                out.push("24");
            }
            g if g.starts_with("58:") => changed = true,
            g if g.starts_with("4:") => {
                changed = true;
                out.push("4");
            }
            g => out.push(g),
        }
    }
    if !changed {
        return None;
    }
    Some(out.join(";"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_text_is_borrowed() {
        assert!(matches!(for_model("hello\r\n\x1b[31mred"), Cow::Borrowed(_)));
        assert!(matches!(for_model("café ✔ 日本"), Cow::Borrowed(_)));
    }

    #[test]
    fn zero_width_characters_join_the_cell_before() {
        assert_eq!(for_model("e\u{301}x"), "éx");
        assert_eq!(for_model("\u{2714}\u{fe0f}x"), "\u{2714}x");
        assert_eq!(for_model("a\u{200d}b a\u{200b}b"), "ab ab");
        // No base: nothing to join.
        assert_eq!(for_model("\u{301}x"), "x");
        // After a sequence the mark has no base on the model's side either.
        assert_eq!(for_model("e\x1b[1m\u{301}x"), "e\x1b[1mx");
    }

    #[test]
    fn sgr_that_avt_misreads_is_rewritten() {
        assert_eq!(for_model("\x1b[58;5;196mX"), "X");
        assert_eq!(for_model("\x1b[1;58;2;1;2;3;31mX"), "\x1b[1;31mX");
        assert_eq!(for_model("\x1b[4:3mX\x1b[4:0m"), "\x1b[4mX\x1b[24m");
        assert_eq!(for_model("\x1b[21mX"), "\x1b[4mX");
        assert_eq!(for_model("\x1b[58:5:196mX"), "X");
        // Colours alone are left as they are.
        assert!(matches!(for_model("\x1b[38;5;214m\x1b[38:5:210m"), Cow::Borrowed(_)));
    }
}

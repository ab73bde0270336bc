//! What a cell holds beyond one character and avt's attributes, kept for
//! the screen model by tether.
//!
//! avt keeps one `char` and one [`avt::Pen`] per cell. A cell can hold
//! more: a grapheme (a base character and the zero-width characters that
//! follow it: combining marks, VS16, ZWJ), an underline style (double,
//! curly, dotted, dashed), an underline colour, concealed text. Such a
//! cell is fed to avt as a **placeholder**: a code point from a range no
//! job prints (Supplementary Private Use Area-B for one-cell characters,
//! the end of plane 3 for two-cell ones, so avt gives it the base's
//! width), standing for an entry of this table. Everything that reads the
//! model (text, grep, the redraw, the watcher view, replay) turns a
//! placeholder back into what it stands for; a job that prints a code
//! point from those ranges gets an entry too, so nothing is ambiguous.
//!
//! Entries are never reused while the model lives (a cell in the
//! scrollback may still point at one). The table is bounded: when a range
//! is full, new cells lose what avt cannot hold (the base character and
//! avt's attributes stay).

use std::collections::HashMap;
use unicode_width::UnicodeWidthChar;

/// First placeholder for a one-cell entry (Supplementary PUA-B).
const NARROW: u32 = 0x10_0000;
/// Placeholders for one-cell entries (at most about 100 bytes each: a
/// hostile job filling the table costs a keeper about 2 MB).
const NARROW_LEN: u32 = 0x4000;
/// First placeholder for a two-cell entry: unassigned code points of plane
/// 3, which Unicode gives East Asian width W.
const WIDE: u32 = 0x3_e000;
/// Placeholders for two-cell entries.
const WIDE_LEN: u32 = 0x1000;

/// Underline styles beyond a plain underline (SGR `4:n`, `21`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Underline {
    /// No style beyond avt's own underline flag.
    #[default]
    Plain,
    /// `4:2` or `21`.
    Double,
    /// `4:3`.
    Curly,
    /// `4:4`.
    Dotted,
    /// `4:5`.
    Dashed,
}

impl Underline {
    /// The sub-parameter of `4:n`.
    pub fn code(self) -> u8 {
        match self {
            Underline::Plain => 1,
            Underline::Double => 2,
            Underline::Curly => 3,
            Underline::Dotted => 4,
            Underline::Dashed => 5,
        }
    }
}

/// A colour beyond avt's pen (an underline's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Colour {
    /// A palette entry.
    Indexed(u8),
    /// A true colour.
    Rgb(u8, u8, u8),
}

/// Attributes avt does not keep.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Extras {
    /// The underline's style (drawn only where avt's underline is on).
    pub underline: Underline,
    /// The underline's colour (`58;…`).
    pub underline_color: Option<Colour>,
    /// Concealed (`8`).
    pub conceal: bool,
    /// The OSC 8 hyperlink the cell was printed under: 0 for none, else
    /// a link of the [`Table`] ([`Table::link`]).
    pub link: u16,
}

impl Extras {
    /// Nothing beyond avt's attributes.
    pub fn is_default(&self) -> bool {
        *self == Extras::default()
    }
}

/// What a placeholder stands for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Special {
    /// The grapheme: a base character and its zero-width followers, as the
    /// job wrote them.
    pub text: Box<str>,
    /// Attributes avt does not keep.
    pub extras: Extras,
}

/// The most hyperlinks one screen model keeps, and their total length:
/// cells printed under links beyond them are kept without their link.
const LINKS_MAX: usize = 4096;
const LINK_BYTES_MAX: usize = 512 * 1024;

/// The placeholders of one screen model.
#[derive(Debug, Default)]
pub struct Table {
    narrow: Vec<Special>,
    wide: Vec<Special>,
    index: HashMap<Special, char>,
    /// OSC 8 hyperlinks (`params;target`), by [`Extras::link`] - 1.
    links: Vec<Box<str>>,
    link_index: HashMap<Box<str>, u16>,
    link_bytes: usize,
}

/// Whether `c` is a placeholder (or a job's character from those ranges).
pub fn is_placeholder(c: char) -> bool {
    let c = u32::from(c);
    (NARROW..NARROW + NARROW_LEN).contains(&c) || (WIDE..WIDE + WIDE_LEN).contains(&c)
}

impl Table {
    /// The placeholder for `special`, whose base character is `base`;
    /// `None` when its range is full.
    pub fn intern(&mut self, base: char, special: Special) -> Option<char> {
        if let Some(c) = self.index.get(&special) {
            return Some(*c);
        }
        let wide = base.width() == Some(2);
        let (entries, start, len) = if wide {
            (&mut self.wide, WIDE, WIDE_LEN)
        } else {
            (&mut self.narrow, NARROW, NARROW_LEN)
        };
        let n = u32::try_from(entries.len()).ok().filter(|n| *n < len)?;
        let c = char::from_u32(start + n)?;
        entries.push(special.clone());
        self.index.insert(special, c);
        Some(c)
    }

    /// The number for hyperlink `link` (`params;target` of an OSC 8), for
    /// [`Extras::link`]; 0 (no link) when the table holds as many links
    /// as it may.
    pub fn intern_link(&mut self, link: &str) -> u16 {
        if let Some(n) = self.link_index.get(link) {
            return *n;
        }
        if self.links.len() >= LINKS_MAX || self.link_bytes + link.len() > LINK_BYTES_MAX {
            return 0;
        }
        self.links.push(link.into());
        self.link_bytes += link.len();
        let n = self.links.len() as u16;
        self.link_index.insert(link.into(), n);
        n
    }

    /// The hyperlink (`params;target`) numbered `n` by
    /// [`Table::intern_link`].
    pub fn link(&self, n: u16) -> Option<&str> {
        self.links.get(usize::from(n).checked_sub(1)?).map(|l| &**l)
    }

    /// What placeholder `c` stands for.
    pub fn get(&self, c: char) -> Option<&Special> {
        let c = u32::from(c);
        if (NARROW..NARROW + NARROW_LEN).contains(&c) {
            self.narrow.get((c - NARROW) as usize)
        } else if (WIDE..WIDE + WIDE_LEN).contains(&c) {
            self.wide.get((c - WIDE) as usize)
        } else {
            None
        }
    }

    /// Appends the text of a cell holding `c`.
    pub fn push_text(&self, c: char, out: &mut String) {
        match self.get(c) {
            Some(special) => out.push_str(&special.text),
            None => out.push(c),
        }
    }

    /// The text of `chars` (a line's characters), placeholders expanded.
    pub fn text(&self, chars: impl IntoIterator<Item = char>) -> String {
        let mut s = String::new();
        for c in chars {
            self.push_text(c, &mut s);
        }
        s
    }

    /// How many entries the table holds.
    pub fn len(&self) -> usize {
        self.narrow.len() + self.wide.len()
    }

    /// Whether the table is empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_have_the_width_of_their_base() {
        let mut t = Table::default();
        let s = |text: &str| Special { text: text.into(), extras: Extras::default() };
        let narrow = t.intern('e', s("e\u{301}")).unwrap();
        let wide = t.intern('👍', s("👍\u{1f3fd}")).unwrap();
        assert_eq!(narrow.width(), Some(1));
        assert_eq!(wide.width(), Some(2));
        assert!(is_placeholder(narrow) && is_placeholder(wide));
        assert_eq!(t.intern('e', s("e\u{301}")), Some(narrow), "interned once");
        assert_eq!(t.text(['a', narrow, wide]), "ae\u{301}👍\u{1f3fd}");
    }

    #[test]
    fn links_are_numbered_once_and_bounded() {
        let mut t = Table::default();
        let a = t.intern_link("id=1;http://a/");
        assert_eq!(a, 1);
        assert_eq!(t.intern_link("id=1;http://a/"), a);
        assert_eq!(t.link(a), Some("id=1;http://a/"));
        assert_eq!(t.link(0), None);
        let long = "x".repeat(2000);
        let mut kept = 0;
        for n in 0..LINKS_MAX {
            if t.intern_link(&format!("{n};{long}")) != 0 {
                kept += 1;
            }
        }
        assert!(kept < LINKS_MAX && t.link_bytes <= LINK_BYTES_MAX, "bounded in bytes");
        assert_eq!(t.intern_link("id=1;http://a/"), a, "known links keep their number");
    }

    #[test]
    fn the_table_is_bounded() {
        let mut t = Table::default();
        let conceal = Extras { conceal: true, ..Extras::default() };
        let mut given = 0;
        for n in 0..NARROW_LEN + 10 {
            let c = char::from_u32(0x4e00 + n % 0x5000).unwrap_or('x');
            let text = format!("{c}{n}");
            if t.intern('x', Special { text: text.into(), extras: conceal }).is_some() {
                given += 1;
            }
        }
        assert_eq!(given, NARROW_LEN as usize);
        assert_eq!(t.len(), NARROW_LEN as usize);
    }
}

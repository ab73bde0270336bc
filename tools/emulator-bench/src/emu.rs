//! One adapter per emulator crate, behind the [`Emulator`] trait.
//!
//! Every accessor that the crate has no public API for returns
//! `Err(NoApi)`; the report prints that as "n/a (no public API)" rather
//! than guessing. Adapters only translate what the crate exposes into the
//! neutral types below; the verdicts live in `fidelity.rs` and `api.rs`.

pub mod alacritty;
pub mod avt;
pub mod vt100;

use std::fmt;

/// The crate has no public API for this.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoApi;

impl fmt::Display for NoApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("n/a (no public API)")
    }
}

/// What a public accessor gave, or that there is none.
pub type Api<T> = Result<T, NoApi>;

/// A colour, normalised across crates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Colour {
    Default,
    Indexed(u8),
    Rgb(u8, u8, u8),
    /// A crate-specific named colour outside the 16 ANSI ones.
    Named(usize),
}

impl fmt::Display for Colour {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Colour::Default => f.write_str("default"),
            Colour::Indexed(i) => write!(f, "indexed {i}"),
            Colour::Rgb(r, g, b) => write!(f, "rgb({r},{g},{b})"),
            Colour::Named(n) => write!(f, "named #{n}"),
        }
    }
}

/// Underline styles; crates with a plain bool report `Single`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Underline {
    None,
    Single,
    Double,
    Curly,
    Dotted,
    Dashed,
}

/// One cell of the active screen, as far as the crate exposes it.
#[derive(Clone, Debug)]
pub struct CellView {
    /// The base character plus any zero-width characters kept with it.
    pub text: String,
    /// Columns this cell's character spans (0 for the tail of a wide one).
    pub width: usize,
    pub fg: Colour,
    pub bg: Colour,
    pub bold: bool,
    pub italic: bool,
    pub underline: Api<Underline>,
    pub underline_colour: Api<Option<Colour>>,
    pub blink: Api<bool>,
    pub concealed: Api<bool>,
    /// The OSC 8 hyperlink target of the cell.
    pub link: Api<Option<String>>,
}

impl CellView {
    /// A short description of the attributes, for failure details.
    pub fn describe(&self) -> String {
        let mut out = format!("{:?} w{} fg {} bg {}", self.text, self.width, self.fg, self.bg);
        let flags = [
            (self.bold, "bold"),
            (self.italic, "italic"),
            (self.blink == Ok(true), "blink"),
            (self.concealed == Ok(true), "concealed"),
        ];
        for (on, name) in flags {
            if on {
                out.push(' ');
                out.push_str(name);
            }
        }
        if let Ok(u) = self.underline
            && u != Underline::None
        {
            out.push_str(&format!(" underline {u:?}"));
        }
        out
    }
}

/// Cursor position (0-based) and visibility.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cursor {
    pub col: usize,
    pub row: usize,
    pub visible: bool,
}

/// A terminal emulator crate as the bench drives it.
pub trait Emulator: Sized {
    /// The crate's name, as `cargo tree` knows it.
    const CRATE: &'static str;

    /// An emulator of `cols` x `rows` keeping `scrollback` lines of history.
    fn new(cols: usize, rows: usize, scrollback: usize) -> Self;

    /// Feeds raw PTY bytes, in whatever chunks they arrived.
    fn feed(&mut self, bytes: &[u8]);

    /// The cell at `row`, `col` of the active screen's visible rows.
    fn cell(&self, row: usize, col: usize) -> Option<CellView>;

    fn cursor(&self) -> Cursor;

    /// Sequences the crate handed to the embedder instead of interpreting
    /// them (callbacks, events), drained; empty when it has no such hook.
    fn take_notes(&mut self) -> Vec<String>;

    /// xterm's modifyOtherKeys level (`CSI > 4 ; n m`).
    fn modify_other_keys(&self) -> Api<u8>;

    /// Cursor blinking (`CSI ? 12 h`).
    fn cursor_blink(&self) -> Api<bool>;

    /// Reverse video (DECSCNM, `CSI ? 5 h`).
    fn reverse_video(&self) -> Api<bool>;

    /// The colour set by OSC 10 (foreground), 11 (background) or 12 (cursor).
    fn dynamic_colour(&self, osc: u8) -> Api<Option<(u8, u8, u8)>>;

    /// The columns that have a tab stop.
    fn tab_stops(&self) -> Api<Vec<usize>>;

    /// Text of row `row` of the primary screen while the alternate one is active.
    fn hidden_primary_row(&self, row: usize) -> Api<String>;

    /// Whether the alternate screen is active.
    fn alternate_active(&self) -> Api<bool>;

    /// The scroll region, 0-based inclusive rows.
    fn scroll_region(&self) -> Api<(usize, usize)>;

    /// The cursor position saved by DECSC (col, row).
    fn saved_cursor(&self) -> Api<(usize, usize)>;

    /// The designated G0..G3 charsets and which one is active.
    fn charsets(&self) -> Api<String>;

    /// Every terminal mode the crate exposes, as a summary.
    fn modes(&self) -> Api<String>;

    /// Lines of scrollback held, and the text of the oldest one.
    fn scrollback(&mut self) -> Api<(usize, String)>;

    /// The crate's own serialisation of the screen state, if it has one
    /// (escape sequences that rebuild it in a fresh terminal).
    fn own_dump(&self) -> Api<String>;

    /// From now on, also keep the text of evicted lines (costs a String
    /// per line, so throughput runs leave it off).
    fn keep_evicted_text(&mut self) {}

    /// Lines the crate reported as evicted from bounded scrollback since
    /// creation, and the text of the last one.
    fn evicted(&self) -> Api<(usize, String)>;
}

//! alacritty_terminal 0.26: takes bytes through vte's `Processor`; side
//! effects (replies, titles, colour queries) arrive as `Event`s, which the
//! adapter records.

use super::{Api, CellView, Colour, Cursor, Emulator, NoApi, Underline};
use alacritty_terminal::Term;
use alacritty_terminal::event::{Event, EventListener};
use alacritty_terminal::grid::Dimensions;
use alacritty_terminal::index::{Column, Line};
use alacritty_terminal::term::cell::{Cell, Flags};
use alacritty_terminal::term::{Config, TermMode};
use alacritty_terminal::vte::ansi::{CharsetIndex, Color, NamedColor, Processor};
use std::cell::RefCell;
use std::rc::Rc;

pub struct Alacritty {
    term: Term<Events>,
    processor: Processor,
    notes: Rc<RefCell<Vec<String>>>,
}

/// Records the events the terminal sends to its embedder.
struct Events(Rc<RefCell<Vec<String>>>);

/// Notes kept at most, so a long stream can't grow them without bound.
const MAX_NOTES: usize = 32;

impl EventListener for Events {
    fn send_event(&self, event: Event) {
        let mut notes = self.0.borrow_mut();
        if notes.len() < MAX_NOTES {
            notes.push(format!("event {event:?}"));
        }
    }
}

/// The grid size alacritty_terminal asks for.
struct Size {
    cols: usize,
    rows: usize,
}

impl Dimensions for Size {
    fn total_lines(&self) -> usize {
        self.rows
    }

    fn screen_lines(&self) -> usize {
        self.rows
    }

    fn columns(&self) -> usize {
        self.cols
    }
}

fn colour(c: Color) -> Colour {
    match c {
        Color::Named(NamedColor::Foreground | NamedColor::Background) => Colour::Default,
        Color::Named(n) if (n as usize) < 16 => Colour::Indexed(n as u8),
        Color::Named(n) => Colour::Named(n as usize),
        Color::Spec(rgb) => Colour::Rgb(rgb.r, rgb.g, rgb.b),
        Color::Indexed(i) => Colour::Indexed(i),
    }
}

fn underline(flags: Flags) -> Underline {
    if flags.contains(Flags::UNDERCURL) {
        Underline::Curly
    } else if flags.contains(Flags::DOUBLE_UNDERLINE) {
        Underline::Double
    } else if flags.contains(Flags::DOTTED_UNDERLINE) {
        Underline::Dotted
    } else if flags.contains(Flags::DASHED_UNDERLINE) {
        Underline::Dashed
    } else if flags.contains(Flags::UNDERLINE) {
        Underline::Single
    } else {
        Underline::None
    }
}

fn width(flags: Flags) -> usize {
    if flags.contains(Flags::WIDE_CHAR) {
        2
    } else if flags.intersects(Flags::WIDE_CHAR_SPACER | Flags::LEADING_WIDE_CHAR_SPACER) {
        0
    } else {
        1
    }
}

fn text(cell: &Cell) -> String {
    let mut text = cell.c.to_string();
    text.extend(cell.zerowidth().unwrap_or_default());
    text
}

fn line_text(term: &Term<Events>, line: i32) -> String {
    let row = &term.grid()[Line(line)];
    let text: String = (0..term.columns()).map(|c| row[Column(c)].c).collect();
    text.trim_end().to_owned()
}

fn index(n: usize) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

impl Emulator for Alacritty {
    const CRATE: &'static str = "alacritty_terminal";

    fn new(cols: usize, rows: usize, scrollback: usize) -> Self {
        let config = Config { scrolling_history: scrollback, ..Config::default() };
        let size = Size { cols: cols.max(1), rows: rows.max(1) };
        let notes = Rc::default();
        Alacritty {
            term: Term::new(config, &size, Events(Rc::clone(&notes))),
            processor: Processor::new(),
            notes,
        }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.processor.advance(&mut self.term, bytes);
    }

    fn cell(&self, row: usize, col: usize) -> Option<CellView> {
        if row >= self.term.screen_lines() || col >= self.term.columns() {
            return None;
        }
        let cell = &self.term.grid()[Line(index(row))][Column(col)];
        Some(CellView {
            text: text(cell),
            width: width(cell.flags),
            fg: colour(cell.fg),
            bg: colour(cell.bg),
            bold: cell.flags.contains(Flags::BOLD),
            italic: cell.flags.contains(Flags::ITALIC),
            underline: Ok(underline(cell.flags)),
            underline_colour: Ok(cell.underline_color().map(colour)),
            blink: Err(NoApi),
            concealed: Ok(cell.flags.contains(Flags::HIDDEN)),
            link: Ok(cell.hyperlink().map(|h| h.uri().to_owned())),
        })
    }

    fn cursor(&self) -> Cursor {
        let point = self.term.grid().cursor.point;
        Cursor {
            col: point.column.0,
            row: usize::try_from(point.line.0).unwrap_or(0),
            visible: self.term.mode().contains(TermMode::SHOW_CURSOR),
        }
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut *self.notes.borrow_mut())
    }

    fn modify_other_keys(&self) -> Api<u8> {
        Err(NoApi)
    }

    fn cursor_blink(&self) -> Api<bool> {
        Ok(self.term.cursor_style().blinking)
    }

    fn reverse_video(&self) -> Api<bool> {
        Err(NoApi)
    }

    fn dynamic_colour(&self, osc: u8) -> Api<Option<(u8, u8, u8)>> {
        let named = match osc {
            10 => NamedColor::Foreground,
            11 => NamedColor::Background,
            12 => NamedColor::Cursor,
            _ => return Err(NoApi),
        };
        Ok(self.term.colors()[named].map(|c| (c.r, c.g, c.b)))
    }

    fn tab_stops(&self) -> Api<Vec<usize>> {
        Err(NoApi)
    }

    fn hidden_primary_row(&self, _row: usize) -> Api<String> {
        // Only `swap_alt()` reaches the inactive grid, and swapping back
        // clears the alternate screen: no read-only access.
        Err(NoApi)
    }

    fn alternate_active(&self) -> Api<bool> {
        Ok(self.term.mode().contains(TermMode::ALT_SCREEN))
    }

    fn scroll_region(&self) -> Api<(usize, usize)> {
        Err(NoApi)
    }

    fn saved_cursor(&self) -> Api<(usize, usize)> {
        let point = self.term.grid().saved_cursor.point;
        Ok((point.column.0, usize::try_from(point.line.0).unwrap_or(0)))
    }

    fn charsets(&self) -> Api<String> {
        let sets = &self.term.grid().cursor.charsets;
        Ok(format!(
            "G0={:?} G1={:?} G2={:?} G3={:?} (the active index is private)",
            sets[CharsetIndex::G0],
            sets[CharsetIndex::G1],
            sets[CharsetIndex::G2],
            sets[CharsetIndex::G3],
        ))
    }

    fn modes(&self) -> Api<String> {
        Ok(format!("{:?}", self.term.mode()))
    }

    fn scrollback(&mut self) -> Api<(usize, String)> {
        let held = self.term.grid().history_size();
        Ok((held, line_text(&self.term, -index(held))))
    }

    fn own_dump(&self) -> Api<String> {
        Err(NoApi)
    }

    fn evicted(&self) -> Api<(usize, String)> {
        Err(NoApi)
    }
}

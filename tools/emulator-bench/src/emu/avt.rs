//! avt 0.19: what tether uses today. Takes `&str`, so bytes go through
//! [`Utf8Carry`] first (the keeper has to do the same).

use super::{Api, CellView, Colour, Cursor, Emulator, NoApi, Underline};
use crate::utf8::Utf8Carry;
use avt::{Color, Line, Observation, Observer, ScreenKind, Terminal};

pub struct Avt {
    term: Terminal,
    utf8: Utf8Carry,
    evictions: Evictions,
}

/// Counts lines evicted from bounded scrollback (avt's `Observer::evicted`).
#[derive(Default)]
struct Evictions {
    count: usize,
    last: String,
    /// Keep the last line's text (only while probing: it costs a String).
    keep_text: bool,
}

impl Observer for Evictions {
    type Output = ();

    fn evicted(&mut self, _: &mut Observation<'_>, line: &Line) {
        self.count += 1;
        if self.keep_text {
            self.last = line.text().trim_end().to_owned();
        }
    }

    fn end(&mut self, _: &mut Observation<'_>) {}
}

fn colour(c: Option<Color>) -> Colour {
    match c {
        None => Colour::Default,
        Some(Color::Indexed(i)) => Colour::Indexed(i),
        Some(Color::RGB(rgb)) => Colour::Rgb(rgb.r, rgb.g, rgb.b),
    }
}

impl Emulator for Avt {
    const CRATE: &'static str = "avt";

    fn new(cols: usize, rows: usize, scrollback: usize) -> Self {
        // Both sizes are at least 1 wherever the bench creates one.
        let term = Terminal::with_scrollback(cols.max(1), rows.max(1), Some(scrollback))
            .unwrap_or_else(|_| unreachable!("non-zero size"));
        Avt { term, utf8: Utf8Carry::default(), evictions: Evictions::default() }
    }

    fn feed(&mut self, bytes: &[u8]) {
        let Avt { term, utf8, evictions } = self;
        utf8.decode(bytes, |text| term.feed_with(text, &mut *evictions));
    }

    fn cell(&self, row: usize, col: usize) -> Option<CellView> {
        let cell = self.term.screen().line(row)?.cells().get(col).copied()?;
        let pen = cell.pen();
        Some(CellView {
            text: cell.char().to_string(),
            width: usize::from(cell.width()),
            fg: colour(pen.foreground()),
            bg: colour(pen.background()),
            bold: pen.is_bold(),
            italic: pen.is_italic(),
            underline: Ok(if pen.is_underline() { Underline::Single } else { Underline::None }),
            underline_colour: Err(NoApi),
            blink: Ok(pen.is_blink()),
            concealed: Err(NoApi),
            link: Err(NoApi),
        })
    }

    fn cursor(&self) -> Cursor {
        let c = self.term.cursor();
        Cursor { col: c.col, row: c.row, visible: c.visible }
    }

    fn take_notes(&mut self) -> Vec<String> {
        Vec::new()
    }

    fn modify_other_keys(&self) -> Api<u8> {
        Err(NoApi)
    }

    fn cursor_blink(&self) -> Api<bool> {
        Err(NoApi)
    }

    fn reverse_video(&self) -> Api<bool> {
        Err(NoApi)
    }

    fn dynamic_colour(&self, _osc: u8) -> Api<Option<(u8, u8, u8)>> {
        Err(NoApi)
    }

    fn tab_stops(&self) -> Api<Vec<usize>> {
        Err(NoApi)
    }

    fn hidden_primary_row(&self, row: usize) -> Api<String> {
        Ok(self
            .term
            .primary_screen()
            .line(row)
            .map(|l| l.text().trim_end().to_owned())
            .unwrap_or_default())
    }

    fn alternate_active(&self) -> Api<bool> {
        Ok(self.term.active_screen_kind() == ScreenKind::Alternate)
    }

    fn scroll_region(&self) -> Api<(usize, usize)> {
        Err(NoApi)
    }

    fn saved_cursor(&self) -> Api<(usize, usize)> {
        Err(NoApi)
    }

    fn charsets(&self) -> Api<String> {
        Err(NoApi)
    }

    fn modes(&self) -> Api<String> {
        Ok(format!("cursor keys app={} (no other mode getter)", self.term.cursor_key_app_mode()))
    }

    fn scrollback(&mut self) -> Api<(usize, String)> {
        let screen = self.term.primary_screen();
        let total = screen.all_lines().count();
        let visible = screen.visible_lines().len();
        let oldest = screen.all_lines().next().map(Line::text).unwrap_or_default();
        Ok((total - visible, oldest.trim_end().to_owned()))
    }

    fn keep_evicted_text(&mut self) {
        self.evictions.keep_text = true;
    }

    fn own_dump(&self) -> Api<String> {
        Ok(self.term.dump())
    }

    fn evicted(&self) -> Api<(usize, String)> {
        Ok((self.evictions.count, self.evictions.last.clone()))
    }
}

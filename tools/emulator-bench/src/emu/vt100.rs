//! vt100 0.18: takes bytes; unhandled sequences and scrolled-off rows reach
//! the embedder through `Callbacks`, which the adapter records.

use super::{Api, CellView, Colour, Cursor, Emulator, NoApi, Underline};
use std::num::NonZeroU16;
use vt100::capture::{BasicFormattedCaptureState, RowContents, basic_formatted_to_plain};
use vt100::{Callbacks, Color, Parser, Screen};

pub struct Vt100 {
    parser: Parser<Recorder>,
}

/// What the parser handed back instead of interpreting it.
#[derive(Default)]
struct Recorder {
    notes: Vec<String>,
    evicted: usize,
    last_evicted: String,
    keep_text: bool,
}

/// Notes kept at most, so a long stream can't grow them without bound.
const MAX_NOTES: usize = 32;

impl Recorder {
    fn note(&mut self, note: String) {
        if self.notes.len() < MAX_NOTES {
            self.notes.push(note);
        }
    }
}

impl Callbacks for Recorder {
    fn unhandled_csi(
        &mut self,
        _: &mut Screen,
        i1: Option<u8>,
        i2: Option<u8>,
        params: &[&[u16]],
        c: char,
    ) {
        let inter: String = [i1, i2].iter().flatten().map(|&b| char::from(b)).collect();
        self.note(format!("unhandled_csi({inter}{params:?}{c})"));
    }

    fn unhandled_osc(&mut self, _: &mut Screen, params: &[&[u8]]) {
        let parts: Vec<String> =
            params.iter().map(|p| String::from_utf8_lossy(p).into_owned()).collect();
        self.note(format!("unhandled_osc({})", parts.join(";")));
    }

    fn unhandled_escape(&mut self, _: &mut Screen, i1: Option<u8>, i2: Option<u8>, b: u8) {
        let inter: String = [i1, i2].iter().flatten().map(|&b| char::from(b)).collect();
        self.note(format!("unhandled_escape({inter}{})", char::from(b)));
    }

    fn on_scroll(&mut self, contents: RowContents<'_>, _alternate: bool) {
        self.evicted += 1;
        if self.keep_text {
            let mut formatted = String::new();
            let mut state = BasicFormattedCaptureState::new();
            // Writing into a String cannot fail.
            let _ = contents.write_formatted_basic(&mut formatted, &mut state);
            self.last_evicted = basic_formatted_to_plain(&formatted).collect();
        }
    }
}

fn colour(c: Color) -> Colour {
    match c {
        Color::Default => Colour::Default,
        Color::Idx(i) => Colour::Indexed(i),
        Color::Rgb(r, g, b) => Colour::Rgb(r, g, b),
    }
}

fn size(n: usize) -> NonZeroU16 {
    NonZeroU16::new(u16::try_from(n).unwrap_or(u16::MAX).max(1)).unwrap_or(NonZeroU16::MIN)
}

impl Vt100 {
    fn screen(&self) -> &Screen {
        self.parser.screen()
    }
}

impl Emulator for Vt100 {
    const CRATE: &'static str = "vt100";

    fn new(cols: usize, rows: usize, scrollback: usize) -> Self {
        let parser =
            Parser::new_with_callbacks(size(rows), size(cols), scrollback, Recorder::default());
        Vt100 { parser }
    }

    fn feed(&mut self, bytes: &[u8]) {
        self.parser.process(bytes);
    }

    fn cell(&self, row: usize, col: usize) -> Option<CellView> {
        let cell = self.screen().cell(u16::try_from(row).ok()?, u16::try_from(col).ok()?)?;
        let width = if cell.is_wide_continuation() {
            0
        } else if cell.is_wide() {
            2
        } else {
            1
        };
        Some(CellView {
            text: cell.contents().to_owned(),
            width,
            fg: colour(cell.fgcolor()),
            bg: colour(cell.bgcolor()),
            bold: cell.bold(),
            italic: cell.italic(),
            underline: Ok(if cell.underline() { Underline::Single } else { Underline::None }),
            underline_colour: Err(NoApi),
            blink: Err(NoApi),
            concealed: Err(NoApi),
            link: Err(NoApi),
        })
    }

    fn cursor(&self) -> Cursor {
        let (row, col) = self.screen().cursor_position();
        Cursor {
            col: usize::from(col),
            row: usize::from(row),
            visible: !self.screen().hide_cursor(),
        }
    }

    fn take_notes(&mut self) -> Vec<String> {
        std::mem::take(&mut self.parser.callbacks_mut().notes)
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

    fn hidden_primary_row(&self, _row: usize) -> Api<String> {
        Err(NoApi)
    }

    fn alternate_active(&self) -> Api<bool> {
        Ok(self.screen().alternate_screen())
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
        let s = self.screen();
        Ok(format!(
            "app keypad={} app cursor={} hide cursor={} bracketed paste={} mouse={:?}/{:?} cursor style={:?}",
            s.application_keypad(),
            s.application_cursor(),
            s.hide_cursor(),
            s.bracketed_paste(),
            s.mouse_protocol_mode(),
            s.mouse_protocol_encoding(),
            s.cursor_style(),
        ))
    }

    fn scrollback(&mut self) -> Api<(usize, String)> {
        let screen = self.parser.screen_mut();
        let held = screen.scrollback_len();
        // The view is moved into history to read it, then put back.
        screen.set_scrollback(held);
        let oldest = screen.rows(0, screen.size().1.get()).next().unwrap_or_default();
        screen.set_scrollback(0);
        Ok((held, oldest.trim_end().to_owned()))
    }

    fn keep_evicted_text(&mut self) {
        self.parser.callbacks_mut().keep_text = true;
    }

    fn own_dump(&self) -> Api<String> {
        Ok(self.screen().state_formatted())
    }

    fn evicted(&self) -> Api<(usize, String)> {
        let rec = self.parser.callbacks();
        Ok((rec.evicted, rec.last_evicted.clone()))
    }
}

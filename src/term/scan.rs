//! A byte-level scanner for what a job prints: where escape sequences begin
//! and end, which of them are terminal queries, and which input modes they
//! switch.
//!
//! The keeper runs every PTY read through it before the screen model
//! (`keeper::screen`) and the fan-out, for three reasons:
//!
//! * **Boundaries.** A read can end in the middle of an escape sequence or a
//!   UTF-8 character. The keeper holds such a tail back until it is
//!   complete, so a redraw is never taken in the middle of a sequence and a
//!   client never receives half of one after a redraw.
//! * **Queries.** A job asking for the cursor position or device attributes
//!   must get exactly one answer, with no client or with several. The keeper
//!   answers those itself and removes them from what clients receive; other
//!   queries (colours, versions) go to one client only; a few (clipboard read,
//!   title report) go nowhere.
//! * **Modes** the screen model does not keep (bracketed paste, mouse
//!   reporting, focus events, keypad, cursor style, title, kitty keyboard
//!   flags): restored on redraw, and undone by a client when it detaches.
//!
//! The client runs the same scanner over what it receives, only to know
//! which modes to undo.

use std::fmt::Write as _;
use std::ops::Range;

/// The longest incomplete tail held back; a longer sequence (an image, a
/// huge clipboard write) is passed through in pieces.
pub const HOLDBACK_MAX: usize = 64 * 1024;

/// Bytes of a sequence kept for classification; a longer sequence is still
/// delimited but never classified as a query.
pub(crate) const COLLECT_MAX: usize = 4096;

/// The longest title kept for redraws.
const TITLE_MAX: usize = 256;

/// Deepest kitty keyboard flag stack kept (kitty itself keeps a bounded stack).
const KITTY_STACK_MAX: usize = 16;

/// Private modes tracked for redraw and reset, besides the alternate screen:
/// DECCKM is kept by the screen model but must be undone on detach; reverse
/// video, cursor blink, X10 mouse, mouse tracking and encodings, focus
/// events, alternate scroll, bracketed paste.
const TRACKED_MODES: [u16; 14] =
    [1, 5, 9, 12, 1000, 1002, 1003, 1004, 1005, 1006, 1007, 1015, 1016, 2004];

/// The longest OSC 8 hyperlink (parameters and target) kept for redraws.
pub(crate) const LINK_MAX: usize = 2048;

/// A query the keeper answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Query {
    /// `CSI 5 n`: "are you OK?".
    Status,
    /// `CSI 6 n` (or `CSI ? 6 n` when `dec`): cursor position report.
    CursorPosition {
        /// The DEC variant, answered with `CSI ? r ; c R`.
        dec: bool,
    },
    /// `CSI c`: primary device attributes.
    PrimaryAttributes,
    /// `CSI > c`: secondary device attributes.
    SecondaryAttributes,
    /// `CSI 18 t`: text area size in characters.
    TextAreaSize,
}

/// What to do with a complete sequence, besides feeding the screen model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The keeper answers; no client sees it.
    Answer(Query),
    /// Only one client (the most recently active one) sees it, so that at
    /// most one terminal answers.
    OneClient,
    /// Nobody sees it (clipboard reads, title reports).
    Drop,
    /// Interactive clients see it; read-only watchers do not: it would act
    /// on the watcher's own machine (notifications, graphics, and the
    /// clipboard writes, file transfers and passthrough an interactive
    /// client's [`Passthrough`] allows).
    Unsafe,
}

/// What a job may make an interactive client's terminal do beyond the
/// screen (config.toml `clipboard`, `file_transfer`, `passthrough`). What
/// is not allowed reaches no client at all; the default allows nothing,
/// as tmux's defaults do (docs/CONFIG.md).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct Passthrough {
    /// Clipboard writes: OSC 52, kitty's OSC 5522.
    pub clipboard: bool,
    /// File transfers: iTerm2's OSC 1337 `File=` (and its multipart and
    /// upload forms), kitty's OSC 5113.
    pub file_transfer: bool,
    /// DCS `tmux;` passthrough to the terminal outside a multiplexer.
    pub tmux: bool,
}

impl Passthrough {
    /// Everything allowed (for tests and tools that want the raw stream).
    pub const ALL: Passthrough = Passthrough { clipboard: true, file_transfer: true, tmux: true };

    fn allows(self, class: Reach) -> bool {
        match class {
            Reach::Viewer => true,
            Reach::Clipboard => self.clipboard,
            Reach::FileTransfer => self.file_transfer,
            Reach::Tmux => self.tmux,
        }
    }
}

/// What a sequence that acts beyond the screen reaches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reach {
    /// The viewer's machine (notifications, fonts, graphics): fine for
    /// the interactive client that runs the job, never for a watcher.
    Viewer,
    /// The clipboard.
    Clipboard,
    /// Files on the viewer's machine.
    FileTransfer,
    /// The terminal outside a multiplexer, unfiltered.
    Tmux,
}

/// A classified sequence within the scanned bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Span {
    /// Byte range of the whole sequence.
    pub range: Range<usize>,
    /// What to do with it.
    pub action: Action,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Ground,
    /// Inside a multibyte character; `c1` when it began with `0xc2`, the
    /// lead of the C1 controls U+0080..U+009F.
    Utf8 {
        need: u8,
        c1: bool,
    },
    Esc,
    EscInter,
    Csi,
    Osc,
    OscEsc,
    Str,
    StrEsc,
}

/// Input and display modes the screen model does not keep.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Modes {
    /// Bit i set: `TRACKED_MODES[i]` is on.
    private: u16,
    /// The mode that entered the alternate screen (47, 1047 or 1049).
    alt_screen: Option<u16>,
    /// `ESC =` application keypad.
    app_keypad: bool,
    /// DECSCUSR parameter.
    cursor_style: Option<u16>,
    /// Last OSC 0/2 title, control characters removed.
    title: Option<String>,
    /// kitty keyboard protocol flag stack; the top is in effect.
    kitty: Vec<u16>,
    /// xterm's modifyOtherKeys level (`CSI > 4 ; n m`), when not 0.
    modify_other_keys: Option<u16>,
    /// Colours set with OSC 10, 11 and 12 (text, background, cursor), as
    /// the job wrote them.
    colors: [Option<String>; 3],
    /// The OSC 8 hyperlink open at the end of the output so far
    /// (`params;target`): text written next belongs to it.
    hyperlink: Option<String>,
    /// ANSI insert mode (IRM, `CSI 4 h`); the screen model keeps and
    /// redraws it, this copy is for the model's own bookkeeping.
    insert: bool,
}

impl Modes {
    /// Whether private mode `mode` is on (tracked modes and the alternate screen).
    pub fn private_mode(&self, mode: u16) -> bool {
        if matches!(mode, 47 | 1047 | 1049) {
            return self.alt_screen == Some(mode);
        }
        TRACKED_MODES.iter().position(|m| *m == mode).is_some_and(|i| self.private & (1 << i) != 0)
    }

    /// Whether insert mode (IRM) is on.
    pub fn insert_mode(&self) -> bool {
        self.insert
    }

    /// Whether the alternate screen is active.
    pub fn alt_screen(&self) -> bool {
        self.alt_screen.is_some()
    }

    fn set_private(&mut self, mode: u16, on: bool) {
        if matches!(mode, 47 | 1047 | 1049) {
            self.alt_screen = on.then_some(mode);
        } else if let Some(i) = TRACKED_MODES.iter().position(|m| *m == mode) {
            if on {
                self.private |= 1 << i;
            } else {
                self.private &= !(1 << i);
            }
        }
    }

    /// Sequences that re-establish these modes on a terminal that has just
    /// been drawn from the screen model (which restores DECCKM and the
    /// alternate screen itself); the keyboard modes are in
    /// [`Modes::restore_keyboard`].
    pub fn restore_sequence(&self) -> String {
        let mut s = String::new();
        for (i, m) in TRACKED_MODES.iter().enumerate() {
            if *m != 1 && self.private & (1 << i) != 0 {
                let _ = write!(s, "\x1b[?{m}h");
            }
        }
        if self.app_keypad {
            s.push_str("\x1b=");
        }
        if let Some(style) = self.cursor_style {
            let _ = write!(s, "\x1b[{style} q");
        }
        if let Some(title) = &self.title {
            let _ = write!(s, "\x1b]2;{title}\x07");
        }
        for (i, color) in self.colors.iter().enumerate() {
            if let Some(color) = color {
                let _ = write!(s, "\x1b]{};{color}\x1b\\", 10 + i);
            }
        }
        if let Some(link) = &self.hyperlink {
            let _ = write!(s, "\x1b]8;{link}\x1b\\");
        }
        s
    }

    /// The keyboard modes (kitty flags, modifyOtherKeys), written before a
    /// redraw paints anything: a terminal that does not know them may take
    /// `CSI = … u` for "restore the cursor" and `CSI > 4 ; n m` for
    /// colours, which the redraw then sets right.
    pub fn restore_keyboard(&self) -> String {
        let mut s = String::new();
        if let Some(flags) = self.kitty.last().filter(|f| **f != 0) {
            let _ = write!(s, "\x1b[={flags};1u");
        }
        if let Some(level) = self.modify_other_keys {
            let _ = write!(s, "\x1b[>4;{level}m");
        }
        s
    }

    /// Sequences that return a terminal showing a session to the state a
    /// shell expects: primary screen, no mouse or paste modes, normal keys,
    /// visible cursor, full scrolling region, default colours.
    pub fn reset_sequence(&self) -> String {
        let mut s = String::new();
        if let Some(m) = self.alt_screen {
            let _ = write!(s, "\x1b[?{m}l");
        }
        for (i, m) in TRACKED_MODES.iter().enumerate() {
            if self.private & (1 << i) != 0 {
                let _ = write!(s, "\x1b[?{m}l");
            }
        }
        if self.app_keypad {
            s.push_str("\x1b>");
        }
        if self.cursor_style.is_some() {
            s.push_str("\x1b[0 q");
        }
        if self.kitty.last().is_some_and(|f| *f != 0) {
            s.push_str("\x1b[=0;1u");
        }
        if self.modify_other_keys.is_some() {
            s.push_str("\x1b[>4m");
        }
        for (i, color) in self.colors.iter().enumerate() {
            if color.is_some() {
                let _ = write!(s, "\x1b]{}\x1b\\", 110 + i);
            }
        }
        if self.hyperlink.is_some() {
            s.push_str("\x1b]8;;\x1b\\");
        }
        // Full scrolling region without moving the cursor, visible cursor,
        // default attributes.
        s.push_str("\x1b7\x1b[r\x1b8\x1b[?25h\x1b[0m");
        s
    }
}

/// The scanner. Feed it bytes with [`VtScanner::scan`].
#[derive(Debug)]
pub struct VtScanner {
    state: State,
    /// Bytes of the current sequence after its introducer, up to COLLECT_MAX.
    collected: Vec<u8>,
    /// The current sequence outgrew `collected`; it will not be classified.
    overflow: bool,
    /// The last byte of the string being scanned was `0xc2` (perhaps the
    /// first half of ST written as U+009C).
    after_c2: bool,
    /// Where the current sequence or character began in the scanned buffer.
    start: usize,
    /// A sequence too long to hold back is being passed through and is
    /// unsafe for watchers (or for everyone): everything up to its end is.
    carry: Option<Action>,
    /// What interactive clients may receive of what acts beyond the screen.
    passthrough: Passthrough,
    /// The modes seen so far.
    pub modes: Modes,
    /// Shell marks in the buffers scanned since they were last taken,
    /// each with where it ends in the buffer of its scan.
    pub marks: Vec<(usize, ShellMark)>,
    /// The mark of the string being finished.
    mark: Option<ShellMark>,
    /// Whether shell marks are collected (only the screen model's scanner
    /// wants them; the live router and mode trackers do not).
    pub collect_marks: bool,
}

/// A mark a shell writes around its prompt and commands (OSC 133, as
/// FinalTerm defined it and terminals and multiplexers use it) or about
/// its working directory (OSC 7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ShellMark {
    /// `133;A`: a prompt begins.
    Prompt,
    /// `133;B`: the command line begins (after the prompt).
    Input,
    /// `133;C`: the command line was entered and runs.
    Run,
    /// `133;D[;EXIT]`: the command ended, with its exit status.
    Done(Option<i32>),
    /// `7;file://HOST/PATH`: the working directory (PATH decoded).
    Cwd(String),
}

/// The longest working directory kept from an OSC 7.
const CWD_MAX: usize = 4096;

impl Default for VtScanner {
    fn default() -> Self {
        VtScanner {
            state: State::Ground,
            collected: Vec::new(),
            overflow: false,
            after_c2: false,
            start: 0,
            carry: None,
            passthrough: Passthrough::default(),
            modes: Modes::default(),
            marks: Vec::new(),
            mark: None,
            collect_marks: false,
        }
    }
}

impl VtScanner {
    /// A scanner in the ground state.
    pub fn new() -> Self {
        Self::default()
    }

    /// The same scanner, collecting shell marks in [`VtScanner::marks`].
    #[must_use]
    pub fn marking(mut self) -> Self {
        self.collect_marks = true;
        self
    }

    /// A scanner whose spans let interactive clients have what
    /// `passthrough` allows (the default allows nothing).
    pub fn with_passthrough(passthrough: Passthrough) -> Self {
        VtScanner { passthrough, ..Self::default() }
    }

    /// Scans `buf`, appending the classified sequences to `spans`, and
    /// returns the length of its complete prefix: the part that ends outside
    /// any escape sequence and UTF-8 character.
    ///
    /// If the incomplete tail is at most [`HOLDBACK_MAX`] bytes, the scanner
    /// forgets it: the caller keeps those bytes and passes them again, with
    /// whatever follows, next time. A longer tail is consumed (the scanner
    /// stays inside the sequence) and the whole buffer counts as complete.
    pub fn scan(&mut self, buf: &[u8], spans: &mut Vec<Span>) -> usize {
        self.start = 0;
        let first_span = spans.len();
        let mut i = 0;
        while i < buf.len() {
            if self.state == State::Ground {
                // Fast path: in the ground state only ESC and the lead byte
                // of a multibyte character change anything, so runs of
                // ASCII text and C0 controls are skipped at once.
                i += buf[i..].iter().position(|&b| b == 0x1b || b >= 0x80).unwrap_or(buf.len() - i);
                if i == buf.len() {
                    break;
                }
                self.start = i;
            }
            self.step(buf[i], i, spans);
            i += 1;
        }
        if self.state == State::Ground {
            return buf.len();
        }
        let tail = buf.len() - self.start.min(buf.len());
        if let Some(action) = self.carry {
            // Still inside a long unsafe string: all of this buffer is part of it.
            spans.truncate(first_span);
            spans.push(Span { range: 0..buf.len(), action });
            return buf.len();
        }
        if tail <= HOLDBACK_MAX {
            self.reset_sequence_state();
            buf.len() - tail
        } else {
            // Keep scanning the oversized sequence from the next buffer on;
            // it can no longer be classified as a query, but a watcher must
            // still not receive an unsafe one.
            if let Some(action) = self.unsafe_prefix() {
                self.carry = Some(action);
                spans.push(Span { range: self.start..buf.len(), action });
            }
            self.overflow = true;
            self.start = 0;
            buf.len()
        }
    }

    /// What to do with the string being collected, if watchers must not
    /// get it, judged from its first bytes: [`Action::Unsafe`] when
    /// interactive clients may, else [`Action::Drop`].
    fn unsafe_prefix(&self) -> Option<Action> {
        let reach = match self.state {
            State::Osc | State::OscEsc => osc_reach(&self.collected),
            State::Str | State::StrEsc => string_reach(&self.collected),
            _ => None,
        }?;
        Some(if self.passthrough.allows(reach) { Action::Unsafe } else { Action::Drop })
    }

    fn reset_sequence_state(&mut self) {
        self.state = State::Ground;
        self.collected.clear();
        self.overflow = false;
    }

    fn collect(&mut self, b: u8) {
        if self.collected.len() < COLLECT_MAX {
            self.collected.push(b);
        } else {
            self.overflow = true;
        }
    }

    fn begin(&mut self, state: State) {
        self.state = state;
        self.collected.clear();
        self.overflow = false;
        self.after_c2 = false;
    }

    fn step(&mut self, b: u8, i: usize, spans: &mut Vec<Span>) {
        // CAN and SUB abort any sequence; ESC starts a new one (except where
        // it may begin a string terminator).
        match (self.state, b) {
            (State::Osc | State::Str, 0x1b) => {
                self.state = if self.state == State::Osc { State::OscEsc } else { State::StrEsc };
                return;
            }
            (_, 0x18 | 0x1a) if self.state != State::Ground => {
                self.reset_sequence_state();
                return;
            }
            _ => {}
        }
        match self.state {
            State::Ground => self.ground(b),
            State::Utf8 { need, c1 } => self.utf8(b, need, c1, i, spans),
            State::Esc => self.escape(b),
            State::EscInter => self.escape_intermediate(b),
            State::Csi => self.csi(b, i, spans),
            State::Osc => self.osc(b, i, spans),
            State::OscEsc | State::StrEsc => self.string_escape(b, i, spans),
            State::Str => self.string_byte(b, i, spans),
        }
    }

    fn ground(&mut self, b: u8) {
        match b {
            0x1b => self.begin(State::Esc),
            0xc2..=0xdf => self.state = State::Utf8 { need: 1, c1: b == 0xc2 },
            0xe0..=0xef => self.state = State::Utf8 { need: 2, c1: false },
            0xf0..=0xf4 => self.state = State::Utf8 { need: 3, c1: false },
            _ => {}
        }
    }

    fn utf8(&mut self, b: u8, need: u8, c1: bool, i: usize, spans: &mut Vec<Span>) {
        if c1 && (0x80..=0x9f).contains(&b) {
            self.c1_control(b);
        } else if (0x80..=0xbf).contains(&b) {
            self.state =
                if need > 1 { State::Utf8 { need: need - 1, c1: false } } else { State::Ground };
        } else {
            // Invalid continuation: the partial character is garbage (the
            // screen model shows U+FFFD); this byte starts afresh.
            self.state = State::Ground;
            self.start = i;
            self.step(b, i, spans);
        }
    }

    /// A C1 control written as a UTF-8 character (`0xc2` then `b`): the
    /// screen model, and terminals that honour them, take U+009B as CSI,
    /// U+009D as OSC, U+0090 as DCS and so on, so they begin the same
    /// sequences as their `ESC` forms (the sequence starts at the `0xc2`).
    fn c1_control(&mut self, b: u8) {
        match b {
            0x9b => self.begin(State::Csi),
            0x9d => self.begin(State::Osc),
            0x90 | 0x98 | 0x9e | 0x9f => {
                self.begin(State::Str);
                self.collect(b - 0x40);
            }
            _ => {
                self.state = State::Ground;
                self.after_c2 = false;
            }
        }
    }

    /// One byte of a DCS, SOS, PM or APC string.
    fn string_byte(&mut self, b: u8, i: usize, spans: &mut Vec<Span>) {
        if self.c1_aborts_string(b) {
            return;
        }
        if self.ends_with_c1_st(b) {
            self.finish_string(i, spans);
        } else {
            self.collect(b);
        }
    }

    /// Whether `b` completes a C1 control other than ST (`0xc2` then
    /// `b`) inside a string: the screen model leaves the string for it
    /// (unfinished, so nothing acts on it) and starts what it introduces.
    fn c1_aborts_string(&mut self, b: u8) -> bool {
        if !(self.after_c2 && (0x80..=0x9f).contains(&b) && b != 0x9c) {
            return false;
        }
        self.c1_control(b);
        true
    }

    /// Whether `b` completes ST written as a UTF-8 character (U+009C, the
    /// bytes `0xc2 0x9c`) inside a string; the `0xc2` is dropped from what
    /// was collected.
    fn ends_with_c1_st(&mut self, b: u8) -> bool {
        let st = b == 0x9c && self.after_c2;
        self.after_c2 = b == 0xc2;
        if st && self.collected.last() == Some(&0xc2) {
            self.collected.pop();
        }
        st
    }

    fn escape(&mut self, b: u8) {
        match b {
            b'[' => self.begin(State::Csi),
            b']' => self.begin(State::Osc),
            b'P' | b'X' | b'^' | b'_' => {
                self.begin(State::Str);
                self.collect(b);
            }
            0x20..=0x2f => self.state = State::EscInter,
            0x1b => self.begin(State::Esc),
            0x30..=0x7e => {
                self.state = State::Ground;
                self.escape_dispatch(b);
            }
            0x80..=0xff => self.character_in_sequence(b),
            // C0 controls inside an escape are executed by terminals and
            // leave the escape pending.
            _ => {}
        }
    }

    fn escape_intermediate(&mut self, b: u8) {
        match b {
            0x30..=0x7e => self.state = State::Ground,
            0x1b => self.begin(State::Esc),
            0x80..=0xff => self.character_in_sequence(b),
            _ => {}
        }
    }

    /// A byte from 0x80 on inside an escape or CSI: the start of a
    /// character. The screen model reads a character from U+00A0 on (or
    /// an invalid byte, U+FFFD to it) as a final byte, and a C1 control
    /// as the start of what it introduces: either way the sequence is
    /// over, and the character is read as in the ground state.
    fn character_in_sequence(&mut self, b: u8) {
        self.state = State::Ground;
        self.ground(b);
    }

    fn escape_dispatch(&mut self, fin: u8) {
        match fin {
            b'=' => self.modes.app_keypad = true,
            b'>' => self.modes.app_keypad = false,
            b'c' => self.modes = Modes::default(),
            _ => {}
        }
    }

    fn csi(&mut self, b: u8, i: usize, spans: &mut Vec<Span>) {
        match b {
            0x40..=0x7e => {
                self.state = State::Ground;
                if !self.overflow {
                    let body = std::mem::take(&mut self.collected);
                    if let Some(action) = self.csi_dispatch(&body, b) {
                        spans.push(Span { range: self.start..i + 1, action });
                    }
                    self.collected = body;
                }
            }
            0x1b => self.begin(State::Esc),
            0x20..=0x3f => self.collect(b),
            0x80..=0xff => self.character_in_sequence(b),
            // C0 controls are executed in place; DEL is ignored.
            _ => {}
        }
    }

    fn osc(&mut self, b: u8, i: usize, spans: &mut Vec<Span>) {
        if self.c1_aborts_string(b) {
            return;
        }
        if b == 0x07 || self.ends_with_c1_st(b) {
            self.finish_string(i, spans);
        } else {
            self.collect(b);
        }
    }

    fn string_escape(&mut self, b: u8, i: usize, spans: &mut Vec<Span>) {
        // tmux passthrough doubles every ESC inside its DCS string.
        if b == 0x1b && self.state == State::StrEsc && self.collected.starts_with(b"Ptmux;") {
            self.state = State::Str;
            self.collect(b);
            return;
        }
        if b == b'\\' {
            self.finish_string(i, spans);
        } else {
            // ESC not followed by '\' aborts the string and starts a new
            // escape sequence with this byte.
            self.begin(State::Esc);
            self.start = i - 1;
            self.step(b, i, spans);
        }
    }

    fn finish_string(&mut self, i: usize, spans: &mut Vec<Span>) {
        let osc = matches!(self.state, State::Osc | State::OscEsc);
        if let Some(action) = self.carry.take() {
            self.state = State::Ground;
            spans.push(Span { range: 0..i + 1, action });
            return;
        }
        let risky = self.unsafe_prefix();
        self.state = State::Ground;
        if self.overflow {
            if let Some(action) = risky {
                spans.push(Span { range: self.start..i + 1, action });
            }
            return;
        }
        let body = std::mem::take(&mut self.collected);
        let action = if osc { self.osc_dispatch(&body) } else { dcs_dispatch(&body) };
        if let Some(mark) = self.mark.take() {
            self.marks.push((i + 1, mark));
        }
        let action = action.or(risky);
        if let Some(action) = action {
            spans.push(Span { range: self.start..i + 1, action });
        }
        self.collected = body;
    }

    fn csi_dispatch(&mut self, body: &[u8], fin: u8) -> Option<Action> {
        let (prefix, rest) = match body.first() {
            Some(p @ (b'<' | b'=' | b'>' | b'?')) => (Some(*p), &body[1..]),
            _ => (None, body),
        };
        let split = rest.iter().position(|b| (0x20..=0x2f).contains(b)).unwrap_or(rest.len());
        let (params, inter) = rest.split_at(split);
        let first = first_param(params);
        match (prefix, inter, fin) {
            (Some(b'?'), b"", b'h' | b'l') => {
                for m in model_params(params) {
                    self.modes.set_private(m, fin == b'h');
                }
                None
            }
            (None, b"", b'n') => match first {
                Some(5) => Some(Action::Answer(Query::Status)),
                Some(6) => Some(Action::Answer(Query::CursorPosition { dec: false })),
                _ => Some(Action::OneClient),
            },
            (Some(b'?'), b"", b'n') => match first {
                Some(6) => Some(Action::Answer(Query::CursorPosition { dec: true })),
                _ => Some(Action::OneClient),
            },
            (None, b"", b'c') if matches!(first, None | Some(0)) => {
                Some(Action::Answer(Query::PrimaryAttributes))
            }
            (Some(b'>'), b"", b'c') if matches!(first, None | Some(0)) => {
                Some(Action::Answer(Query::SecondaryAttributes))
            }
            (Some(b'='), b"", b'c') => Some(Action::OneClient),
            (None, b"", b't') => match first {
                Some(18) => Some(Action::Answer(Query::TextAreaSize)),
                Some(14 | 16 | 19) => Some(Action::OneClient),
                // Reporting the icon label or title echoes text the job
                // chose back as input: a known injection vector.
                Some(20 | 21) => Some(Action::Drop),
                _ => None,
            },
            (_, b"$", b'p') | (Some(b'>'), b"", b'q') | (Some(b'?'), b"", b'u') => {
                Some(Action::OneClient)
            }
            (None, b" ", b'q') => {
                self.modes.cursor_style = Some(first.unwrap_or(0)).filter(|s| *s != 0);
                None
            }
            (None, b"!", b'p') => {
                // DECSTR soft reset.
                self.modes.app_keypad = false;
                self.modes.insert = false;
                self.modes.set_private(1, false);
                None
            }
            (None, b"", b'h' | b'l') => {
                // avt ignores a CSI that starts with `:` (no private
                // marker before it).
                if !params.starts_with(b":") && model_params(params).contains(&4) {
                    self.modes.insert = fin == b'h';
                }
                None
            }
            (Some(p @ (b'>' | b'<' | b'=')), b"", b'u') => {
                self.kitty_keyboard(p, params);
                None
            }
            // xterm's key modifier options: only modifyOtherKeys (4) changes
            // what keys send; `CSI > 4 n` resets it like `CSI > 4 m`.
            (Some(b'>'), b"", b'm' | b'n') if first == Some(4) => {
                let level = params.split(|b| *b == b';').nth(1).and_then(parse_u16);
                self.modes.modify_other_keys =
                    if fin == b'm' { level.filter(|l| *l != 0) } else { None };
                None
            }
            _ => None,
        }
    }

    fn kitty_keyboard(&mut self, op: u8, params: &[u8]) {
        let mut it = params.split(|b| *b == b';').map(parse_u16);
        let first = it.next().flatten();
        let stack = &mut self.modes.kitty;
        match op {
            b'>' => {
                if stack.len() == KITTY_STACK_MAX {
                    stack.remove(0);
                }
                stack.push(first.unwrap_or(0));
            }
            b'<' => {
                let n = usize::from(first.unwrap_or(1).max(1));
                stack.truncate(stack.len().saturating_sub(n));
            }
            _ => {
                let flags = first.unwrap_or(0);
                let current = stack.last().copied().unwrap_or(0);
                let new = match it.next().flatten().unwrap_or(1) {
                    2 => current | flags,
                    3 => current & !flags,
                    _ => flags,
                };
                match stack.last_mut() {
                    Some(top) => *top = new,
                    None => stack.push(new),
                }
            }
        }
    }

    fn osc_dispatch(&mut self, body: &[u8]) -> Option<Action> {
        let (ps, pt) = match body.iter().position(|b| *b == b';') {
            Some(i) => (&body[..i], &body[i + 1..]),
            None => (body, &b""[..]),
        };
        match parse_u16(ps)? {
            0 | 2 => {
                self.modes.title = Some(clean(pt, TITLE_MAX));
                None
            }
            // Colour queries: a palette entry, foreground, background, cursor…
            4 | 5 if pt.split(|b| *b == b';').any(|f| f == b"?") => Some(Action::OneClient),
            10..=19 if pt == b"?" => Some(Action::OneClient),
            n @ 10..=12 => {
                // Each further `;` value sets the next colour (OSC 10;fg;bg).
                for (i, value) in pt.split(|b| *b == b';').enumerate() {
                    let slot = usize::from(n - 10) + i;
                    if slot < 3 && value != b"?" {
                        self.modes.colors[slot] = Some(clean(value, TITLE_MAX));
                    }
                }
                pt.split(|b| *b == b';').any(|f| f == b"?").then_some(Action::OneClient)
            }
            n @ 110..=112 => {
                self.modes.colors[usize::from(n - 110)] = None;
                None
            }
            8 => {
                self.modes.hyperlink = hyperlink(pt);
                None
            }
            133 | 7 if !self.collect_marks => None,
            133 => {
                let mut fields = pt.split(|b| *b == b';');
                self.mark = match fields.next() {
                    Some(b"A") => Some(ShellMark::Prompt),
                    Some(b"B") => Some(ShellMark::Input),
                    Some(b"C") => Some(ShellMark::Run),
                    Some(b"D") => Some(ShellMark::Done(
                        fields.next().and_then(|f| std::str::from_utf8(f).ok()?.parse().ok()),
                    )),
                    _ => None,
                };
                None
            }
            7 => {
                self.mark = file_url_path(pt).map(ShellMark::Cwd);
                None
            }
            // A clipboard read would hand the client's clipboard to the job.
            52 if pt.split(|b| *b == b';').nth(1) == Some(b"?") => Some(Action::Drop),
            _ => None,
        }
    }
}

/// The path of a `file://HOST/PATH` URL, percent-decoded; `None` for
/// anything else, or a path with control characters or too long.
fn file_url_path(url: &[u8]) -> Option<String> {
    let rest = url.strip_prefix(b"file://")?;
    let path = &rest[rest.iter().position(|b| *b == b'/')?..];
    let mut out = Vec::with_capacity(path.len());
    let mut i = 0;
    while i < path.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            path[i],
            path.get(i + 1).copied().and_then(hex),
            path.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(h), Some(l)) => {
                out.push((h * 16 + l) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    let path = String::from_utf8(out).ok()?;
    (path.len() <= CWD_MAX && !path.chars().any(char::is_control)).then_some(path)
}

/// Follows the modes of a stream without classifying anything else: what
/// an attached client needs to undo the session's modes when it leaves.
#[derive(Debug, Default)]
pub struct ModeTracker {
    scanner: VtScanner,
    pending: Vec<u8>,
    spans: Vec<Span>,
}

impl ModeTracker {
    /// A tracker for a terminal in its initial state.
    pub fn new() -> Self {
        Self::default()
    }

    /// Follows `bytes`, as written to the terminal.
    pub fn feed(&mut self, bytes: &[u8]) {
        self.pending.extend_from_slice(bytes);
        self.spans.clear();
        let complete = self.scanner.scan(&self.pending, &mut self.spans);
        self.pending.drain(..complete);
    }

    /// The modes in effect.
    pub fn modes(&self) -> &Modes {
        &self.scanner.modes
    }
}

/// OSC commands that act on the viewer's machine, and what they reach:
/// 52 clipboard, 5522 kitty clipboard; 1337 iTerm2 file downloads and
/// uploads (`File=`, `MultipartFile=`, `FilePart=`, `FileEnd`,
/// `RequestUpload=`), 5113 kitty file transfer; 50 font, 9, 99 and 777
/// desktop notifications, the rest of 1337 (user variables, marks).
fn osc_reach(body: &[u8]) -> Option<Reach> {
    let mut fields = body.splitn(2, |b| *b == b';');
    let ps = fields.next().unwrap_or(b"");
    match parse_u16(ps)? {
        52 | 5522 => Some(Reach::Clipboard),
        5113 => Some(Reach::FileTransfer),
        1337 => {
            let pt = fields.next().unwrap_or(b"");
            let files: [&[u8]; 5] =
                [b"File=", b"MultipartFile=", b"FilePart=", b"FileEnd", b"RequestUpload"];
            Some(if files.iter().any(|f| pt.starts_with(f)) {
                Reach::FileTransfer
            } else {
                Reach::Viewer
            })
        }
        9 | 50 | 99 | 777 => Some(Reach::Viewer),
        _ => None,
    }
}

/// APC strings (kitty graphics and protocols), SOS and PM reach the
/// viewer's machine; DCS passthrough to an outer multiplexer's terminal
/// (`tmux;`) reaches that terminal with anything in it.
fn string_reach(body: &[u8]) -> Option<Reach> {
    match body {
        [b'_' | b'X' | b'^', ..] => Some(Reach::Viewer),
        [b'P', rest @ ..] if rest.starts_with(b"tmux;") => Some(Reach::Tmux),
        _ => None,
    }
}

fn dcs_dispatch(body: &[u8]) -> Option<Action> {
    // body[0] is the introducer letter; DECRQSS is `P $ q`, XTGETTCAP `P + q`.
    match body {
        [b'P', rest @ ..] if rest.starts_with(b"$q") || rest.starts_with(b"+q") => {
            Some(Action::OneClient)
        }
        _ => None,
    }
}

/// Text from a sequence, kept to be written back in another one: control
/// characters removed, at most `max` characters.
/// The hyperlink (`params;target`, without controls) an OSC 8 with
/// parameters `pt` opens; `None` if it closes the link: its target is
/// empty once the controls terminals ignore inside a string are taken
/// out (or it is too long to keep).
pub(crate) fn hyperlink(pt: &[u8]) -> Option<String> {
    let link = clean(pt, LINK_MAX);
    let target = link.split_once(';').map_or("", |(_, t)| t);
    (!target.is_empty() && pt.len() <= LINK_MAX).then_some(link)
}

pub(crate) fn clean(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(bytes).chars().filter(|c| !c.is_control()).take(max).collect()
}

fn first_param(params: &[u8]) -> Option<u16> {
    params.split(|b| *b == b';' || *b == b':').next().and_then(parse_u16)
}

/// A mode sequence's parameters as the screen model (avt) reads them, so
/// that the modes followed here are the model's: the part of each before
/// a `:` (sub-parameters), digits wrapping at 16 bits, an empty one 0, at
/// most 32 (digits past the 32nd `;` run on into the last), and none at
/// all when a byte other than a digit, `;` or `:` makes avt ignore the
/// sequence.
fn model_params(params: &[u8]) -> Vec<u16> {
    const MAX: usize = 32;
    if !params.iter().all(|b| b.is_ascii_digit() || matches!(b, b';' | b':')) {
        return Vec::new();
    }
    let mut out = vec![0u16];
    let mut in_first_part = true;
    for b in params {
        match b {
            b';' if out.len() < MAX => {
                out.push(0);
                in_first_part = true;
            }
            b';' => {}
            b':' => in_first_part = false,
            digit if in_first_part => {
                if let Some(last) = out.last_mut() {
                    *last = last.wrapping_mul(10).wrapping_add(u16::from(digit - b'0'));
                }
            }
            _ => {}
        }
    }
    out
}

fn parse_u16(digits: &[u8]) -> Option<u16> {
    if digits.is_empty() || digits.len() > 5 || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_marks_are_found_where_they_end() {
        let mut sc = VtScanner::new().marking();
        let mut spans = Vec::new();
        let data = b"a\x1b]133;A\x07b\x1b]133;D;2\x1b\\\x1b]133;D\x07\x1b]133;Z\x07\
                     \x1b]7;file://host/srv/a%20b%25\x07\x1b]7;http://x/\x07\x1b]133;C\xc2\x9c";
        let n = sc.scan(data, &mut spans);
        assert_eq!(n, data.len());
        let marks: Vec<(usize, ShellMark)> = std::mem::take(&mut sc.marks);
        let kinds: Vec<&ShellMark> = marks.iter().map(|(_, m)| m).collect();
        assert_eq!(
            kinds,
            [
                &ShellMark::Prompt,
                &ShellMark::Done(Some(2)),
                &ShellMark::Done(None),
                &ShellMark::Cwd("/srv/a b%".into()),
                &ShellMark::Run,
            ]
        );
        assert_eq!(marks[0].0, 1 + 8, "after the BEL");
        assert_eq!(marks[4].0, data.len(), "after the C1 ST");
        // A directory with a control character in it is not taken.
        assert_eq!(file_url_path(b"file://h/a%1bb"), None);
    }

    fn scan_all(input: &[u8]) -> (usize, Vec<Span>, VtScanner) {
        let mut s = VtScanner::new();
        let mut spans = Vec::new();
        let n = s.scan(input, &mut spans);
        (n, spans, s)
    }

    #[test]
    fn complete_prefix_excludes_partial_sequences_and_characters() {
        let cases: &[(&[u8], usize)] = &[
            (b"hello", 5),
            (b"ab\x1b", 2),
            (b"ab\x1b[3", 2),
            (b"ab\x1b[31m", 7),
            (b"x\x1b]0;title", 1),
            (b"x\x1b]0;title\x07y", 12),
            (b"x\x1b]0;t\x1b\\", 8),
            (b"\xe2\x82", 0),
            (b"a\xe2\x82\xac", 4),
            (b"a\xf0\x9f\x98", 1),
            (b"\xff\xfe", 2),
            (b"\x1bP$q m", 0),
            (b"\x1b[1;2\x18rest", 10),
            (b"x\xc2\x9d0;title", 1),
            (b"x\xc2", 1),
            (b"x\xc2\x9d0;t\xc2\x9cy", 9),
        ];
        for (input, want) in cases {
            assert_eq!(scan_all(input).0, *want, "{:?}", String::from_utf8_lossy(input));
        }
    }

    #[test]
    fn held_back_tail_completes_on_rescan() {
        let mut s = VtScanner::new();
        let mut spans = Vec::new();
        let mut buf = b"ab\x1b[".to_vec();
        let n = s.scan(&buf, &mut spans);
        assert_eq!(n, 2);
        buf.drain(..n);
        buf.extend_from_slice(b"6n");
        assert_eq!(s.scan(&buf, &mut spans), 4);
        assert_eq!(
            spans,
            [Span { range: 0..4, action: Action::Answer(Query::CursorPosition { dec: false }) }]
        );
    }

    #[test]
    fn long_sequences_pass_through_without_holdback() {
        let mut s = VtScanner::new();
        let mut spans = Vec::new();
        let mut big = b"\x1b]2;".to_vec();
        big.extend(std::iter::repeat_n(b'A', HOLDBACK_MAX + 10));
        assert_eq!(s.scan(&big, &mut spans), big.len());
        // The terminator in the next buffer ends it; nothing is classified.
        assert_eq!(s.scan(b"\x07ok", &mut spans), 3);
        assert!(spans.is_empty());
    }

    #[test]
    fn classifies_queries() {
        let cases: &[(&[u8], Option<Action>)] = &[
            (b"\x1b[6n", Some(Action::Answer(Query::CursorPosition { dec: false }))),
            (b"\x1b[?6n", Some(Action::Answer(Query::CursorPosition { dec: true }))),
            (b"\x1b[5n", Some(Action::Answer(Query::Status))),
            (b"\x1b[c", Some(Action::Answer(Query::PrimaryAttributes))),
            (b"\x1b[0c", Some(Action::Answer(Query::PrimaryAttributes))),
            (b"\x1b[>c", Some(Action::Answer(Query::SecondaryAttributes))),
            (b"\x1b[18t", Some(Action::Answer(Query::TextAreaSize))),
            (b"\x1b[21t", Some(Action::Drop)),
            (b"\x1b[14t", Some(Action::OneClient)),
            (b"\x1b[?2004$p", Some(Action::OneClient)),
            (b"\x1b[>q", Some(Action::OneClient)),
            (b"\x1b[?u", Some(Action::OneClient)),
            (b"\x1b]11;?\x07", Some(Action::OneClient)),
            (b"\x1b]4;1;?\x1b\\", Some(Action::OneClient)),
            (b"\x1b]52;c;?\x07", Some(Action::Drop)),
            (b"\x1bP$qm\x1b\\", Some(Action::OneClient)),
            (b"\x1bP+q544e\x1b\\", Some(Action::OneClient)),
            // Not allowed to interactive clients by default: nobody gets it.
            (b"\x1b]52;c;aGk=\x07", Some(Action::Drop)),
            (b"\x1b]9;hello\x07", Some(Action::Unsafe)),
            // The same sequences with C1 controls written as UTF-8
            // (U+009B CSI, U+009D OSC, U+0090 DCS, U+009C ST).
            (b"\xc2\x9b6n", Some(Action::Answer(Query::CursorPosition { dec: false }))),
            (b"\xc2\x9d52;c;aGk=\xc2\x9c", Some(Action::Drop)),
            (b"\xc2\x9d52;c;aGk=\x07", Some(Action::Drop)),
            (b"\xc2\x90tmux;\x1b\x1b]52;c;eA==\x07\xc2\x9c", Some(Action::Drop)),
            (b"\xc2\x9d1337;File=name=eA==:QQ==\x1b\\", Some(Action::Drop)),
            (b"\xc2\x9d11;?\xc2\x9c", Some(Action::OneClient)),
            (b"\xc2\xa9 \xc2\x85", None),
            (b"\x1b[31m", None),
            (b"\x1b[8;24;80t", None),
            (b"\x1b]0;hi\x07", None),
        ];
        for (input, want) in cases {
            let (n, spans, _) = scan_all(input);
            assert_eq!(n, input.len());
            let got = spans.first().map(|s| s.action);
            assert_eq!(got, *want, "{:?}", String::from_utf8_lossy(input));
            if let Some(s) = spans.first() {
                assert_eq!(s.range, 0..input.len());
            }
        }
    }

    #[test]
    fn marks_what_watchers_must_not_get() {
        // Each sequence, and what an interactive client gets of it with
        // each single setting allowed (nothing, clipboard, files, tmux).
        let u = Action::Unsafe;
        let d = Action::Drop;
        let cases: &[(&[u8], [Action; 4])] = &[
            (b"\x1b]52;c;aGVsbG8=\x07", [d, u, d, d]),
            (b"\x1b]5522;type=write\x1b\\", [d, u, d, d]),
            (b"\x1b]1337;File=name=eA==:AAAA\x07", [d, d, u, d]),
            (b"\x1b]1337;MultipartFile=name=eA==\x07", [d, d, u, d]),
            (b"\x1b]1337;RequestUpload=format=tgz\x07", [d, d, u, d]),
            (b"\x1b]5113;ac=send\x1b\\", [d, d, u, d]),
            (b"\x1bPtmux;\x1b\x1b]52;c;eA==\x07\x1b\\", [d, d, d, u]),
            (b"\x1b]1337;SetUserVar=a=Yg==\x07", [u, u, u, u]),
            (b"\x1b]777;notify;hi;there\x1b\\", [u, u, u, u]),
            (b"\x1b_Gf=100;AAAA\x1b\\", [u, u, u, u]),
        ];
        let settings = [
            Passthrough::default(),
            Passthrough { clipboard: true, ..Passthrough::default() },
            Passthrough { file_transfer: true, ..Passthrough::default() },
            Passthrough { tmux: true, ..Passthrough::default() },
        ];
        for (input, wanted) in cases {
            for (setting, want) in settings.iter().zip(wanted) {
                let mut s = VtScanner::with_passthrough(*setting);
                let mut spans = Vec::new();
                assert_eq!(s.scan(input, &mut spans), input.len());
                assert_eq!(
                    spans,
                    [Span { range: 0..input.len(), action: *want }],
                    "{:?} with {setting:?}",
                    String::from_utf8_lossy(input)
                );
            }
        }
        let (_, spans, _) = scan_all(b"\x1b]0;title\x07\x1b]8;;http://x\x07");
        assert!(spans.is_empty());
    }

    #[test]
    fn long_unsafe_strings_are_marked_across_reads() {
        // A big clipboard write passes to interactive clients in pieces
        // when allowed, and none of it when not (the default).
        for (setting, action) in
            [(Passthrough::ALL, Action::Unsafe), (Passthrough::default(), Action::Drop)]
        {
            let mut s = VtScanner::with_passthrough(setting);
            let mut spans = Vec::new();
            let mut first = b"ok\x1b]52;c;".to_vec();
            first.extend(std::iter::repeat_n(b'A', HOLDBACK_MAX + 10));
            assert_eq!(s.scan(&first, &mut spans), first.len());
            assert_eq!(spans, [Span { range: 2..first.len(), action }]);
            spans.clear();
            assert_eq!(s.scan(b"AAAA", &mut spans), 4);
            assert_eq!(spans, [Span { range: 0..4, action }]);
            spans.clear();
            assert_eq!(s.scan(b"AA\x07after", &mut spans), 8);
            assert_eq!(spans, [Span { range: 0..3, action }]);
        }
        // A long iTerm2 file transfer is judged from its first bytes.
        let mut s = VtScanner::new();
        let mut spans = Vec::new();
        let mut file = b"\x1b]1337;File=inline=0:".to_vec();
        file.extend(std::iter::repeat_n(b'A', HOLDBACK_MAX + 10));
        assert_eq!(s.scan(&file, &mut spans), file.len());
        assert_eq!(spans, [Span { range: 0..file.len(), action: Action::Drop }]);
    }

    #[test]
    fn spans_point_into_the_buffer() {
        let (_, spans, _) = scan_all(b"ab\x1b[6ncd\x1b[>0cef");
        let ranges: Vec<_> = spans.iter().map(|s| s.range.clone()).collect();
        assert_eq!(ranges, [2..6, 8..13]);
    }

    #[test]
    fn tracks_modes() {
        let (_, _, s) = scan_all(
            b"\x1b[?2004h\x1b[?1000;1006h\x1b[?1049h\x1b=\x1b[5 q\x1b]2;build\x07\x1b[>1u\x1b[?1000l",
        );
        let m = &s.modes;
        assert!(m.private_mode(2004) && m.private_mode(1006) && !m.private_mode(1000));
        assert!(m.alt_screen() && m.private_mode(1049));
        assert_eq!(m.restore_sequence(), "\x1b[?1006h\x1b[?2004h\x1b=\x1b[5 q\x1b]2;build\x07");
        assert_eq!(m.restore_keyboard(), "\x1b[=1;1u");
        assert_eq!(
            m.reset_sequence(),
            "\x1b[?1049l\x1b[?1006l\x1b[?2004l\x1b>\x1b[0 q\x1b[=0;1u\x1b7\x1b[r\x1b8\x1b[?25h\x1b[0m"
        );
        let (_, _, s) = scan_all(b"\x1b[?2004h\x1bc");
        assert_eq!(s.modes, Modes::default());
    }

    #[test]
    fn mode_parameters_are_read_as_the_model_reads_them() {
        // avt takes the part before a `:`, wraps at 16 bits and ignores a
        // sequence with a stray byte; the modes followed must agree.
        let (_, _, s) = scan_all(b"\x1b[4:3h");
        assert!(s.modes.insert_mode());
        let (_, _, s) = scan_all(b"\x1b[65540h");
        assert!(s.modes.insert_mode(), "65540 wraps to 4");
        let (_, _, s) = scan_all(b"\x1b[3:4h");
        assert!(!s.modes.insert_mode());
        let (_, _, s) = scan_all(b"\x1b[?2004:1;1006h");
        assert!(s.modes.private_mode(2004) && s.modes.private_mode(1006));
        // Found by fuzzing: avt ignores a CSI that starts with `:`.
        let (_, _, s) = scan_all(b"\x1b[:;4h");
        assert!(!s.modes.insert_mode());
        assert_eq!(model_params(b"1;2<4"), Vec::<u16>::new());
        let many = "0;".repeat(40) + "4";
        assert_eq!(model_params(many.as_bytes()).len(), 32);
        assert_eq!(model_params(many.as_bytes())[31], 4);
    }

    #[test]
    fn kitty_flags_push_pop_set() {
        let (_, _, s) = scan_all(b"\x1b[>1u\x1b[>3u\x1b[<u\x1b[=4;2u");
        assert_eq!(s.modes.kitty, [5]);
        let (_, _, s) = scan_all(b"\x1b[>1u\x1b[<5u");
        assert!(s.modes.kitty.is_empty());
    }

    #[test]
    fn titles_lose_control_characters() {
        let (_, _, s) = scan_all(b"\x1b]0;a\x01b\x07");
        assert_eq!(s.modes.title.as_deref(), Some("ab"));
    }

    #[test]
    fn huge_parameters_do_not_panic() {
        let mut input = b"\x1b[".to_vec();
        input.extend(std::iter::repeat_n(b'9', 10_000));
        input.extend_from_slice(b"n\x1b[?99999999h");
        let (n, spans, _) = scan_all(&input);
        assert_eq!(n, input.len());
        assert!(spans.is_empty());
    }
}

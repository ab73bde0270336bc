//! The terminal layer: everything that understands the bytes a job prints
//! and a user types, with no knowledge of who uses it, and (but for
//! [`tty`]) no I/O. The
//! keeper, the attached client, the SSH front end and the recording tools
//! all build on it; none of them reaches into another for these.
//!
//! * [`scan`]: the escape-sequence scanner: boundaries of sequences and
//!   characters, the queries a keeper answers, what read-only streams must
//!   not carry, and the input modes a job turns on ([`scan::ModeTracker`]).
//! * [`feed`]: the job's text as the screen model reads it right (zero-width
//!   characters joined to their cell, attributes avt lacks followed).
//! * [`cells`]: what a cell holds beyond avt's char and pen (graphemes,
//!   underline styles and colour, concealed), by placeholder.
//! * [`screen`]: the screen model (both screens, scrollback, the redraw).
//! * [`redraw`]: the redraw written for every common terminal (no REP, SGR
//!   in the `;` form, portable tab stops), and the one SGR writer.
//! * [`view`]: a watcher's rendered, cropped view of a session.
//! * [`detach`]: the detach key (pressed twice, sent once).
//! * [`text`]: text from outside tether, made safe to print (every control
//!   character shown, never executed).
//! * [`terminfo`]: the optional capabilities a client's terminal has.
//! * [`tty`]: the local terminal: raw mode that is always undone, its size.

pub mod cells;
pub mod detach;
pub mod feed;
pub mod redraw;
pub mod scan;
pub mod screen;
pub mod terminfo;
pub mod text;
pub mod tty;
pub mod view;

//! tether: a persistent remote session multiplexer.
//!
//! # Layout
//!
//! Follow a keystroke from the user's terminal to the job and back:
//!
//! * [`cli`] parses the command line; [`commands`] runs each subcommand.
//! * [`client`] is the attached terminal: raw mode, the detach key, SIGWINCH,
//!   and [`client::KeeperClient`], the framed connection to a keeper.
//! * [`keeper`] is one process per session. It owns the PTY and the job
//!   ([`keeper::pty`]), reads the PTY on its own thread into the screen model
//!   ([`keeper::screen`], which uses [`vtscan`] to answer terminal queries and
//!   track input modes), and fans output out to attachments through bounded
//!   outboxes ([`keeper::fanout`]).
//! * [`session`] is the on-disk registry: session records, liveness locks,
//!   `lost` detection.
//! * [`daemon`] and [`sshd`] are the SSH front end: `ssh host COMMAND`,
//!   the session picker, the `tether` subsystem; [`remote`] is its client
//!   (`tether --host`). [`backend`] lets commands run against local or
//!   remote sessions alike.
//! * [`recorder`] writes recordings, signed with [`signing`]'s key;
//!   [`recording`] replays, searches, exports and verifies them.
//! * [`paths`] and [`config`] say where everything lives and how it behaves.
//! * The wire format is in the `tether-proto` crate.

pub mod audit;
pub mod backend;
pub mod check;
pub mod cli;
pub mod client;
pub mod clock;
pub mod commands;
pub mod config;
pub mod connection;
pub mod daemon;
pub mod entry;
pub mod error;
pub mod forensic;
pub mod fsutil;
pub mod keeper;
pub mod keys;
pub mod paths;
pub mod recorder;
pub mod recording;
pub mod remote;
pub mod session;
pub mod signing;
pub mod sshd;
pub mod term;

pub use error::Failure;

/// "tether 0.1.0", as sent in hello messages.
pub const SOFTWARE: &str = concat!("tether ", env!("CARGO_PKG_VERSION"));

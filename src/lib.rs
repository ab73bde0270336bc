//! tether: a persistent remote session multiplexer.
//!
//! # Layout
//!
//! Follow a keystroke from the user's terminal to the job and back:
//!
//! * `main.rs` parses the command line; [`entry`] dispatches it (the keeper,
//!   the daemon, local or `--host` sessions); [`commands`] runs each
//!   subcommand against a [`backend::Backend`], the command layer that the
//!   daemon reuses for `ssh host COMMAND`.
//! * [`client`] is the one way to a keeper: [`client::access`] decides what
//!   a caller may do (roles, `tether-sessions`), [`client::KeeperClient`]
//!   connects and says hello, [`client::attachment`] is one attachment as a
//!   state machine with no I/O, which [`client::attach`] (the local
//!   terminal) and `sshd::bridge` (an SSH channel) both drive.
//! * [`term`] understands terminal bytes: the escape-sequence scanner, the
//!   screen model, the watcher's view, the detach key, the local tty. The
//!   keeper, the clients, the daemon and the recording tools all use it.
//! * [`keeper`] is one process per session. It owns the PTY and the job
//!   ([`keeper::pty`]), reads the PTY on its own thread into the screen model
//!   and fans output out to attachments through bounded outboxes
//!   ([`keeper::fanout`]). It imports nothing of the daemon or the clients.
//! * [`session`] is the on-disk registry: session records, liveness locks,
//!   `lost` detection.
//! * [`daemon`] and [`sshd`] are the SSH front end: `ssh host COMMAND`,
//!   the session picker, the `tether` subsystem; [`remote`] is its client
//!   (`tether --host`). Both sides share the protocol's constants through
//!   `tether-proto`.
//! * [`recorder`] writes recordings, signed with [`signing`]'s key;
//!   [`recording`] replays, searches, exports and verifies them.
//! * [`paths`] and [`config`] say where everything lives and how it behaves.
//! * Every byte format that outlives a process (the wire protocol, the
//!   recording and its sidecars) is in the `tether-proto` crate.

pub mod archive;
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
pub mod shell;
pub mod signing;
pub mod sshd;
pub mod term;

pub use error::Failure;

/// "tether 0.1.0", as sent in hello messages.
pub const SOFTWARE: &str = concat!("tether ", env!("CARGO_PKG_VERSION"));

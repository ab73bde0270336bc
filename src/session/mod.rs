//! The session registry on disk: records, the keeper's liveness lock, and
//! the `lost` state.
//!
//! A keeper takes `NAME.lock` (an exclusive `flock`) before anything else
//! and holds it until it exits, so "the record says running but nobody
//! holds the lock" means the keeper died without recording an end: the
//! session is `lost`. Readers never need the keeper to answer, so `ls` is
//! fast and cannot hang on a stopped keeper.
//!
//! [`origin`] tells whether a process runs inside a session (for the audit
//! log).

pub mod lock;
pub mod origin;
pub mod registry;

pub use lock::SessionLock;
pub use registry::Registry;

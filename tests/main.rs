//! Black-box tests: the real binary, real PTYs, a fresh HOME per test.
//! `support` holds the harness; each module covers one area.

// Panicking on unexpected errors is how a test fails.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

mod access;
mod archive;
mod attach;
mod clients;
mod commands;
mod faults;
mod fidelity;
mod forensic;
mod hostile;
mod lifecycle;
mod load;
mod ops;
mod protocol;
mod record;
mod screen;
mod shadow;
mod ssh;

//! Dependency counts from `cargo tree`, run against this crate's manifest.

use std::collections::BTreeSet;
use std::process::Command;

/// The crate's version and how many distinct packages its normal
/// dependency tree has (itself included), as `cargo tree` says.
pub struct Tree {
    pub version: String,
    pub packages: usize,
}

/// `cargo tree -e normal -p CRATE --prefix none`, deduplicated ("(*)"
/// repeats stripped). None when cargo is not there or fails.
pub fn tree(krate: &str) -> Option<Tree> {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned()))
        .args(["tree", "--offline", "-e", "normal", "--prefix", "none", "-p", krate])
        .args(["--manifest-path", manifest])
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let packages: BTreeSet<String> = text
        .lines()
        .map(|l| l.trim_end_matches(" (*)").to_owned())
        .filter(|l| !l.is_empty())
        .collect();
    let version = text.lines().next()?.split_whitespace().nth(1)?.to_owned();
    Some(Tree { version, packages: packages.len() })
}

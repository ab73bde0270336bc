//! The markdown the bench prints.

use crate::bench::{Memory, mb_per_s};
use crate::deps::Tree;
use crate::fidelity::{Status, Verdict};
use crate::workload::{COLS, SCROLLBACK};
use std::time::Duration;

/// Everything measured for one emulator.
pub struct EmuResult {
    pub name: &'static str,
    pub tree: Option<Tree>,
    pub times: Times,
    pub memory: Option<Memory>,
    pub fidelity: Vec<(&'static str, Verdict)>,
    pub api: Vec<(&'static str, String)>,
}

/// Best feed times per stream.
pub struct Times {
    pub plain: Duration,
    pub colour: Duration,
    pub redraw: Duration,
}

/// Stream sizes in bytes.
pub struct Sizes {
    pub plain: usize,
    pub colour: usize,
    pub redraw: usize,
}

fn mb(bytes: usize) -> f64 {
    bytes as f64 / 1e6
}

fn speeds(t: &Times, s: &Sizes) -> String {
    format!(
        "{:.0} | {:.0} | {:.0} | {:.0}",
        mb_per_s(s.plain + s.colour, t.plain + t.colour),
        mb_per_s(s.plain, t.plain),
        mb_per_s(s.colour, t.colour),
        mb_per_s(s.redraw, t.redraw),
    )
}

fn memory(m: &Option<Memory>) -> String {
    let Some(m) = m else {
        return "- | -".to_owned();
    };
    let held = m.held.map_or("n/a (no public API)".to_owned(), |h| h.to_string());
    format!(
        "{:.2} ({:.1} B/cell) | {held}",
        mb(m.bytes),
        m.bytes as f64 / (SCROLLBACK * COLS) as f64
    )
}

fn counts(fidelity: &[(&str, Verdict)]) -> String {
    let n = |s| fidelity.iter().filter(|(_, v)| v.status == s).count();
    format!("{} / {} / {}", n(Status::Pass), n(Status::Fail), n(Status::NoApi))
}

/// The main table: one row per emulator, then the baselines.
pub fn summary(results: &[EmuResult], baselines: &[(&str, Times)], sizes: &Sizes) {
    println!(
        "| emulator | version | flood MB/s | plain MB/s | colour MB/s | redraw MB/s \
         | scrollback MB per {SCROLLBACK} lines x {COLS} cols | lines held \
         | deps (cargo tree) | fidelity pass / fail / n/a |"
    );
    println!("|---|---|---|---|---|---|---|---|---|---|");
    for r in results {
        let (version, deps) = r.tree.as_ref().map_or(("?".to_owned(), "n/a".to_owned()), |t| {
            (t.version.clone(), t.packages.to_string())
        });
        println!(
            "| {} | {version} | {} | {} | {deps} | {} |",
            r.name,
            speeds(&r.times, sizes),
            memory(&r.memory),
            counts(&r.fidelity)
        );
    }
    for (name, times) in baselines {
        println!("| {name} | - | {} | - | - | - | - |", speeds(times, sizes));
    }
}

/// Case by emulator, statuses only.
pub fn fidelity_matrix(results: &[EmuResult]) {
    print_header("case", results);
    let Some(first) = results.first() else { return };
    for (i, (case, _)) in first.fidelity.iter().enumerate() {
        let cells: Vec<String> =
            results.iter().map(|r| r.fidelity[i].1.status.to_string()).collect();
        println!("| {case} | {} |", cells.join(" | "));
    }
}

/// What each emulator did, case by case.
pub fn fidelity_details(results: &[EmuResult]) {
    for r in results {
        println!("\n### {}\n", r.name);
        for (case, v) in &r.fidelity {
            println!("- {case}: **{}** — {}", v.status, escape(&v.detail));
        }
    }
}

/// Item by emulator, with what was read back.
pub fn api_matrix(results: &[EmuResult]) {
    print_header("public API", results);
    let Some(first) = results.first() else { return };
    for (i, (item, _)) in first.api.iter().enumerate() {
        let cells: Vec<String> = results.iter().map(|r| escape(&r.api[i].1)).collect();
        println!("| {item} | {} |", cells.join(" | "));
    }
}

fn print_header(first: &str, results: &[EmuResult]) {
    let names: Vec<&str> = results.iter().map(|r| r.name).collect();
    println!("| {first} | {} |", names.join(" | "));
    println!("|---|{}", "---|".repeat(results.len()));
}

/// Keeps table cells intact: pipes escaped, control characters shown.
fn escape(text: &str) -> String {
    text.replace('|', "\\|")
}

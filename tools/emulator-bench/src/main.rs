//! Measures terminal-emulator crates side by side for tether's screen
//! model: feed throughput, scrollback memory, fidelity on awkward
//! sequences, what the public API exposes, and dependency counts.
//!
//! `cargo run --release -- [--quick]` prints markdown tables.

mod alloc;
mod api;
mod bench;
mod deps;
mod emu;
mod fidelity;
mod report;
mod utf8;
mod workload;

use emu::Emulator;
use emu::alacritty::Alacritty;
use emu::avt::Avt;
use emu::vt100::Vt100;
use report::{EmuResult, Sizes, Times};
use workload::{ROWS, SCROLLBACK, Stream};

#[global_allocator]
static ALLOC: alloc::Counting = alloc::Counting;

/// Full run: 50 MB plain + 50 MB coloured flood, 50 MB of redraws.
const FULL_MB: usize = 50;
/// `--quick`: a tenth of that.
const QUICK_MB: usize = 5;

struct Streams {
    plain: Stream,
    colour: Stream,
    redraw: Stream,
    scrollback: Stream,
}

fn main() {
    let quick = std::env::args().skip(1).any(|a| a == "--quick");
    let mb = if quick { QUICK_MB } else { FULL_MB };
    let streams = Streams {
        plain: workload::plain_flood(mb * 1_000_000),
        colour: workload::colour_flood(mb * 1_000_000),
        redraw: workload::redraw(mb * 1_000_000),
        scrollback: workload::scrollback_lines(SCROLLBACK + ROWS),
    };
    let sizes = Sizes {
        plain: streams.plain.bytes.len(),
        colour: streams.colour.bytes.len(),
        redraw: streams.redraw.bytes.len(),
    };
    let results = vec![
        measure::<Avt>("avt", &streams),
        measure::<Vt100>("vt100", &streams),
        measure::<Alacritty>("alacritty_terminal", &streams),
    ];
    let baselines = baselines(&streams);
    print_report(&results, &baselines, &sizes, quick);
}

fn measure<E: Emulator>(name: &'static str, s: &Streams) -> EmuResult {
    eprintln!("measuring {name}…");
    // Memory first, while nothing else of this emulator is live.
    let memory = Some(bench::memory::<E>(&s.scrollback));
    EmuResult {
        name,
        tree: deps::tree(E::CRATE),
        times: Times {
            plain: bench::feed_time::<E>(&s.plain),
            colour: bench::feed_time::<E>(&s.colour),
            redraw: bench::feed_time::<E>(&s.redraw),
        },
        memory,
        fidelity: fidelity::run::<E>(),
        api: api::run::<E>(),
    }
}

fn baselines(s: &Streams) -> Vec<(&'static str, Times)> {
    vec![
        (
            "baseline: memchr `\\n`",
            Times {
                plain: bench::memchr_time(&s.plain),
                colour: bench::memchr_time(&s.colour),
                redraw: bench::memchr_time(&s.redraw),
            },
        ),
        (
            "baseline: UTF-8 decode",
            Times {
                plain: bench::utf8_time(&s.plain),
                colour: bench::utf8_time(&s.colour),
                redraw: bench::utf8_time(&s.redraw),
            },
        ),
    ]
}

fn print_report(results: &[EmuResult], baselines: &[(&str, Times)], sizes: &Sizes, quick: bool) {
    println!(
        "## Terminal emulators ({} mode: flood {:.0} MB plain + {:.0} MB coloured, redraw {:.0} MB; \
         {}x{} screen, {SCROLLBACK} lines scrollback; reads of 4..64 KiB; best of {})\n",
        if quick { "quick" } else { "full" },
        sizes.plain as f64 / 1e6,
        sizes.colour as f64 / 1e6,
        sizes.redraw as f64 / 1e6,
        workload::COLS,
        ROWS,
        bench::RUNS,
    );
    report::summary(results, baselines, sizes);
    println!("\n## Fidelity\n");
    report::fidelity_matrix(results);
    println!("\n## Fidelity details");
    report::fidelity_details(results);
    println!("\n## Public API for writing our own redraw\n");
    report::api_matrix(results);
}

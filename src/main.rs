//! The `tether` binary: parse, run, report. Everything else is in the library.

use clap::Parser;
use tether::cli::{Cli, Command};

fn main() {
    // A keeper lives as long as its job: dispatch before the command-line
    // parser so that its code never becomes part of the keeper's memory.
    if std::env::args_os().nth(1).is_some_and(|a| a == tether::keeper::launch::KEEPER_SUBCOMMAND) {
        std::process::exit(tether::keeper::launch::keeper_main());
    }
    let cli = Cli::parse();
    if !matches!(cli.command, Command::Keeper | Command::Daemon { .. }) {
        init_cli_log();
    }
    // `wait` reserves its exit codes for the job; its own failures are 125,
    // except a refusal, which is 5 on every path and for every command.
    let own_failure = matches!(cli.command, Command::Wait { .. }).then_some(125);
    let code = match tether::entry::run(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => 0,
        Err(e) => {
            eprintln!("tether: {}", tether::error::shown(&e));
            let code = tether::error::exit_code(&e);
            let refused = code == tether_proto::ErrorCode::Refused.exit_code();
            own_failure.filter(|_| !refused).unwrap_or(code)
        }
    };
    std::process::exit(code);
}

/// Warnings (a skipped bad record, say) go to stderr; `TETHER_LOG` raises
/// the level.
fn init_cli_log() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TETHER_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter)
        .without_time()
        .with_target(false)
        .try_init();
}

/// `tether ls | head` closing the pipe early is not an error.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

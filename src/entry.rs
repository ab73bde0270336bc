//! The program's entry dispatch: what the `tether` binary does with its
//! parsed command line before the command layer ([`crate::commands`])
//! takes over. Kept apart from that layer, which the daemon reuses for
//! `ssh host COMMAND`, so that nothing the daemon imports leads back to the
//! daemon itself.

use crate::backend::{Backend, Local};
use crate::cli::{Cli, Command};
use crate::commands::{Ctx, print_checks};
use crate::config::Config;
use crate::keeper::launch::keeper_main;
use crate::paths::Paths;
use anyhow::Result;
use std::path::PathBuf;

/// Runs the parsed command line of the local `tether` process.
///
/// # Errors
///
/// Whatever the command reports; see [`crate::error::exit_code`].
pub fn run(mut cli: Cli) -> Result<i32> {
    match &cli.command {
        Command::Completions { shell } => {
            use clap::CommandFactory;
            clap_complete::generate(*shell, &mut Cli::command(), "tether", &mut std::io::stdout());
            return Ok(0);
        }
        Command::Man => {
            use clap::CommandFactory;
            clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout())?;
            return Ok(0);
        }
        _ => {}
    }
    let paths = Paths::from_env()?;
    let config = Config::load(&paths.config_file())?;
    match cli.command {
        Command::Keeper => return Ok(keeper_main()),
        Command::Daemon { listen, foreground } => {
            return crate::daemon::run(paths, config, listen, foreground);
        }
        Command::Ls { json, archive: true } => {
            let Some(archive) = &config.archive else {
                return Err(crate::Failure::invalid(
                    "ls --archive: no [archive] in config.toml (docs/ARCHIVE.md)",
                )
                .into());
            };
            // --host names a host in the archive here, not a daemon.
            let all = crate::archive::fleet::list(archive, cli.host.as_deref())?;
            crate::archive::run::print_archived(&all, json)?;
            return Ok(0);
        }
        Command::Archive { once, status, json } => {
            if cli.host.is_some() {
                return Err(crate::Failure::invalid(
                    "archive runs on the host whose recordings it ships (without --host)",
                )
                .into());
            }
            return crate::archive::run::main(&paths, &config, once, status, json);
        }
        Command::ShellInit { shell } => {
            print!("{}", crate::shell::snippet(crate::shell::Shell::named(&shell)?));
            return Ok(0);
        }
        _ => {}
    }
    if let Command::Grep { archive: true, archive_host, .. }
    | Command::Commands { archive: true, archive_host, .. } = &mut cli.command
    {
        // --host names a host in the archive here, not a daemon.
        *archive_host = cli.host.take();
    }
    let backend: Box<dyn Backend> = match &cli.host {
        Some(host) => {
            let opts = crate::remote::RemoteOptions {
                identity: cli.identity.clone(),
                trust_new_host: cli.trust_new_host,
            };
            match crate::remote::Remote::connect(host, &opts) {
                Ok(remote) => Box::new(remote),
                // The daemon being down is exactly what a check reports.
                Err(e) if matches!(cli.command, Command::Check { .. }) => {
                    let json = matches!(cli.command, Command::Check { json: true });
                    let failed = crate::check::Outcome {
                        name: "service".into(),
                        ok: false,
                        detail: crate::error::message(&e),
                        ms: 0,
                    };
                    print_checks(&mut std::io::stdout(), &[failed], json)?;
                    return Ok(1);
                }
                Err(e) => return Err(e),
            }
        }
        None => {
            let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
            Box::new(Local::new(paths, config.clone(), cwd))
        }
    };
    let mut ctx =
        Ctx { backend, config, out: Box::new(std::io::stdout()), err: Box::new(std::io::stderr()) };
    ctx.execute(cli.command)
}

//! The command line (PRODUCT.md's interface contract).
//!
//! The doc comments here are the help text clap prints, written for the
//! terminal: `[USER@]HOST[:PORT]` is usage notation, not a rustdoc link.
#![allow(rustdoc::broken_intra_doc_links)]

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use tether_proto::SessionName;

/// `--version`: the release and the protocol it speaks.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (protocol 1)");

/// tether: persistent sessions for long jobs. Start a job, detach, come
/// back from anywhere to exactly the screen you left.
#[derive(Debug, Parser)]
#[command(name = "tether", version = VERSION, propagate_version = true, max_term_width = 100)]
pub struct Cli {
    /// Do it on a remote daemon over SSH: [USER@]HOST[:PORT] (port 2222 by default).
    #[arg(long, global = true, env = "TETHER_HOST", value_name = "[USER@]HOST[:PORT]")]
    pub host: Option<String>,
    /// With --host: the private key to use (default: ssh-agent, then
    /// ~/.ssh/id_ed25519, id_ecdsa, id_rsa).
    #[arg(long, global = true, value_name = "FILE")]
    pub identity: Option<PathBuf>,
    /// With --host: trust and remember the host's key if it is not in
    /// ~/.ssh/known_hosts yet (trust on first use). A changed key is
    /// always refused.
    #[arg(long, global = true)]
    pub trust_new_host: bool,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Attach to a session, creating it first if it does not exist.
    ///
    /// Detach with Ctrl-\ (press it twice to send it to the job).
    Attach {
        /// The session's name: letters, digits, '.', '_', '-'.
        name: SessionName,
        /// The command for a new session (default: $SHELL, else /bin/sh).
        #[arg(last = true, value_name = "CMD")]
        command: Vec<String>,
    },
    /// Create a session; without -d, attach to it.
    New(NewArgs),
    /// Watch a session read-only: nothing you type reaches it.
    Watch {
        /// The session's name.
        name: SessionName,
    },
    /// List sessions.
    Ls {
        /// One JSON array of session objects (schema in docs/GUIDE.md).
        #[arg(long)]
        json: bool,
        /// List the recordings every host shipped to the archive
        /// (docs/ARCHIVE.md); with --host H, only host H's.
        #[arg(long)]
        archive: bool,
    },
    /// Show who is attached to a session.
    Who {
        /// The session's name.
        name: SessionName,
        /// A JSON array of attachments.
        #[arg(long)]
        json: bool,
    },
    /// End a session's job (SIGHUP, then SIGKILL after 3 s).
    Kill {
        /// The session's name.
        name: SessionName,
        /// Required to kill a protected session.
        #[arg(long)]
        force: bool,
    },
    /// Forget an ended or lost session.
    Rm {
        /// The session's name.
        name: SessionName,
    },
    /// Wait until a session's job ends; exit with its code (128+N for
    /// signal N; 125 for tether's own failures).
    Wait {
        /// The session's name.
        name: SessionName,
    },
    /// Print a session's text (history and screen).
    Tail {
        /// The session's name.
        name: SessionName,
        /// Only the last N lines.
        #[arg(short = 'n', long = "lines", value_name = "N")]
        lines: Option<u32>,
        /// Keep printing lines as they are completed, until the job ends.
        #[arg(short, long)]
        follow: bool,
    },
    /// Play a recording: a session's, or a file. With --at, print the
    /// screen of that moment and exit.
    Replay {
        /// A session name or a recording file.
        target: String,
        /// Playback speed.
        #[arg(long, default_value_t = 1.0, value_name = "X")]
        speed: f64,
        /// Play pauses longer than S seconds as S seconds.
        #[arg(long, value_name = "S")]
        idle_limit: Option<f64>,
        /// A moment: HH:MM[:SS] (today), RFC 3339, an offset like +5m30s,
        /// or cmd:N (when command N began; tether commands lists them).
        #[arg(long, value_name = "TIME")]
        at: Option<String>,
    },
    /// Search the text of recordings (all, or the given sessions or files).
    ///
    /// Prints session, time (RFC 3339 UTC), offset in seconds and the line,
    /// tab-separated; exits 1 if nothing matches.
    Grep {
        /// A regular expression.
        pattern: String,
        /// Session names or recording files (default: every recording).
        targets: Vec<String>,
        /// Only lines at or after TIME.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only lines at or before TIME.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Only the output of commands whose text matches REGEX (from the
        /// shell's marks, docs/COMMANDS.md).
        #[arg(long, value_name = "REGEX")]
        command: Option<String>,
        /// Search every host's recordings in the archive (docs/ARCHIVE.md),
        /// fetched one at a time, instead of this host's; with --host H,
        /// host H's only.
        #[arg(long, conflicts_with = "targets")]
        archive: bool,
        /// With --archive: the host given with --host (a host in the
        /// bucket, not a daemon).
        #[arg(skip)]
        archive_host: Option<String>,
    },
    /// Write a recording in another format.
    Export {
        /// A session name or a recording file.
        target: String,
        /// v3 (asciicast 3, checkpoints kept), v2 (asciicast 2), txt (the
        /// text a person reads) or raw (the exact bytes the job wrote).
        #[arg(long, value_enum)]
        format: crate::recording::export::Format,
        /// Write to FILE (created 0600) instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
    /// Check a recording's hash chain and signatures, or an evidence
    /// bundle's files and signature.
    ///
    /// Exits 0 only when intact.
    Verify {
        /// A recording file, an evidence bundle directory, or a session name.
        path: String,
        /// The signing key to trust (an OpenSSH public key file; default:
        /// this host's signing key).
        #[arg(long, value_name = "PUBFILE")]
        key: Option<PathBuf>,
        /// The report as JSON.
        #[arg(long)]
        json: bool,
    },
    /// Capture an evidence bundle of a session (or, with --system, of the
    /// host) without stopping anything (unless --freeze).
    Snapshot {
        /// The session (omit with --system).
        #[arg(required_unless_present = "system", conflicts_with = "system")]
        name: Option<SessionName>,
        /// The whole host instead of one session.
        #[arg(long)]
        system: bool,
        /// Create the bundle in DIR (default: the evidence directory).
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// Freeze the session's processes during the capture.
        #[arg(long, conflicts_with = "system")]
        freeze: bool,
        /// Also dump the processes' readable memory (up to snapshot_memory_limit).
        #[arg(long, conflicts_with = "system")]
        memory: bool,
    },
    /// Stop every process of a session (SIGSTOP), without killing anything.
    Freeze {
        /// The session.
        name: SessionName,
    },
    /// Continue a frozen session's processes (SIGCONT).
    Thaw {
        /// The session.
        name: SessionName,
    },
    /// Deep health check: proves the service works end to end.
    ///
    /// Starts a throwaway session that prints a random nonce, sees it through
    /// the attach path, verifies the probe's recording, checks that every
    /// keeper answers, that no recording is degraded and that the data
    /// directory has room. Exits 0 only if all pass; 1 names what failed.
    Check {
        /// One JSON object with every check.
        #[arg(long)]
        json: bool,
    },
    /// Print shell completions.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff).
    Man,
    /// Run the SSH daemon, the remote front end to this host's sessions.
    ///
    /// Without --foreground it detaches and writes a pid file. Killing or
    /// restarting it never touches a session.
    Daemon {
        /// Address to listen on (default from config.toml: 127.0.0.1:2222).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
        /// Stay in the foreground (for systemd and tests).
        #[arg(long)]
        foreground: bool,
    },
    /// Ship recordings and a witness of every checkpoint to S3-compatible
    /// storage ([archive] in config.toml; docs/ARCHIVE.md).
    ///
    /// Without options it runs until stopped, shipping each checkpoint
    /// within seconds of its writing (systemd: contrib/tether-archive.service).
    Archive {
        /// Ship everything pending, then exit: 0 when all is shipped, 1
        /// naming what is not.
        #[arg(long, conflicts_with = "status")]
        once: bool,
        /// Print what is shipped and pending, the lag and the last error.
        #[arg(long)]
        status: bool,
        /// With --status: one JSON object.
        #[arg(long, requires = "status")]
        json: bool,
    },
    /// Print the shell integration for your own rc file (docs/COMMANDS.md):
    /// `eval "$(tether shell-init bash)"`. A session whose command is the
    /// default shell has it already (config.toml `shell_integration`).
    ShellInit {
        /// The shell: bash, zsh or fish.
        shell: String,
    },
    /// List the commands run in sessions (from the shell's marks): session,
    /// start, duration, exit status, who, working directory, command,
    /// tab-separated; a running command shows as running.
    Commands {
        /// Session names or recording files (default: every recording).
        targets: Vec<String>,
        /// Only commands whose text matches REGEX.
        #[arg(long, value_name = "REGEX")]
        grep: Option<String>,
        /// Only commands begun at or after TIME.
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// Only commands begun at or before TIME.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
        /// Only commands that ended with a non-zero status.
        #[arg(long)]
        failed: bool,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
        /// Every host's recordings in the archive (docs/ARCHIVE.md)
        /// instead of this host's; with --host H, host H's only.
        #[arg(long, conflicts_with = "targets")]
        archive: bool,
        /// With --archive: the host given with --host.
        #[arg(skip)]
        archive_host: Option<String>,
    },
    /// Runs a session's keeper (internal).
    #[command(name = "__keeper", hide = true)]
    Keeper,
}

/// `tether new`.
#[derive(Debug, Args)]
pub struct NewArgs {
    /// The session's name: letters, digits, '.', '_', '-'.
    pub name: SessionName,
    /// Start detached: return once the job runs.
    #[arg(short = 'd', long)]
    pub detach: bool,
    /// Refuse `kill` without --force.
    #[arg(long)]
    pub protect: bool,
    /// Do not record this session (refused if config.toml says
    /// `recording = "required"`).
    #[arg(long)]
    pub no_record: bool,
    /// Record keystrokes too (masked while the terminal does not echo).
    #[arg(long)]
    pub record_input: bool,
    /// Each watcher must be accepted by an interactive client (y/n).
    #[arg(long)]
    pub consent: bool,
    /// The job's working directory (default: the current one).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set an environment variable for the job (repeatable).
    #[arg(long = "env", value_name = "K=V", value_parser = parse_env)]
    pub env: Vec<(String, String)>,
    /// The command (default: $SHELL, else /bin/sh).
    #[arg(last = true, value_name = "CMD")]
    pub command: Vec<String>,
}

fn parse_env(s: &str) -> Result<(String, String), String> {
    let (k, v) = s.split_once('=').ok_or_else(|| format!("{s:?} is not K=V"))?;
    if k.is_empty() || k.contains('\0') || v.contains('\0') {
        return Err(format!("{s:?} is not a valid environment assignment"));
    }
    Ok((k.to_owned(), v.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn env_assignments() {
        assert_eq!(parse_env("A=b=c"), Ok(("A".into(), "b=c".into())));
        assert!(parse_env("=x").is_err());
        assert!(parse_env("novalue").is_err());
    }

    #[test]
    fn bad_names_are_usage_errors() {
        let err = Cli::try_parse_from(["tether", "new", "../x"]).unwrap_err();
        assert_eq!(err.exit_code(), 2);
        assert!(err.to_string().contains("'/'"), "{err}");
    }
}

#[cfg(test)]
mod version_tests {
    #[test]
    fn version_names_the_protocol() {
        assert!(
            super::VERSION.ends_with(&format!("(protocol {})", tether_proto::PROTOCOL_VERSION))
        );
    }
}

//! The `tether archive` command: one pass (`--once`), the state
//! (`--status`), or the uploader that runs until stopped.

use super::{
    Journal, LastPass, Layout, Scanner, Store, host_id, pass, save_last_pass, state_dir, status,
};
use crate::Failure;
use crate::config::{ArchiveConfig, Config};
use crate::paths::Paths;
use anyhow::{Context, Result};
use std::time::Duration;
use tether_proto::ErrorCode;

/// How long one request may keep retrying before the pass gives up on it.
const PATIENCE: Duration = Duration::from_secs(20);
/// The uploader looks for new checkpoints this often (the witness lags a
/// checkpoint by at most about this much while the bucket answers).
const INTERVAL: Duration = Duration::from_secs(1);
/// Time a pass of the running uploader spends on segments, at most, before
/// it looks for new checkpoints again.
const SEGMENT_BUDGET: Duration = Duration::from_secs(5);
/// Passes of `--once`, at most (each ships what the one before made
/// ready: segments whose signed lines it shipped).
const PASSES_MAX: usize = 10;
/// The longest wait between passes while the bucket fails.
const BACKOFF_MAX: Duration = Duration::from_secs(60);

/// Runs `tether archive` with its options.
///
/// # Errors
///
/// No `[archive]` in config.toml (exit 2); with `--once`, a bucket that
/// cannot be used (exit 6), with one line naming why.
pub fn main(paths: &Paths, config: &Config, once: bool, show: bool, json: bool) -> Result<i32> {
    let Some(archive) = &config.archive else {
        return Err(Failure::invalid(format!(
            "archive is off: set [archive] url = \"s3://BUCKET/PREFIX\" in {} (docs/ARCHIVE.md)",
            paths.config_file().display()
        ))
        .into());
    };
    let mut journal = Journal::open(&state_dir(paths))?;
    if show {
        let st = status(paths, archive, &journal)?;
        if json {
            println!("{}", serde_json::to_string(&st)?);
        } else {
            print_status(&st);
        }
        return Ok(0);
    }
    // One uploader at a time: the journal is theirs.
    let _lock = lock_uploader(paths)?;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    runtime.block_on(async {
        if once {
            run_once(paths, archive, &mut journal).await
        } else {
            run_forever(paths, archive, &mut journal).await
        }
    })
}

async fn run_once(paths: &Paths, archive: &ArchiveConfig, journal: &mut Journal) -> Result<i32> {
    let store = Store::open(archive, PATIENCE)?;
    let layout = layout(archive)?;
    let mut scanner = Scanner::default();
    let mut shipped = 0;
    // A segment goes once its signed lines are shipped: passes until one
    // ships nothing more.
    for _ in 0..PASSES_MAX {
        match pass(&store, &mut scanner, paths, &layout, journal, None, archive.keep_local_days)
            .await
        {
            Ok(report) => {
                shipped += report.shipped;
                let last = LastPass { at: now(), shipped, errors: report.failed.clone() };
                note_last_pass(paths, &last);
                if report.shipped > 0 && report.failed.is_empty() {
                    continue;
                }
                println!("shipped {shipped} objects to {}", archive.url);
                for base in &report.pruned {
                    println!(
                        "removed the local copy of {base} (archived, kept {} days)",
                        archive.keep_local_days
                    );
                }
                for failed in &report.failed {
                    eprintln!("tether: not shipped: {failed}");
                }
                return Ok(if report.failed.is_empty() { 0 } else { 1 });
            }
            Err(e) => {
                let message = format!("{e:#}");
                note_last_pass(
                    paths,
                    &LastPass { at: now(), shipped, errors: vec![message.clone()] },
                );
                return Err(Failure::new(ErrorCode::Unavailable, message).into());
            }
        }
    }
    println!("shipped {shipped} objects to {}", archive.url);
    eprintln!("tether: more is still being written: run again");
    Ok(1)
}

async fn run_forever(paths: &Paths, archive: &ArchiveConfig, journal: &mut Journal) -> Result<i32> {
    let store = Store::open(archive, PATIENCE)?;
    let layout = layout(archive)?;
    notify_ready();
    eprintln!("tether: archiving to {} as {}", archive.url, host_id());
    let mut wait = INTERVAL;
    let mut last_error = String::new();
    let mut last_note_error: Option<String> = None;
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    let mut scanner = Scanner::default();
    loop {
        let outcome = pass(
            &store,
            &mut scanner,
            paths,
            &layout,
            journal,
            Some(SEGMENT_BUDGET),
            archive.keep_local_days,
        )
        .await;
        let (shipped, errors) = match outcome {
            Ok(report) => {
                wait = INTERVAL;
                for base in &report.pruned {
                    eprintln!(
                        "tether: archive: removed the local copy of {base} (archived, kept {} days)",
                        archive.keep_local_days
                    );
                }
                (report.shipped, report.failed)
            }
            Err(e) => {
                // The bucket is unusable: retry forever, waiting longer
                // each time up to a minute. Nothing local is touched.
                wait = (wait * 2).min(BACKOFF_MAX);
                (0, vec![format!("{e:#}")])
            }
        };
        let first = errors.first().cloned().unwrap_or_default();
        if first != last_error {
            if first.is_empty() {
                eprintln!("tether: archive: the bucket answers again");
            } else {
                eprintln!("tether: {first}");
            }
            last_error = first;
        }
        if shipped > 0 || !errors.is_empty() {
            // A disk too full to note it stops nothing (said once).
            let noted = save_last_pass(paths, &LastPass { at: now(), shipped, errors })
                .err()
                .map(|e| format!("{e:#}"));
            if noted != last_note_error {
                if let Some(e) = &noted {
                    eprintln!("tether: archive: cannot note the last pass for --status: {e}");
                }
                last_note_error = noted;
            }
        }
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            _ = tokio::signal::ctrl_c() => return Ok(0),
            _ = term.recv() => return Ok(0),
        }
    }
}

/// Takes the uploader's lock (`$XDG_STATE_HOME/tether/archive/lock`),
/// held as long as the returned file is open.
///
/// # Errors
///
/// Another `tether archive` holds it, or it cannot be made.
fn lock_uploader(paths: &Paths) -> Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let dir = state_dir(paths);
    crate::fsutil::ensure_private_dir(&dir)?;
    let path = dir.join("lock");
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok(file),
        Err(rustix::io::Errno::WOULDBLOCK) => Err(Failure::conflict(
            "another `tether archive` is running for this user (one ships at a time)",
        )
        .into()),
        Err(e) => Err(anyhow::Error::from(e).context(format!("locking {}", path.display()))),
    }
}

/// Notes the last pass for `--status` and `check`, or says why not: a
/// disk too full for it does not hide what the pass did.
fn note_last_pass(paths: &Paths, last: &LastPass) {
    if let Err(e) = save_last_pass(paths, last) {
        eprintln!("tether: archive: cannot note the last pass for --status: {e:#}");
    }
}

fn layout(archive: &ArchiveConfig) -> Result<Layout> {
    let (_, prefix) = archive.bucket_and_prefix().map_err(Failure::invalid)?;
    Ok(Layout::new(&prefix, &host_id()))
}

fn now() -> String {
    jiff::Timestamp::now().to_string()
}

fn print_status(st: &super::Status) {
    println!(
        "archive:   {}{}",
        st.url,
        st.endpoint.as_ref().map(|e| format!(" at {e}")).unwrap_or_default()
    );
    println!("location:  {}", st.location);
    println!("shipped:   {} objects", st.shipped);
    println!(
        "pending:   {} checkpoints, {} segments, {} evidence files and audit log chunks",
        st.pending_witness, st.pending_segments, st.pending_other
    );
    println!("lag:       {} s", st.lag_secs);
    match &st.last_pass {
        Some(p) if p.errors.is_empty() => {
            println!("last pass: {} ({} shipped, no error)", p.at, p.shipped)
        }
        Some(p) => println!("last pass: {} ({} shipped): {}", p.at, p.shipped, p.errors.join("; ")),
        None => println!("last pass: never"),
    }
    for u in &st.unreadable {
        println!("unreadable: {u}");
    }
}

/// Tells systemd the uploader is ready (`Type=notify`), when it asked.
fn notify_ready() {
    use std::os::linux::net::SocketAddrExt;
    use std::os::unix::net::{SocketAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else { return };
    let bytes = std::os::unix::ffi::OsStrExt::as_bytes(path.as_os_str());
    let addr = match bytes.strip_prefix(b"@") {
        Some(name) => SocketAddr::from_abstract_name(name),
        None => SocketAddr::from_pathname(std::path::Path::new(&path)),
    };
    if let (Ok(sock), Ok(addr)) = (UnixDatagram::unbound(), addr) {
        let _ = sock.send_to_addr(b"READY=1", &addr);
    }
}

/// `ls --archive` output, as a table or JSON.
///
/// # Errors
///
/// Writing fails.
pub fn print_archived(all: &[super::fleet::Archived], json: bool) -> Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if json {
        serde_json::to_writer_pretty(&mut out, all)?;
        writeln!(out)?;
        return Ok(());
    }
    if all.is_empty() {
        writeln!(out, "nothing archived")?;
        return Ok(());
    }
    writeln!(
        out,
        "{:<28} {:<20} {:<20} {:>8} {:>10}  {:<6}  URL",
        "HOST", "SESSION", "STARTED", "SEGMENTS", "BYTES", "STATUS"
    )?;
    for a in all {
        writeln!(
            out,
            "{:<28} {:<20} {:<20} {:>8} {:>10}  {:<6}  {}",
            a.host, a.session, a.started, a.segments, a.bytes, a.status, a.url
        )?;
    }
    Ok(())
}

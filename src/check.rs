//! `tether check`: proves the service works end to end, the way a user
//! uses it, rather than that a process exists.
//!
//! 1. `service`: the sessions can be listed (with `--host`: the daemon
//!    answers over SSH and accepts our key).
//! 2. `attach`: a throwaway session (a probe, `check-XXXXXXXX`, listed as
//!    one) prints a random nonce, and an attachment sees it through the
//!    same attach path users use.
//! 3. `recording`: the probe's recording (kept in a scratch place, never
//!    among user recordings, unless the host requires recording) verifies
//!    as intact; then the probe is removed.
//!
//! The probe is made by the local user: `tether check` itself, or, for an
//! SSH caller, the daemon running the check on its behalf
//! ([`crate::backend::Backend::check`]); no SSH caller can create one.
//! 4. `keepers`: every running session's keeper answers within a deadline.
//! 5. `degraded`: no session's recording is degraded.
//! 6. `disk`: the data directory has at least `check_min_free_bytes`.

use crate::backend::{Backend, create_request};
use crate::client::access::Op;
use crate::client::local_identity;
use anyhow::{Result, anyhow};
use serde::{Deserialize, Serialize};
use std::time::{Duration, Instant};
use tether_proto::{
    AttachMode, AttachRequest, Message, Reply, Request, SessionInfo, SessionName, SessionState,
    WindowSize,
};

/// How long a keeper has to answer.
const KEEPER_DEADLINE: Duration = Duration::from_secs(5);

/// How long the probe has to show its nonce.
const PROBE_DEADLINE: Duration = Duration::from_secs(15);

/// One check's outcome.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Outcome {
    /// The check.
    pub name: String,
    /// Passed.
    pub ok: bool,
    /// What was found.
    pub detail: String,
    /// How long it took.
    pub ms: u64,
}

fn timed(name: &str, f: impl FnOnce() -> Result<String>) -> Outcome {
    let start = Instant::now();
    let (ok, detail) = match f() {
        Ok(d) => (true, d),
        Err(e) => (false, crate::error::message(&e)),
    };
    Outcome { name: name.into(), ok, detail, ms: start.elapsed().as_millis() as u64 }
}

/// Runs every check against `backend` (the caller's view of the sessions),
/// making the probe through `prober` (this host, as the local user).
pub fn run(backend: &dyn Backend, prober: &dyn Backend) -> Vec<Outcome> {
    let mut out = Vec::new();
    let mut sessions = Vec::new();
    out.push(timed("service", || {
        sessions = backend.list()?;
        Ok(format!("{} session(s)", sessions.len()))
    }));
    if !out[0].ok {
        return out;
    }
    let random = rand::random::<u64>();
    let nonce = format!("{random:016x}");
    let probe = SessionName::probe(random);
    let attach = timed("attach", || probe_attach(prober, &probe, &nonce));
    let attached = attach.ok;
    out.push(attach);
    if attached {
        out.push(timed("recording", || probe_recording(prober, &probe)));
    }
    let _ = prober.remove(&probe);
    out.push(timed("keepers", || keepers(backend, &sessions)));
    out.push(timed("degraded", || degraded(&sessions)));
    out.push(timed("disk", || disk(backend)));
    out
}

/// Starts the probe and sees its nonce through an attachment.
fn probe_attach(backend: &dyn Backend, probe: &SessionName, nonce: &str) -> Result<String> {
    let script = format!("echo probe-{nonce}; exec sleep 60");
    let mut req =
        create_request(probe, vec!["sh".into(), "-c".into(), script], WindowSize::DEFAULT);
    req.probe = true;
    backend.create(&req)?;
    let mut client = backend.connect(probe, Op::Watch)?;
    client.reader.stream().set_read_timeout(Some(PROBE_DEADLINE))?;
    let identity = local_identity();
    client.writer.write_message(&Message::Attach(AttachRequest {
        mode: AttachMode::ReadOnly,
        size: WindowSize::DEFAULT,
        identity,
        term: None,
    }))?;
    let needle = format!("probe-{nonce}");
    let deadline = Instant::now() + PROBE_DEADLINE;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        match client.reader.read_message()? {
            Some(Message::Output(b) | Message::Redraw(b)) => {
                seen.extend_from_slice(&b);
                if seen.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    let _ = client.writer.write_message(&Message::Detach);
                    return Ok(format!("saw the nonce through the attach path (session {probe})"));
                }
            }
            Some(Message::Error(e)) => return Err(crate::Failure::from(e).into()),
            Some(_) => {}
            None => break,
        }
    }
    Err(anyhow!("the probe's nonce never arrived"))
}

/// Ends the probe and verifies its recording.
fn probe_recording(backend: &dyn Backend, probe: &SessionName) -> Result<String> {
    let mut client = backend.connect(probe, Op::Kill)?;
    client.request(Request::Kill { force: true })?;
    let health = backend.health(Some(probe))?;
    match health.probe_recording.as_deref() {
        Some("intact") => Ok("the probe's recording verifies".into()),
        Some(other) => Err(anyhow!("the probe's recording is {other}")),
        None => Ok("recording is off on this host".into()),
    }
}

fn keepers(backend: &dyn Backend, sessions: &[SessionInfo]) -> Result<String> {
    let running: Vec<&SessionInfo> =
        sessions.iter().filter(|s| s.state == SessionState::Running).collect();
    let mut silent = Vec::new();
    for s in &running {
        let answered = backend.connect(&s.name, Op::Who).and_then(|mut c| {
            c.reader.stream().set_read_timeout(Some(KEEPER_DEADLINE))?;
            match c.request(Request::Info)? {
                Reply::Info { .. } => Ok(()),
                _ => Err(anyhow!("unexpected reply")),
            }
        });
        if answered.is_err() {
            silent.push(s.name.to_string());
        }
    }
    if silent.is_empty() {
        Ok(format!("{} keeper(s) answered", running.len()))
    } else {
        Err(anyhow!(
            "keeper(s) not answering within {}s: {}",
            KEEPER_DEADLINE.as_secs(),
            silent.join(", ")
        ))
    }
}

fn degraded(sessions: &[SessionInfo]) -> Result<String> {
    let bad: Vec<String> = sessions
        .iter()
        .filter(|s| s.recording == tether_proto::RecordingState::Degraded)
        .map(|s| s.name.to_string())
        .collect();
    if bad.is_empty() {
        Ok("no recording is degraded".into())
    } else {
        Err(anyhow!("degraded recording(s): {}", bad.join(", ")))
    }
}

/// The archive (docs/ARCHIVE.md), from the uploader's journal and its
/// last pass: fails when a checkpoint has waited for its witness longer
/// than `verify` allows, or nothing could be shipped at all.
pub fn archive(paths: &crate::paths::Paths, config: &crate::config::ArchiveConfig) -> Outcome {
    timed("archive", || {
        let journal = crate::archive::Journal::open(&crate::archive::state_dir(paths))?;
        let st = crate::archive::status(paths, config, &journal)?;
        let pending = format!(
            "{} checkpoint(s), {} segment(s) and {} other object(s) pending",
            st.pending_witness, st.pending_segments, st.pending_other
        );
        let last = match &st.last_pass {
            None => "never ran".to_owned(),
            Some(p) if p.errors.is_empty() => format!("last pass {}", p.at),
            Some(p) => format!("last pass {}: {}", p.at, p.errors.join("; ")),
        };
        let grace = crate::archive::witness::GRACE_SECS as u64;
        if st.lag_secs > grace {
            return Err(anyhow!(
                "the witness lags {} s (more than {grace}): {pending}; {last}; is `tether archive` running?",
                st.lag_secs
            ));
        }
        Ok(format!(
            "{} objects shipped to {}; {pending}; lag {} s; {last}",
            st.shipped, st.url, st.lag_secs
        ))
    })
}

fn disk(backend: &dyn Backend) -> Result<String> {
    let h = backend.health(None)?;
    if let Some(why) = h.recordings_unwritable {
        return Err(anyhow!("the recordings directory refuses writes: {why}"));
    }
    let mib = |b: u64| b / (1 << 20);
    if h.free_bytes >= h.min_free_bytes {
        Ok(format!("{} MiB free (minimum {} MiB)", mib(h.free_bytes), mib(h.min_free_bytes)))
    } else {
        Err(anyhow!(
            "only {} MiB free in the data directory (minimum {} MiB)",
            mib(h.free_bytes),
            mib(h.min_free_bytes)
        ))
    }
}

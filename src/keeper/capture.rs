//! Evidence capture and freezing, done by the keeper: it is the ancestor
//! of every process of the session (and their child subreaper), so it may
//! read their memory, and it holds the screen.

use super::{Keeper, lock};
use crate::Failure;
use crate::audit::Event;
use crate::forensic::net::Sockets;
use crate::forensic::{self, Bundle, procfs};
use anyhow::Result;
use rustix::process::Signal;
use serde::Serialize;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;
use std::sync::Arc;
use tether_proto::{ErrorCode, SnapshotRequest};

/// One memory region in the bundle.
#[derive(Debug, Serialize)]
struct Region {
    pid: i32,
    start: String,
    end: String,
    perms: String,
    mapping: String,
    /// The dump file, when dumped.
    file: Option<String>,
    /// Why it was not dumped.
    skipped: Option<String>,
}

impl Keeper {
    /// Stops every process of the session.
    ///
    /// # Errors
    ///
    /// Already frozen (exit 4).
    pub fn freeze(self: &Arc<Self>, why: &str, peer: u32) -> Result<(), Failure> {
        {
            let mut st = self.state();
            if st.frozen {
                return Err(Failure::conflict(format!(
                    "session {} is already frozen",
                    self.name()
                )));
            }
            st.frozen = true;
        }
        let n = forensic::signal_session(keeper_pid(), self.job.pid as i32, Signal::STOP);
        tracing::info!(processes = n, "frozen ({why})");
        self.mark(format!("freeze ({why})"));
        self.audit_local_event(Event::Freeze, peer);
        self.save_record();
        Ok(())
    }

    /// Continues every process of the session.
    ///
    /// # Errors
    ///
    /// Not frozen (exit 4).
    pub fn thaw(self: &Arc<Self>, why: &str, peer: u32) -> Result<(), Failure> {
        {
            let mut st = self.state();
            if !st.frozen {
                return Err(Failure::conflict(format!("session {} is not frozen", self.name())));
            }
            st.frozen = false;
        }
        let n = forensic::signal_session(keeper_pid(), self.job.pid as i32, Signal::CONT);
        tracing::info!(processes = n, "thawed ({why})");
        self.mark(format!("thaw ({why})"));
        self.audit_local_event(Event::Thaw, peer);
        self.save_record();
        Ok(())
    }

    /// Audits `event`, asked for by the process `peer` (marked when it
    /// runs inside a session).
    fn audit_local_event(&self, event: Event, peer: u32) {
        let origin = self.origin_of(peer);
        let entry = crate::audit::Entry {
            session: Some(self.name().to_string()),
            from_session: origin.as_ref().map(|o| o.session.clone()),
            started_by: origin.and_then(|o| o.started_by),
            ..crate::audit::Entry::new(event)
        };
        crate::audit::AuditLog::new(self.paths.state_dir.join("audit.jsonl")).record(&entry);
    }

    /// Captures an evidence bundle; with `freeze`, the session is stopped
    /// for the capture and continued afterwards, even if the capture fails.
    ///
    /// # Errors
    ///
    /// The bundle cannot be created or signed.
    pub fn snapshot(self: &Arc<Self>, req: &SnapshotRequest, peer: u32) -> Result<String, Failure> {
        let froze = req.freeze && self.freeze("snapshot", peer).is_ok();
        let result = self.capture(req);
        if froze {
            let _ = self.thaw("snapshot", peer);
        }
        let path = result
            .map_err(|e| Failure::new(ErrorCode::Internal, format!("capture failed: {e:#}")))?;
        self.mark(format!("snapshot by {}", crate::term::text::visible(&req.requested_by)));
        self.audit_local_event(Event::Snapshot, peer);
        Ok(path)
    }

    fn capture(&self, req: &SnapshotRequest) -> Result<String> {
        let key = crate::signing::SigningKey::load_or_create(&self.paths.signing_key_file())?;
        let parent = req.out.as_ref().map_or_else(|| self.paths.evidence_dir(), PathBuf::from);
        let mut bundle = Bundle::create(&parent, self.name().as_str())?;
        let (keeper, job) = (keeper_pid(), self.job.pid as i32);
        // Order of volatility: which processes exist, their files and
        // sockets, then memory, then the screen, then the recording.
        let pids = bundle.step("process_list", |_| forensic::session_pids(keeper, job));
        let sockets = Sockets::of(&job.to_string());
        let boot = procfs::boot_time();
        let processes = bundle.step("processes", |_| {
            pids.iter().map(|p| procfs::collect(*p, &sockets, boot)).collect::<Vec<_>>()
        });
        bundle.write_json("processes.json", &processes)?;
        if req.memory {
            let regions = bundle.step("memory", |b| dump_memory(b, &pids, req.memory_limit));
            bundle.write_json("memory.json", &regions)?;
        }
        let (ansi, text, scrollback) = bundle.step("screen", |_| {
            let st = lock(&self.state);
            (
                st.screen.redraw(),
                st.screen.visible_text().join("\n") + "\n",
                st.screen.text(None).join("\n") + "\n",
            )
        });
        bundle.write("screen.ansi", &ansi)?;
        bundle.write("screen.txt", text.as_bytes())?;
        bundle.write("scrollback.txt", scrollback.as_bytes())?;
        let recording = bundle.step("recording", |_| self.recording_reference());
        bundle.write_json("recording.json", &recording)?;
        let extra = serde_json::json!({
            "session": self.info(),
            "frozen_during_capture": req.freeze,
            "memory": req.memory,
        });
        let dir = bundle.finish("session", &req.requested_by, extra, &key)?;
        Ok(dir.display().to_string())
    }

    /// The recording and its chain head at capture time (its last
    /// checkpoint, which the signature vouches for).
    fn recording_reference(&self) -> serde_json::Value {
        let Some(r) = &self.recorder else { return serde_json::json!({"recording": null}) };
        // A fresh signed checkpoint: the chain head at capture time.
        let checkpoint = r.checkpoint_now();
        serde_json::json!({
            "recording": r.path().display().to_string(),
            "last_checkpoint": checkpoint,
        })
    }
}

fn keeper_pid() -> i32 {
    std::process::id() as i32
}

/// Dumps the readable regions of `pids` into `memory/PID/START-END.bin`,
/// up to `limit` bytes in all.
fn dump_memory(bundle: &mut Bundle, pids: &[i32], limit: u64) -> Vec<Region> {
    let mut left = limit;
    let mut regions = Vec::new();
    for &pid in pids {
        let Ok(maps) = std::fs::read_to_string(format!("/proc/{pid}/maps")) else { continue };
        let mem = std::fs::File::open(format!("/proc/{pid}/mem"));
        for line in maps.lines() {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (Some(range), Some(perms)) = (f.first(), f.get(1)) else { continue };
            let mapping = f.get(5).copied().unwrap_or("").to_owned();
            let Some((s, e)) = range.split_once('-') else { continue };
            let (Ok(start), Ok(end)) = (u64::from_str_radix(s, 16), u64::from_str_radix(e, 16))
            else {
                continue;
            };
            let mut region = Region {
                pid,
                start: s.into(),
                end: e.into(),
                perms: (*perms).into(),
                mapping: mapping.clone(),
                file: None,
                skipped: None,
            };
            let size = end - start;
            region.skipped = if !perms.starts_with('r') {
                Some("not readable".into())
            } else if matches!(mapping.as_str(), "[vvar]" | "[vsyscall]" | "[vvar_vclock]") {
                Some("kernel page".into())
            } else if size > left {
                Some(format!("over the memory limit ({limit} bytes)"))
            } else {
                match &mem {
                    Err(e) => Some(e.to_string()),
                    Ok(m) => {
                        let mut buf = vec![0u8; size as usize];
                        match m.read_exact_at(&mut buf, start) {
                            Err(e) => Some(e.to_string()),
                            Ok(()) => {
                                let rel = format!("memory/{pid}/{s}-{e}.bin");
                                match bundle.write(&rel, &buf) {
                                    Ok(()) => {
                                        left -= size;
                                        region.file = Some(rel);
                                        None
                                    }
                                    Err(e) => Some(format!("{e:#}")),
                                }
                            }
                        }
                    }
                }
            };
            regions.push(region);
        }
    }
    regions
}

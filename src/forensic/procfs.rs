//! Read-only collectors for one process, from `/proc`.
//!
//! Every field is collected on its own: a field that cannot be read is
//! recorded as an error for that field, and a process that exits in the
//! middle is recorded as gone; neither fails the capture. Nothing here
//! signals, stops or traces a process.

use super::net::Sockets;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A field's value, or why it could not be read.
#[derive(Debug, Clone, Serialize)]
#[serde(untagged)]
pub enum Field<T> {
    /// The value.
    Ok(T),
    /// `{"error": "..."}`.
    Err {
        /// Why.
        error: String,
    },
}

impl<T> Field<T> {
    fn from(r: std::io::Result<T>) -> Self {
        match r {
            Ok(v) => Field::Ok(v),
            Err(e) => Field::Err { error: e.to_string() },
        }
    }
}

/// The numbers from `/proc/PID/stat`.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Stat {
    /// Parent.
    pub ppid: i32,
    /// Process group.
    pub pgid: i32,
    /// Session.
    pub sid: i32,
    /// R, S, D, T, Z…
    pub state: char,
    /// Start time in clock ticks since boot.
    pub start_ticks: u64,
}

/// Reads `/proc/PID/stat`.
///
/// # Errors
///
/// The process is gone or the file is malformed.
pub fn stat(pid: i32) -> std::io::Result<Stat> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = text.rsplit_once(')').map(|(_, a)| a).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let bad = || std::io::Error::other("malformed stat");
    let num = |i: usize| f.get(i).and_then(|v| v.parse::<i64>().ok()).ok_or_else(bad);
    Ok(Stat {
        state: f.first().and_then(|s| s.chars().next()).ok_or_else(bad)?,
        ppid: num(1)? as i32,
        pgid: num(2)? as i32,
        sid: num(3)? as i32,
        start_ticks: num(19)? as u64,
    })
}

/// Every pid on the system.
pub fn all_pids() -> Vec<i32> {
    let mut pids: Vec<i32> = std::fs::read_dir("/proc")
        .map(|d| d.flatten().filter_map(|e| e.file_name().to_str()?.parse().ok()).collect())
        .unwrap_or_default();
    pids.sort_unstable();
    pids
}

/// The executable: its path (as the kernel reports it, with ` (deleted)`
/// when unlinked) and the SHA-256 of its content, read through
/// `/proc/PID/exe`, which works even when the file was deleted.
#[derive(Debug, Clone, Serialize)]
pub struct Exe {
    /// The path.
    pub path: String,
    /// Whether the file was deleted after the process started.
    pub deleted: bool,
    /// SHA-256 of the content, hex.
    pub sha256: Field<String>,
}

/// An open file descriptor.
#[derive(Debug, Clone, Serialize)]
pub struct Fd {
    /// The number.
    pub fd: i32,
    /// What it points at (`/path`, `socket:[inode]`, `pipe:[…]`…).
    pub target: String,
    /// For sockets: protocol, addresses and state.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub socket: Option<super::net::Socket>,
}

/// Everything collected about one process.
#[derive(Debug, Clone, Serialize)]
pub struct Process {
    /// The pid.
    pub pid: i32,
    /// The process exited during the capture; fields read before are kept.
    pub gone: bool,
    /// Parent, group, session, state, start.
    pub stat: Field<Stat>,
    /// When it started, RFC 3339 UTC.
    pub started: Field<String>,
    /// Real, effective, saved, filesystem uids.
    pub uids: Field<Vec<u32>>,
    /// Real, effective, saved, filesystem gids.
    pub gids: Field<Vec<u32>>,
    /// The command line.
    pub cmdline: Field<Vec<String>>,
    /// The environment.
    pub environ: Field<Vec<String>>,
    /// The working directory.
    pub cwd: Field<String>,
    /// The executable.
    pub exe: Field<Exe>,
    /// Open files and sockets.
    pub fds: Field<Vec<Fd>>,
    /// `/proc/PID/maps`.
    pub maps: Field<Vec<String>>,
    /// `/proc/PID/limits`.
    pub limits: Field<Vec<String>>,
    /// `/proc/PID/cgroup`.
    pub cgroup: Field<Vec<String>>,
    /// Namespace links (`net:[4026531840]`…).
    pub namespaces: Field<BTreeMap<String, String>>,
}

fn lines(path: &Path) -> std::io::Result<Vec<String>> {
    Ok(std::fs::read_to_string(path)?.lines().map(str::to_owned).collect())
}

fn nul_separated(path: &Path) -> std::io::Result<Vec<String>> {
    let bytes = std::fs::read(path)?;
    Ok(bytes
        .split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect())
}

fn link(path: &Path) -> std::io::Result<String> {
    Ok(std::fs::read_link(path)?.to_string_lossy().into_owned())
}

/// SHA-256 of a file, streamed.
pub fn sha256_file(path: &Path) -> std::io::Result<String> {
    let mut f = std::fs::File::open(path)?;
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(h.finalize().iter().map(|b| format!("{b:02x}")).collect())
}

fn ids(status: &str, key: &str) -> std::io::Result<Vec<u32>> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(key))
        .map(|v| v.split_whitespace().filter_map(|n| n.parse().ok()).collect())
        .ok_or_else(|| std::io::Error::other(format!("no {key} in status")))
}

/// Executable hashes already computed, by (device, inode): a host runs many
/// copies of the same few binaries.
pub type ExeHashes = std::cell::RefCell<std::collections::HashMap<(u64, u64), String>>;

/// Collects everything about `pid`, in order of volatility (open files and
/// sockets first, the executable's hash last).
pub fn collect(pid: i32, sockets: &Sockets, boot: Option<jiff::Timestamp>) -> Process {
    collect_cached(pid, sockets, boot, &ExeHashes::default())
}

/// [`collect`], reusing executable hashes across processes.
pub fn collect_cached(
    pid: i32,
    sockets: &Sockets,
    boot: Option<jiff::Timestamp>,
    hashes: &ExeHashes,
) -> Process {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = Field::from(stat(pid));
    let fds = Field::from(collect_fds(&dir, sockets));
    let status = std::fs::read_to_string(dir.join("status"));
    let (uids, gids) = match &status {
        Ok(s) => (Field::from(ids(s, "Uid:")), Field::from(ids(s, "Gid:"))),
        Err(e) => (Field::Err { error: e.to_string() }, Field::Err { error: e.to_string() }),
    };
    let started = match (&stat, boot) {
        (Field::Ok(s), Some(boot)) => Field::Ok(start_time(boot, s.start_ticks)),
        _ => Field::Err { error: "start time unknown".into() },
    };
    let process = Process {
        pid,
        gone: false,
        stat,
        started,
        uids,
        gids,
        cmdline: Field::from(nul_separated(&dir.join("cmdline"))),
        environ: Field::from(nul_separated(&dir.join("environ"))),
        cwd: Field::from(link(&dir.join("cwd"))),
        fds,
        maps: Field::from(lines(&dir.join("maps"))),
        limits: Field::from(lines(&dir.join("limits"))),
        cgroup: Field::from(lines(&dir.join("cgroup"))),
        namespaces: Field::from(namespaces(&dir)),
        exe: Field::from(exe(&dir, hashes)),
    };
    Process { gone: !dir.exists(), ..process }
}

fn collect_fds(dir: &Path, sockets: &Sockets) -> std::io::Result<Vec<Fd>> {
    let mut fds = Vec::new();
    for entry in std::fs::read_dir(dir.join("fd"))?.flatten() {
        let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else { continue };
        let Ok(target) = link(&entry.path()) else { continue };
        let socket = target
            .strip_prefix("socket:[")
            .and_then(|t| t.strip_suffix(']'))
            .and_then(|i| i.parse::<u64>().ok())
            .and_then(|inode| sockets.get(inode));
        fds.push(Fd { fd, target, socket });
    }
    fds.sort_by_key(|f| f.fd);
    Ok(fds)
}

fn namespaces(dir: &Path) -> std::io::Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(dir.join("ns"))?.flatten() {
        if let Ok(target) = link(&entry.path()) {
            out.insert(entry.file_name().to_string_lossy().into_owned(), target);
        }
    }
    Ok(out)
}

fn exe(dir: &Path, hashes: &ExeHashes) -> std::io::Result<Exe> {
    use std::os::unix::fs::MetadataExt;
    let path = link(&dir.join("exe"))?;
    let deleted = path.ends_with(" (deleted)");
    // /proc/PID/exe opens the file itself, deleted or not.
    let target = dir.join("exe");
    let id = std::fs::metadata(&target).map(|m| (m.dev(), m.ino())).ok();
    if let Some(known) = id.and_then(|id| hashes.borrow().get(&id).cloned()) {
        return Ok(Exe { path, deleted, sha256: Field::Ok(known) });
    }
    let sha256 = sha256_file(&target);
    if let (Some(id), Ok(sha)) = (id, &sha256) {
        hashes.borrow_mut().insert(id, sha.clone());
    }
    Ok(Exe { path, deleted, sha256: Field::from(sha256) })
}

/// The boot time, from `/proc/stat`.
pub fn boot_time() -> Option<jiff::Timestamp> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    let secs: i64 = text.lines().find_map(|l| l.strip_prefix("btime "))?.trim().parse().ok()?;
    jiff::Timestamp::from_second(secs).ok()
}

fn start_time(boot: jiff::Timestamp, ticks: u64) -> String {
    // USER_HZ is 100 on every Linux configuration that matters.
    let offset = jiff::SignedDuration::from_millis((ticks * 10) as i64);
    boot.checked_add(offset).map_or_else(|_| "?".into(), crate::clock::format_rfc3339)
}

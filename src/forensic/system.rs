//! Host-wide collectors (`snapshot --system`), and the facts every
//! manifest records about the host. All of them only read.

use super::Bundle;
use super::net::Sockets;
use super::procfs::{self, Field};
use serde::Serialize;
use std::collections::BTreeMap;

fn read_trim(path: &str) -> Field<String> {
    match std::fs::read_to_string(path) {
        Ok(s) => Field::Ok(s.trim().to_owned()),
        Err(e) => Field::Err { error: e.to_string() },
    }
}

fn read_lines(path: &str) -> Field<Vec<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Field::Ok(s.lines().map(str::to_owned).collect()),
        Err(e) => Field::Err { error: e.to_string() },
    }
}

/// Host name, machine and boot ids, kernel.
pub fn host_facts() -> serde_json::Value {
    let u = rustix::system::uname();
    serde_json::json!({
        "hostname": u.nodename().to_string_lossy(),
        "machine_id": read_trim("/etc/machine-id"),
        "boot_id": read_trim("/proc/sys/kernel/random/boot_id"),
        "kernel": format!("{} {} {} {}", u.sysname().to_string_lossy(), u.release().to_string_lossy(), u.version().to_string_lossy(), u.machine().to_string_lossy()),
    })
}

/// A logged-in user, from utmp.
#[derive(Debug, Serialize)]
pub struct Login {
    /// User name.
    pub user: String,
    /// Terminal line.
    pub line: String,
    /// Remote host, if any.
    pub host: String,
    /// The session's process.
    pub pid: i32,
    /// Login time, RFC 3339 UTC.
    pub since: String,
}

/// `USER_PROCESS` records of `/var/run/utmp` (glibc x86_64 layout, 384-byte records).
fn logins() -> Field<Vec<Login>> {
    let bytes = match std::fs::read("/var/run/utmp") {
        Ok(b) => b,
        Err(e) => return Field::Err { error: e.to_string() },
    };
    let text =
        |b: &[u8]| String::from_utf8_lossy(b.split(|c| *c == 0).next().unwrap_or(b)).into_owned();
    let int = |b: &[u8]| i32::from_ne_bytes([b[0], b[1], b[2], b[3]]);
    let out = bytes
        .chunks_exact(384)
        .filter(|r| int(&r[0..4]) == 7)
        .map(|r| Login {
            pid: int(&r[4..8]),
            line: text(&r[8..40]),
            user: text(&r[44..76]),
            host: text(&r[76..332]),
            since: jiff::Timestamp::from_second(i64::from(int(&r[340..344])))
                .map_or_else(|_| "?".into(), crate::clock::format_rfc3339),
        })
        .collect();
    Field::Ok(out)
}

/// Sockets with the processes that hold them.
#[derive(Debug, Serialize)]
struct OwnedSocket {
    #[serde(flatten)]
    socket: super::net::Socket,
    pids: Vec<i32>,
}

/// Output of a read-only command, if it exists here.
fn command(program: &str, args: &[&str]) -> Field<String> {
    match std::process::Command::new(program).args(args).output() {
        Ok(o) if o.status.success() => Field::Ok(String::from_utf8_lossy(&o.stdout).into_owned()),
        Ok(o) => Field::Err { error: String::from_utf8_lossy(&o.stderr).trim().to_owned() },
        Err(e) => Field::Err { error: format!("{program}: {e}") },
    }
}

/// The last lines of the kernel log, where readable.
fn kernel_log() -> Field<Vec<String>> {
    match command("dmesg", &["--time-format", "iso"]) {
        Field::Ok(text) => {
            let lines: Vec<String> = text.lines().map(str::to_owned).collect();
            let skip = lines.len().saturating_sub(500);
            Field::Ok(lines[skip..].to_vec())
        }
        Field::Err { error } => Field::Err { error },
    }
}

/// Collects the host: processes and their sockets first (most volatile),
/// then logins, network, mounts, modules, uptime, the kernel log.
///
/// # Errors
///
/// A file of the bundle cannot be written.
pub fn capture(bundle: &mut Bundle) -> anyhow::Result<()> {
    let boot = procfs::boot_time();
    let sockets = Sockets::of("self");
    let hashes = procfs::ExeHashes::default();
    let processes = bundle.step("processes", |_| {
        procfs::all_pids()
            .into_iter()
            .map(|pid| procfs::collect_cached(pid, &sockets, boot, &hashes))
            .collect::<Vec<_>>()
    });
    let owned = bundle.step("sockets", |_| owners(&processes, &sockets));
    bundle.write_json("processes.json", &processes)?;
    bundle.write_json("sockets.json", &owned)?;
    let logins = bundle.step("logins", |_| logins());
    bundle.write_json("logins.json", &logins)?;
    let network = bundle.step("network", |_| {
        serde_json::json!({
            "interfaces": command("ip", &["-j", "address"]),
            "routes": command("ip", &["-j", "route"]),
            "routes6": command("ip", &["-j", "-6", "route"]),
            "proc_net_dev": read_lines("/proc/net/dev"),
            "proc_net_route": read_lines("/proc/net/route"),
        })
    });
    bundle.write_json("network.json", &network)?;
    let misc = bundle.step("system", |_| {
        serde_json::json!({
            "mounts": read_lines("/proc/self/mountinfo"),
            "modules": read_lines("/proc/modules"),
            "uptime": read_trim("/proc/uptime"),
            "loadavg": read_trim("/proc/loadavg"),
        })
    });
    bundle.write_json("system.json", &misc)?;
    let klog = bundle.step("kernel_log", |_| kernel_log());
    bundle.write_json("kernel_log.json", &klog)?;
    Ok(())
}

fn owners(processes: &[procfs::Process], sockets: &Sockets) -> Vec<OwnedSocket> {
    let mut by_inode: BTreeMap<u64, Vec<i32>> = BTreeMap::new();
    for p in processes {
        if let Field::Ok(fds) = &p.fds {
            for fd in fds.iter().filter_map(|f| f.socket.as_ref()) {
                by_inode.entry(fd.inode).or_default().push(p.pid);
            }
        }
    }
    let mut out: Vec<OwnedSocket> = sockets
        .all()
        .filter(|s| s.protocol != "unix" || by_inode.contains_key(&s.inode))
        .map(|s| OwnedSocket {
            socket: s.clone(),
            pids: by_inode.get(&s.inode).cloned().unwrap_or_default(),
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.socket.protocol, &a.socket.local).cmp(&(&b.socket.protocol, &b.socket.local))
    });
    out
}

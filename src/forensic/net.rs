//! Sockets, from `/proc/PID/net/{tcp,tcp6,udp,udp6,unix}`: inode →
//! protocol, local and remote address, state.

use serde::Serialize;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// One socket.
#[derive(Debug, Clone, Serialize)]
pub struct Socket {
    /// `tcp`, `tcp6`, `udp`, `udp6` or `unix`.
    pub protocol: String,
    /// `ADDR:PORT` (or the unix path).
    pub local: String,
    /// `ADDR:PORT`, empty for unix sockets.
    pub remote: String,
    /// `LISTEN`, `ESTABLISHED`…
    pub state: String,
    /// The socket's inode.
    pub inode: u64,
}

/// Sockets by inode.
#[derive(Debug, Default)]
pub struct Sockets(HashMap<u64, Socket>);

impl Sockets {
    /// The sockets visible in the network namespace of `pid` (use "self"
    /// for the caller's).
    pub fn of(pid: &str) -> Sockets {
        let mut map = HashMap::new();
        for proto in ["tcp", "tcp6", "udp", "udp6"] {
            if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/{proto}")) {
                for s in text.lines().skip(1).filter_map(|l| inet_line(proto, l)) {
                    map.insert(s.inode, s);
                }
            }
        }
        if let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/net/unix")) {
            for s in text.lines().skip(1).filter_map(unix_line) {
                map.insert(s.inode, s);
            }
        }
        Sockets(map)
    }

    /// The socket with this inode.
    pub fn get(&self, inode: u64) -> Option<Socket> {
        self.0.get(&inode).cloned()
    }

    /// All of them.
    pub fn all(&self) -> impl Iterator<Item = &Socket> {
        self.0.values()
    }
}

fn inet_line(proto: &str, line: &str) -> Option<Socket> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let state = u8::from_str_radix(f.get(3)?, 16).ok()?;
    Some(Socket {
        protocol: proto.to_owned(),
        local: address(f.get(1)?)?,
        remote: address(f.get(2)?)?,
        state: tcp_state(proto, state).to_owned(),
        inode: f.get(9)?.parse().ok()?,
    })
}

fn unix_line(line: &str) -> Option<Socket> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let state = match *f.get(5)? {
        "01" => "UNCONNECTED",
        "02" => "CONNECTING",
        "03" => "CONNECTED",
        "04" => "DISCONNECTING",
        _ => "?",
    };
    let listening = u32::from_str_radix(f.get(3)?, 16).ok()? & 0x10000 != 0;
    Some(Socket {
        protocol: "unix".into(),
        local: f.get(7).map_or_else(String::new, |p| (*p).to_owned()),
        remote: String::new(),
        state: if listening { "LISTEN".into() } else { state.into() },
        inode: f.get(6)?.parse().ok()?,
    })
}

/// `0100007F:1F90` → `127.0.0.1:8080`; IPv6 as four little-endian words.
fn address(hex: &str) -> Option<String> {
    let (addr, port) = hex.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let ip = match addr.len() {
        8 => IpAddr::V4(Ipv4Addr::from(u32::from_str_radix(addr, 16).ok()?.swap_bytes())),
        32 => {
            let mut bytes = [0u8; 16];
            for w in 0..4 {
                let word = u32::from_str_radix(&addr[w * 8..w * 8 + 8], 16).ok()?;
                bytes[w * 4..w * 4 + 4].copy_from_slice(&word.to_le_bytes());
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        v4 => format!("{v4}:{port}"),
    })
}

fn tcp_state(proto: &str, s: u8) -> &'static str {
    if proto.starts_with("udp") {
        return if s == 7 { "UNCONNECTED" } else { "ESTABLISHED" };
    }
    match s {
        1 => "ESTABLISHED",
        2 => "SYN_SENT",
        3 => "SYN_RECV",
        4 => "FIN_WAIT1",
        5 => "FIN_WAIT2",
        6 => "TIME_WAIT",
        7 => "CLOSE",
        8 => "CLOSE_WAIT",
        9 => "LAST_ACK",
        10 => "LISTEN",
        11 => "CLOSING",
        _ => "?",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_net_lines() {
        let tcp = "   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 12345 1 0000000000000000 100 0 0 10 0";
        let s = inet_line("tcp", tcp).unwrap();
        assert_eq!(
            (s.local.as_str(), s.state.as_str(), s.inode),
            ("127.0.0.1:8080", "LISTEN", 12345)
        );
        let tcp6 = "   0: 00000000000000000000000001000000:0016 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 999 1";
        assert_eq!(inet_line("tcp6", tcp6).unwrap().local, "[::1]:22");
        let unix = "0000000000000000: 00000002 00000000 00010000 0001 01 4242 /run/x.sock";
        let s = unix_line(unix).unwrap();
        assert_eq!((s.local.as_str(), s.state.as_str(), s.inode), ("/run/x.sock", "LISTEN", 4242));
    }
}

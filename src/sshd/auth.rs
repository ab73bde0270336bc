//! Who may connect: `authorized_keys` in OpenSSH format.
//!
//! Keys come from `$XDG_CONFIG_HOME/tether/authorized_keys` if it exists,
//! else from `~/.ssh/authorized_keys` (as owners). The file as it is now is
//! what grants: it is read at each authentication, again at each new
//! channel of an open connection, and at SIGHUP (see [`super::Shared`]).
//! There is no "last good file": a file with no usable line grants nothing.
//!
//! Options (OpenSSH syntax, before the key type):
//!
//! | option | tether's file | `~/.ssh/authorized_keys` |
//! |---|---|---|
//! | `tether-role="owner\|operator\|watcher"` | the key's role (default owner) | key refused |
//! | `tether-sessions="GLOB[,GLOB…]"` | the sessions the key sees | key refused |
//! | `from="PATTERN[,…]"` | honoured | honoured |
//! | `command=`, `restrict`, `no-pty`, `cert-authority`, `principals=`, `tunnel=`, unknown | key refused (tether cannot honour them) | key refused |
//! | `no-*-forwarding`, `no-user-rc`, `*-forwarding`, `pty`, `user-rc`, `environment=`, `permitopen=`, `permitlisten=`, `no-touch-required`, `verify-required` | ignored (tether forwards nothing, runs no rc) | ignored |
//!
//! A malformed line is reported with its line number and grants nothing;
//! the other keys keep working.

use crate::client::access::Visibility;
use russh::keys::PublicKey;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use tether_proto::Role;

/// Which file the keys came from (it decides which options are allowed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `$XDG_CONFIG_HOME/tether/authorized_keys`.
    Tether,
    /// `~/.ssh/authorized_keys`.
    OpenSsh,
}

/// One usable key.
#[derive(Debug, Clone)]
pub struct AuthorizedKey {
    /// The key.
    pub key: PublicKey,
    /// Its comment (may be empty).
    pub comment: String,
    /// The role it grants.
    pub role: Role,
    /// The sessions it sees.
    pub visibility: Visibility,
    /// `from=` patterns, if any.
    pub from: Option<Vec<String>>,
    /// Where it was defined, for logs.
    pub line: usize,
}

impl AuthorizedKey {
    /// Whether a connection from `addr` may use this key.
    pub fn allows_from(&self, addr: Option<IpAddr>) -> bool {
        match (&self.from, addr) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(patterns), Some(ip)) => from_allows(patterns, ip),
        }
    }
}

/// A parsed file: usable keys and the problems found.
#[derive(Debug, Default, Clone)]
pub struct KeyFile {
    /// Usable keys.
    pub keys: Vec<AuthorizedKey>,
    /// "line N: why", for the log.
    pub problems: Vec<String>,
}

impl KeyFile {
    /// Whether no line grants anything though some line is not a comment
    /// (or the file could not be read): every key is refused, and the log
    /// should say so loudly.
    pub fn grants_nothing(&self) -> bool {
        self.keys.is_empty() && !self.problems.is_empty()
    }
}

/// What `key`, connecting from `addr`, may do according to `file` as it is
/// now: its line, or why it may not log in (for logs and the audit).
///
/// # Errors
///
/// The key is not in the file (or only on lines that do not parse), or
/// its `from=` refuses `addr`.
pub fn grant<'a>(
    file: &'a KeyFile,
    key: &PublicKey,
    addr: Option<IpAddr>,
    path: &Path,
) -> Result<&'a AuthorizedKey, String> {
    match find(file, key) {
        None => Err(format!("key not in {}", path.display())),
        Some(k) if !k.allows_from(addr) => {
            Err(format!("from= on line {} of {} refuses this address", k.line, path.display()))
        }
        Some(k) => Ok(k),
    }
}

/// The file in effect for `config_dir` and `home`.
pub fn key_file_path(config_dir: &Path, home: Option<&Path>) -> (PathBuf, Source) {
    let ours = config_dir.join("authorized_keys");
    if ours.exists() {
        return (ours, Source::Tether);
    }
    let theirs = home.map(|h| h.join(".ssh/authorized_keys")).unwrap_or_default();
    (theirs, Source::OpenSsh)
}

/// Reads and parses a key file; a missing file has no keys.
pub fn load(path: &Path, source: Source) -> KeyFile {
    match std::fs::read_to_string(path) {
        Ok(text) => parse(&text, source),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => KeyFile::default(),
        Err(e) => KeyFile { keys: Vec::new(), problems: vec![format!("cannot read: {e}")] },
    }
}

/// Parses the text of a key file.
pub fn parse(text: &str, source: Source) -> KeyFile {
    let mut file = KeyFile::default();
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line, source) {
            Ok(mut key) => {
                key.line = i + 1;
                file.keys.push(key);
            }
            Err(why) => file.problems.push(format!("line {}: {why}", i + 1)),
        }
    }
    file
}

const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
    "ssh-dss",
];

const IGNORED_OPTIONS: &[&str] = &[
    "no-agent-forwarding",
    "no-port-forwarding",
    "no-x11-forwarding",
    "no-user-rc",
    "agent-forwarding",
    "port-forwarding",
    "x11-forwarding",
    "user-rc",
    "pty",
    "environment",
    "permitopen",
    "permitlisten",
    "no-touch-required",
    "verify-required",
];

fn parse_line(line: &str, source: Source) -> Result<AuthorizedKey, String> {
    let first = line.split_whitespace().next().unwrap_or("");
    let (options, key_text) =
        if KEY_TYPES.contains(&first) { (Vec::new(), line) } else { split_options(line)? };
    let key = PublicKey::from_openssh(key_text).map_err(|e| format!("bad key: {e}"))?;
    let comment = key.comment().as_str_lossy().to_owned();
    let mut entry = AuthorizedKey {
        key,
        comment,
        role: Role::Owner,
        visibility: Visibility::all(),
        from: None,
        line: 0,
    };
    for (name, value) in options {
        apply_option(&mut entry, &name, value, source)?;
    }
    Ok(entry)
}

fn apply_option(
    entry: &mut AuthorizedKey,
    name: &str,
    value: Option<String>,
    source: Source,
) -> Result<(), String> {
    let lower = name.to_ascii_lowercase();
    match (lower.as_str(), value, source) {
        ("tether-role" | "tether-sessions", _, Source::OpenSsh) => {
            Err(format!("{name} is only honoured in tether's own authorized_keys; key refused"))
        }
        ("tether-role", Some(v), Source::Tether) => {
            entry.role = match v.as_str() {
                "owner" => Role::Owner,
                "operator" => Role::Operator,
                "watcher" => Role::Watcher,
                other => return Err(format!("unknown tether-role {other:?}")),
            };
            Ok(())
        }
        ("tether-sessions", Some(v), Source::Tether) => {
            let globs: Vec<String> =
                v.split(',').map(str::trim).filter(|g| !g.is_empty()).map(str::to_owned).collect();
            entry.visibility = Visibility::only(globs);
            Ok(())
        }
        ("from", Some(v), _) => {
            entry.from = Some(v.split(',').map(|p| p.trim().to_owned()).collect());
            Ok(())
        }
        (opt, _, _) if IGNORED_OPTIONS.contains(&opt) => Ok(()),
        (opt @ ("command" | "restrict" | "no-pty"), _, _) => {
            Err(format!("option {opt} cannot be honoured by tether; key refused"))
        }
        (_, None, _) if matches!(lower.as_str(), "tether-role" | "tether-sessions" | "from") => {
            Err(format!("option {name} needs a value"))
        }
        _ => Err(format!("option {name} is not supported; key refused")),
    }
}

/// An option's name and value.
type KeyOption = (String, Option<String>);

/// Splits `opt,opt="v, with \" quotes" keytype base64 comment` into the
/// options and the rest.
fn split_options(line: &str) -> Result<(Vec<KeyOption>, &str), String> {
    let bytes = line.as_bytes();
    let mut options = Vec::new();
    let mut i = 0;
    loop {
        let start = i;
        while i < bytes.len() && !matches!(bytes[i], b'=' | b',' | b' ' | b'\t') {
            i += 1;
        }
        let name = line[start..i].to_owned();
        if name.is_empty() {
            return Err("malformed options".into());
        }
        let mut value = None;
        if bytes.get(i) == Some(&b'=') {
            i += 1;
            if bytes.get(i) != Some(&b'"') {
                return Err(format!("option {name}: value must be quoted"));
            }
            i += 1;
            let mut v = String::new();
            loop {
                match bytes.get(i) {
                    None => return Err(format!("option {name}: unterminated quote")),
                    Some(b'"') => break,
                    Some(b'\\') if bytes.get(i + 1) == Some(&b'"') => {
                        v.push('"');
                        i += 2;
                    }
                    Some(_) => {
                        let ch = line[i..].chars().next().unwrap_or('?');
                        v.push(ch);
                        i += ch.len_utf8();
                    }
                }
            }
            i += 1;
            value = Some(v);
        }
        options.push((name, value));
        match bytes.get(i) {
            Some(b',') => i += 1,
            Some(b' ' | b'\t') => break,
            _ => return Err("options are not followed by a key".into()),
        }
    }
    Ok((options, line[i..].trim_start()))
}

/// OpenSSH `from=` semantics for an address: a matching negated pattern
/// refuses, else any matching pattern allows. Patterns are addresses with
/// `*`/`?` wildcards, or CIDR blocks. Host names cannot match (tether does
/// no reverse lookups), so a name-only list refuses.
pub fn from_allows(patterns: &[String], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    };
    let text = ip.to_string();
    let mut allowed = false;
    for p in patterns {
        let (negated, pat) = match p.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, p.as_str()),
        };
        let hit = if pat.contains('/') {
            cidr_contains(pat, ip)
        } else {
            crate::client::access::glob_match(pat.as_bytes(), text.as_bytes())
        };
        if hit && negated {
            return false;
        }
        allowed |= hit;
    }
    allowed
}

fn cidr_contains(block: &str, ip: IpAddr) -> bool {
    let Some((net, bits)) = block.split_once('/') else { return false };
    let (Ok(net), Ok(bits)) = (net.parse::<IpAddr>(), bits.parse::<u32>()) else { return false };
    match (net, ip) {
        (IpAddr::V4(n), IpAddr::V4(a)) if bits <= 32 => {
            let mask = if bits == 0 { 0 } else { u32::MAX << (32 - bits) };
            u32::from(n) & mask == u32::from(a) & mask
        }
        (IpAddr::V6(n), IpAddr::V6(a)) if bits <= 128 => {
            let mask = if bits == 0 { 0 } else { u128::MAX << (128 - bits) };
            u128::from(n) & mask == u128::from(a) & mask
        }
        _ => false,
    }
}

/// The entry for `key` (compared by key material, not comment).
pub fn find<'a>(file: &'a KeyFile, key: &PublicKey) -> Option<&'a AuthorizedKey> {
    file.keys.iter().find(|k| k.key.key_data() == key.key_data())
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl alice@laptop";

    #[test]
    fn plain_key_is_an_owner() {
        let f = parse(KEY, Source::Tether);
        assert!(f.problems.is_empty(), "{:?}", f.problems);
        assert_eq!(f.keys[0].role, Role::Owner);
        assert_eq!(f.keys[0].comment, "alice@laptop");
    }

    #[test]
    fn tether_options_in_tether_file() {
        let text = format!("tether-role=\"watcher\",tether-sessions=\"mentee-*,shared\" {KEY}");
        let f = parse(&text, Source::Tether);
        let k = &f.keys[0];
        assert_eq!(k.role, Role::Watcher);
        assert!(k.visibility.allows(&"mentee-2".parse().unwrap()));
        assert!(!k.visibility.allows(&"prod".parse().unwrap()));
    }

    #[test]
    fn refusals_and_malformed_lines_do_not_hide_other_keys() {
        let text = [
            format!("command=\"/bin/false\" {KEY}"),
            format!("restrict {KEY}"),
            format!("no-pty {KEY}"),
            "ssh-ed25519 not-base64!".to_owned(),
            format!("tether-role=\"god\" {KEY}"),
            format!("bogus-option {KEY}"),
            format!("from=\"unterminated {KEY}"),
            format!("no-port-forwarding,no-agent-forwarding {KEY}"),
        ]
        .join("\n");
        let f = parse(&text, Source::Tether);
        assert_eq!(f.keys.len(), 1, "{:?}", f.problems);
        assert_eq!(f.keys[0].line, 8);
        assert_eq!(f.problems.len(), 7);
        assert!(f.problems[0].starts_with("line 1:"));
    }

    #[test]
    fn openssh_file_refuses_tether_options() {
        let f = parse(&format!("tether-role=\"watcher\" {KEY}"), Source::OpenSsh);
        assert!(f.keys.is_empty());
        let f = parse(&format!("from=\"127.0.0.1\" {KEY}"), Source::OpenSsh);
        assert_eq!(f.keys.len(), 1);
    }

    #[test]
    fn from_patterns() {
        let p = |s: &[&str]| s.iter().map(|x| (*x).to_owned()).collect::<Vec<_>>();
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(from_allows(&p(&["127.0.0.1"]), ip("127.0.0.1")));
        assert!(from_allows(&p(&["10.*"]), ip("10.1.2.3")));
        assert!(!from_allows(&p(&["10.*", "!10.0.0.5"]), ip("10.0.0.5")));
        assert!(from_allows(&p(&["192.168.0.0/16"]), ip("192.168.4.4")));
        assert!(!from_allows(&p(&["192.168.0.0/16"]), ip("192.169.0.1")));
        assert!(from_allows(&p(&["127.0.0.1"]), ip("::ffff:127.0.0.1")));
        assert!(!from_allows(&p(&["example.com"]), ip("1.2.3.4")));
    }
}

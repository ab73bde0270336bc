//! `config.toml`: every setting has a default, so no file is needed.
//!
//! Unknown keys and bad values are errors that name the file and the key:
//! a typo must not silently fall back to a default. Every key is documented
//! in `docs/CONFIG.md`.

use crate::Failure;
use anyhow::Result;
use serde::Deserialize;
use std::path::Path;

/// The whole configuration.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// The key that detaches an attached client, e.g. `ctrl-\` or `ctrl-]`.
    pub detach_key: DetachKeySpec,
    /// Scrollback kept by each keeper, counted in cells (columns × lines), so
    /// that memory stays bounded whatever the width.
    pub scrollback_cells: usize,
    /// `TERM` for jobs whose client does not say (e.g. `new -d`).
    pub default_term: String,
    /// Where `tether daemon` listens.
    pub listen: String,
    /// SSH connections served at once; more are closed at once.
    pub max_connections: usize,
    /// Channels open at once on one SSH connection.
    pub max_channels: usize,
    /// Seconds a connection may take to authenticate.
    pub auth_timeout_secs: u64,
    /// Keys a connection may try before it is closed.
    pub max_auth_attempts: usize,
    /// Connections one source address may open at once before it is
    /// throttled (a token bucket's size); a connection that logs in gives
    /// its token back. 0 turns the limit off.
    pub per_address_burst: u32,
    /// Connections a second one source address may open once its burst is
    /// spent (the bucket's refill rate).
    pub per_address_rate: u32,
    /// Whether sessions are recorded: `on` (default; `new --no-record` may
    /// turn it off), `off`, or `required` (`--no-record` is refused).
    pub recording: RecordingPolicy,
    /// Record input too (as with `new --record-input`).
    pub record_input: bool,
    /// A session whose command is the default shell (bash) writes marks
    /// around its commands, so that the keeper records each command
    /// (docs/COMMANDS.md); no rc file is changed.
    pub shell_integration: bool,
    /// Bytes per recording segment before rotating to the next file.
    pub segment_bytes: u64,
    /// Let read-only watchers' streams carry sequences that act on the
    /// viewer's machine (OSC 52 clipboard writes and the like). Off: they
    /// are removed.
    pub watcher_passthrough: bool,
    /// Let a job write an interactive client's clipboard (OSC 52, kitty's
    /// OSC 5522). Off, as tmux's default `set-clipboard external`.
    pub clipboard: bool,
    /// Let a job send files to an interactive client's machine (iTerm2's
    /// OSC 1337 `File=`, kitty's OSC 5113). Off.
    pub file_transfer: bool,
    /// Let a job's DCS `tmux;` passthrough reach an interactive client's
    /// terminal. Off, as tmux's default `allow-passthrough off`.
    pub passthrough: bool,
    /// The most memory `snapshot --memory` dumps, in bytes.
    pub snapshot_memory_limit: u64,
    /// `tether check` fails when the data directory has less free space.
    pub check_min_free_bytes: u64,
    /// The daemon's log level (`error`, `warn`, `info`, `debug`, `trace`);
    /// `RUST_LOG` overrides it.
    pub log_level: String,
    /// Where `tether archive` ships recordings (off when absent).
    pub archive: Option<ArchiveConfig>,
}

/// `[archive]` in config.toml (docs/ARCHIVE.md). Credentials never come
/// from here: the standard AWS variables (`AWS_ACCESS_KEY_ID`,
/// `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`).
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct ArchiveConfig {
    /// `s3://BUCKET/PREFIX` (the prefix may be empty).
    pub url: String,
    /// An S3-compatible server's address (`http://127.0.0.1:9000`); AWS
    /// when absent.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The bucket's region.
    #[serde(default)]
    pub region: Option<String>,
    /// Allows an `http://` endpoint (only for a loopback test server).
    #[serde(default)]
    pub allow_http: bool,
    /// Days a shipped, verified local copy is kept after its last change
    /// (0: never deleted).
    #[serde(default)]
    pub keep_local_days: u32,
}

impl ArchiveConfig {
    /// The bucket and the prefix (without slashes at either end) of `url`.
    ///
    /// # Errors
    ///
    /// `url` is not `s3://BUCKET[/PREFIX]`.
    pub fn bucket_and_prefix(&self) -> Result<(String, String), String> {
        let rest = self
            .url
            .strip_prefix("s3://")
            .ok_or_else(|| format!("archive url {:?} must start with s3://", self.url))?;
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        let valid = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '.';
        if bucket.len() < 3 || bucket.len() > 63 || !bucket.chars().all(valid) {
            return Err(format!("archive url {:?}: {bucket:?} is not a bucket name", self.url));
        }
        let prefix = prefix.trim_matches('/');
        if prefix.split('/').any(|p| p == "." || p == "..")
            || prefix.contains("//")
            || prefix.contains(|c: char| c.is_control())
        {
            return Err(format!("archive url {:?}: the prefix is not a plain path", self.url));
        }
        Ok((bucket.to_owned(), prefix.to_owned()))
    }
}

/// `recording` in config.toml.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordingPolicy {
    /// Record unless `--no-record`.
    On,
    /// Record only with... never.
    Off,
    /// Always record; `--no-record` is refused.
    Required,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            detach_key: DetachKeySpec(0x1c),
            // 10,000 lines of 120 columns: about 19 MB at 16 bytes a cell.
            scrollback_cells: 1_200_000,
            default_term: "xterm-256color".into(),
            listen: "127.0.0.1:2222".into(),
            max_connections: 256,
            max_channels: 16,
            auth_timeout_secs: 30,
            max_auth_attempts: 6,
            // ssh-audit's DHEat test wants fewer than 20 handshakes a second
            // from one address: 10 at once, then 5 a second, is 11 a second
            // over its 1.5 s test.
            per_address_burst: 10,
            per_address_rate: 5,
            recording: RecordingPolicy::On,
            record_input: false,
            shell_integration: true,
            segment_bytes: 64 << 20,
            watcher_passthrough: false,
            clipboard: false,
            file_transfer: false,
            passthrough: false,
            snapshot_memory_limit: 256 << 20,
            check_min_free_bytes: 256 << 20,
            log_level: "info".into(),
            archive: None,
        }
    }
}

/// The largest scrollback accepted: 20 million cells, about 320 MB.
pub const MAX_SCROLLBACK_CELLS: usize = 20_000_000;

impl Config {
    /// What a job may make an interactive client's terminal do beyond the
    /// screen.
    pub fn passthrough_for_clients(&self) -> crate::term::scan::Passthrough {
        crate::term::scan::Passthrough {
            clipboard: self.clipboard,
            file_transfer: self.file_transfer,
            tmux: self.passthrough,
        }
    }

    /// Loads `path`, or the defaults if it does not exist.
    ///
    /// # Errors
    ///
    /// The file exists but cannot be read, is not valid TOML, has an unknown
    /// key or a bad value (exit code 2).
    pub fn load(path: &Path) -> Result<Self> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Config::default()),
            Err(e) => {
                return Err(Failure::invalid(format!("cannot read {}: {e}", path.display())).into());
            }
        };
        Self::parse(&text).map_err(|e| Failure::invalid(format!("{}: {e}", path.display())).into())
    }

    /// Parses configuration text.
    ///
    /// # Errors
    ///
    /// A message naming the offending key.
    pub fn parse(text: &str) -> Result<Self, String> {
        let config: Config = toml::from_str(text).map_err(|e| e.message().to_owned())?;
        if config.scrollback_cells > MAX_SCROLLBACK_CELLS {
            return Err(format!("scrollback_cells is limited to {MAX_SCROLLBACK_CELLS}"));
        }
        if config.default_term.is_empty() || config.default_term.contains(char::is_whitespace) {
            return Err("default_term must be a non-empty terminal name".into());
        }
        if config.listen.parse::<std::net::SocketAddr>().is_err() {
            return Err(format!("listen {:?} is not an ADDRESS:PORT", config.listen));
        }
        let limits = [
            ("max_connections", config.max_connections, 100_000),
            ("max_channels", config.max_channels, 1024),
            ("auth_timeout_secs", config.auth_timeout_secs as usize, 3600),
            ("max_auth_attempts", config.max_auth_attempts, 100),
            ("per_address_rate", config.per_address_rate as usize, 100_000),
        ];
        if config.log_level.parse::<tracing::Level>().is_err() {
            return Err(format!(
                "log_level {:?}: use error, warn, info, debug or trace",
                config.log_level
            ));
        }
        // At most 256 MiB: the archive ships a segment whole, in one
        // request, and sets aside one over 512 MiB (a segment ends after
        // the line that reaches the limit, so it may pass it a little).
        if !(64 * 1024..=256 << 20).contains(&config.segment_bytes) {
            return Err("segment_bytes must be between 65536 and 268435456 (256 MiB)".into());
        }
        if config.per_address_burst > 100_000 {
            return Err("per_address_burst must be between 0 (no limit) and 100000".into());
        }
        for (key, value, max) in limits {
            if value == 0 || value > max {
                return Err(format!("{key} must be between 1 and {max}"));
            }
        }
        if let Some(archive) = &config.archive {
            archive.bucket_and_prefix()?;
            if archive.keep_local_days > 36_500 {
                return Err("archive keep_local_days must be between 0 (never) and 36500".into());
            }
            if let Some(endpoint) = &archive.endpoint {
                let http = endpoint.starts_with("http://");
                if !http && !endpoint.starts_with("https://") {
                    return Err(format!("archive endpoint {endpoint:?} must be an http(s):// URL"));
                }
                if http && !archive.allow_http {
                    return Err(format!(
                        "archive endpoint {endpoint:?} is plain http: set allow_http = true (loopback test servers only)"
                    ));
                }
            }
        }
        Ok(config)
    }
}

/// A detach key: one control byte, written `ctrl-X` (or `^X`) in the file,
/// or `none` to disable detaching by key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DetachKeySpec(pub u8);

impl DetachKeySpec {
    /// The value meaning "no detach key".
    pub const NONE: DetachKeySpec = DetachKeySpec(0);

    /// Parses `ctrl-\`, `ctrl-]`, `^A`, `none`.
    ///
    /// # Errors
    ///
    /// Anything that does not name a control key.
    pub fn parse(s: &str) -> Result<Self, String> {
        if s == "none" {
            return Ok(Self::NONE);
        }
        let rest = s
            .strip_prefix("ctrl-")
            .or_else(|| s.strip_prefix("C-"))
            .or_else(|| s.strip_prefix('^'))
            .ok_or_else(|| format!("detach_key {s:?}: expected ctrl-X, ^X or none"))?;
        match rest.as_bytes() {
            [c @ (b'@'..=b'_' | b'a'..=b'z' | b'?')] if *c != b'?' => {
                Ok(DetachKeySpec(c.to_ascii_uppercase() & 0x1f))
            }
            _ => Err(format!("detach_key {s:?}: {rest:?} is not a control key")),
        }
    }

    /// How the key is written, e.g. `Ctrl-\`.
    pub fn describe(self) -> String {
        if self == Self::NONE {
            return "no key".into();
        }
        format!("Ctrl-{}", char::from(self.0 | 0x40))
    }
}

impl<'de> Deserialize<'de> for DetachKeySpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        Self::parse(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(Config::parse("").unwrap(), Config::default());
    }

    #[test]
    fn detach_keys_parse() {
        let cases = [
            ("ctrl-\\", Some(0x1c)),
            ("ctrl-]", Some(0x1d)),
            ("^a", Some(0x01)),
            ("C-b", Some(0x02)),
            ("none", Some(0)),
            ("ctrl-1", None),
            ("x", None),
            ("ctrl-ab", None),
        ];
        for (text, want) in cases {
            assert_eq!(DetachKeySpec::parse(text).ok().map(|k| k.0), want, "{text}");
        }
        assert_eq!(DetachKeySpec(0x1c).describe(), "Ctrl-\\");
    }

    #[test]
    fn segments_stay_small_enough_to_ship_in_one_request() {
        assert!(Config::parse("segment_bytes = 65536").is_ok());
        assert!(Config::parse("segment_bytes = 268435456").is_ok());
        for bad in ["segment_bytes = 65535", "segment_bytes = 268435457"] {
            let err = Config::parse(bad).unwrap_err().to_string();
            assert!(err.contains("segment_bytes"), "{bad}: {err}");
        }
    }

    #[test]
    fn the_archive_table_is_checked() {
        let c = Config::parse("[archive]\nurl = \"s3://logs-1/fleet/a/\"\n").unwrap();
        let a = c.archive.unwrap();
        assert_eq!(a.bucket_and_prefix().unwrap(), ("logs-1".into(), "fleet/a".into()));
        assert_eq!(a.keep_local_days, 0);
        for bad in [
            "[archive]\nurl = \"logs\"\n",
            "[archive]\nurl = \"s3://Bad_Bucket\"\n",
            "[archive]\nurl = \"s3://logs/../x\"\n",
            "[archive]\nurl = \"s3://logs\"\nendpoint = \"http://127.0.0.1:9000\"\n",
            "[archive]\nurl = \"s3://logs\"\nendpoint = \"ftp://x\"\n",
            "[archive]\nurl = \"s3://logs\"\naccess_key = \"AKIA\"\n",
            "[archive]\nurl = \"s3://logs\"\nkeep_local_days = 40000\n",
        ] {
            assert!(Config::parse(bad).is_err(), "{bad}");
        }
        let ok = "[archive]\nurl = \"s3://logs\"\nendpoint = \"http://127.0.0.1:9000\"\nallow_http = true\n";
        assert!(Config::parse(ok).is_ok());
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused() {
        assert!(Config::parse("detach_kye = 'ctrl-a'").unwrap_err().contains("detach_kye"));
        assert!(Config::parse("detach_key = 'q'").is_err());
        assert!(Config::parse("scrollback_cells = 999999999999").is_err());
        let c = Config::parse("detach_key = 'ctrl-]'\nscrollback_cells = 5000").unwrap();
        assert_eq!((c.detach_key.0, c.scrollback_cells), (0x1d, 5000));
    }
}

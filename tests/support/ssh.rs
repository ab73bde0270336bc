//! A running `tether daemon` and the real OpenSSH client, isolated: fresh
//! keys, a known_hosts file holding the daemon's key, strict checking, no
//! agent, no user config.

use super::{TIMEOUT, TestEnv, kill9, run_with_timeout};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// A daemon started for one test; killed on drop.
pub struct Daemon {
    child: Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
}

impl Daemon {
    /// Starts `tether daemon --foreground` on `listen` and waits for
    /// "listening on". Its log goes to [`daemon_log`].
    pub fn start(env: &TestEnv, listen: &str) -> Daemon {
        let mut cmd = env.cmd(&["daemon", "--foreground", "--listen", listen]);
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(env.root().join("daemon.log"))
            .unwrap();
        let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(stdout).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = rx.recv_timeout(TIMEOUT).expect("the daemon to listen");
        let addr = line.trim().strip_prefix("listening on ").unwrap_or_else(|| panic!("{line:?}"));
        let port = addr.rsplit(':').next().unwrap().parse().unwrap();
        Daemon { child, port }
    }

    /// The daemon's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its threads and open file descriptors now.
    pub fn threads_and_fds(&self) -> (usize, usize) {
        let count = |what: &str| {
            std::fs::read_dir(format!("/proc/{}/{what}", self.child.id()))
                .map(|d| d.count())
                .unwrap_or(0)
        };
        (count("task"), count("fd"))
    }

    /// SIGKILLs the daemon.
    pub fn kill9(&mut self) {
        kill9(self.child.id());
        let _ = self.child.wait();
    }

    /// Waits for the daemon to exit by itself.
    pub fn wait(&mut self) -> std::process::ExitStatus {
        let deadline = std::time::Instant::now() + TIMEOUT;
        loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                return s;
            }
            assert!(std::time::Instant::now() < deadline, "the daemon did not exit");
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        kill9(self.child.id());
        let _ = self.child.wait();
    }
}

/// A client key pair, made with ssh-keygen.
pub struct Key {
    /// The private key file.
    pub path: PathBuf,
}

impl Key {
    /// A new Ed25519 key with `comment`, in `dir`.
    pub fn new(dir: &Path, name: &str, comment: &str) -> Key {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", comment, "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
        Key { path }
    }

    /// A new 3072-bit RSA key with `comment`, in `dir`.
    pub fn new_rsa(dir: &Path, name: &str, comment: &str) -> Key {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join(name);
        let out = Command::new("ssh-keygen")
            .args(["-q", "-t", "rsa", "-b", "3072", "-N", "", "-C", comment, "-f"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success(), "ssh-keygen: {}", String::from_utf8_lossy(&out.stderr));
        Key { path }
    }

    /// The `.pub` line.
    pub fn public(&self) -> String {
        std::fs::read_to_string(self.path.with_extension("pub")).unwrap().trim().to_owned()
    }

    /// `SHA256:…`.
    pub fn fingerprint(&self) -> String {
        let out = Command::new("ssh-keygen")
            .arg("-lf")
            .arg(self.path.with_extension("pub"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().split_whitespace().nth(1).unwrap().to_owned()
    }
}

/// What the daemons of `env` logged (their stderr).
pub fn daemon_log(env: &TestEnv) -> String {
    std::fs::read_to_string(env.root().join("daemon.log")).unwrap_or_default()
}

/// The daemon's public host key of a kind (`ed25519`, `rsa`).
pub fn host_key(env: &TestEnv, kind: &str) -> PathBuf {
    env.root().join(format!("data/tether/host_{kind}_key.pub"))
}

/// The daemon's Ed25519 host key as a known_hosts line for `port`.
pub fn known_hosts_line(env: &TestEnv, port: u16) -> String {
    known_hosts_line_of(env, port, "ed25519")
}

/// The daemon's host key of a kind as a known_hosts line for `port`.
pub fn known_hosts_line_of(env: &TestEnv, port: u16, kind: &str) -> String {
    let public = std::fs::read_to_string(host_key(env, kind)).unwrap();
    format!("[127.0.0.1]:{port} {}\n", public.trim())
}

/// Writes tether's authorized_keys.
pub fn authorize(env: &TestEnv, lines: &[String]) {
    std::fs::create_dir_all(env.config_dir()).unwrap();
    std::fs::write(env.config_dir().join("authorized_keys"), lines.join("\n") + "\n").unwrap();
}

/// The real `ssh` client, isolated.
pub struct Ssh {
    key: PathBuf,
    known_hosts: PathBuf,
    port: u16,
}

impl Ssh {
    /// A client using `key` against `daemon`, trusting exactly its host key.
    pub fn new(env: &TestEnv, daemon: &Daemon, key: &Key) -> Ssh {
        let known_hosts = env.root().join(format!("known_hosts_{}", daemon.port));
        std::fs::write(&known_hosts, known_hosts_line(env, daemon.port)).unwrap();
        Ssh { key: key.path.clone(), known_hosts, port: daemon.port }
    }

    /// The argv of `ssh [extra…] 127.0.0.1 [command…]`.
    pub fn argv(&self, extra: &[&str], command: &[&str]) -> Vec<String> {
        let mut v: Vec<String> = vec![
            "ssh".into(),
            "-F".into(),
            "/dev/null".into(),
            "-o".into(),
            format!("UserKnownHostsFile={}", self.known_hosts.display()),
            "-o".into(),
            "StrictHostKeyChecking=yes".into(),
            "-o".into(),
            "BatchMode=yes".into(),
            "-o".into(),
            "IdentitiesOnly=yes".into(),
            "-o".into(),
            "ConnectTimeout=10".into(),
            "-i".into(),
            self.key.display().to_string(),
            "-p".into(),
            self.port.to_string(),
        ];
        v.extend(extra.iter().map(|s| (*s).to_owned()));
        v.push("127.0.0.1".into());
        v.extend(command.iter().map(|s| (*s).to_owned()));
        v
    }

    /// Runs `ssh 127.0.0.1 COMMAND…` to completion.
    pub fn run(&self, env: &TestEnv, command: &[&str]) -> Output {
        self.run_with(env, &[], command)
    }

    /// Runs ssh with extra options.
    pub fn run_with(&self, env: &TestEnv, extra: &[&str], command: &[&str]) -> Output {
        let argv = self.argv(extra, command);
        let mut cmd = Command::new(&argv[0]);
        cmd.args(&argv[1..]).env_clear().envs(env.envs()).stdin(Stdio::null());
        run_with_timeout(cmd, TIMEOUT)
    }

    /// Runs and returns stdout, asserting success.
    pub fn ok(&self, env: &TestEnv, command: &[&str]) -> String {
        let out = self.run(env, command);
        assert!(
            out.status.success(),
            "ssh {command:?}: {:?} {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

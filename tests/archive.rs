//! `tether archive` against a real S3-protocol server: moto's, from PyPI
//! (`moto_server`), on loopback, read back with boto3 (tests/py/s3.py), an
//! S3 client that is not tether's.

use crate::support::*;
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant};

const BUCKET: &str = "tether-archive";
const KEY_ID: &str = "tether-test";
const SECRET: &str = "tether-test-secret";

/// A moto S3 server on a free loopback port, killed (by PID) when dropped.
struct Moto {
    child: Child,
    endpoint: String,
}

impl Moto {
    fn start() -> Moto {
        Moto::start_on(free_port())
    }

    /// A server on `port`.
    fn start_on(port: u16) -> Moto {
        Moto::start_with(port, None)
    }

    /// A server that checks credentials and IAM policies once `free`
    /// requests have been served (those set it up).
    fn checking_credentials(free: u32) -> Moto {
        Moto::start_with(free_port(), Some(free))
    }

    fn start_with(port: u16, free: Option<u32>) -> Moto {
        let mut cmd = Command::new("moto_server");
        if let Some(free) = free {
            cmd.env("INITIAL_NO_AUTH_ACTION_COUNT", free.to_string());
        }
        let child = cmd
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server is missing: python3 -m pip install 'moto[server]'");
        let moto = Moto { child, endpoint: format!("http://127.0.0.1:{port}") };
        wait_until_for(Duration::from_secs(60), "moto_server to listen", || {
            std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
        });
        moto
    }

    /// tests/py/s3.py against this server.
    fn s3(&self, args: &[&str]) -> Vec<u8> {
        let out = self.s3_as(None, args);
        assert!(out.status.success(), "s3.py {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        out.stdout
    }

    /// tests/py/s3.py with credentials `keys` (key id, secret), if given.
    fn s3_as(&self, keys: Option<(&str, &str)>, args: &[&str]) -> std::process::Output {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/py/s3.py");
        let mut cmd = Command::new("python3");
        cmd.arg(script).arg(&self.endpoint).args(args);
        if let Some((id, secret)) = keys {
            cmd.env("AWS_ACCESS_KEY_ID", id).env("AWS_SECRET_ACCESS_KEY", secret);
        }
        run_with_timeout(cmd, TIMEOUT)
    }

    fn objects(&self) -> Vec<Value> {
        serde_json::from_slice(&self.s3(&["list", BUCKET])).unwrap()
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Makes the recordings' seek index and keyframes look a minute old (they
/// ship once unchanged for a while).
fn age_sidecars(env: &TestEnv) {
    let dir = env.root().join("data/tether/recordings");
    let then = std::time::SystemTime::now() - Duration::from_secs(60);
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".cast.idx") || name.ends_with(".cast.keys") {
            std::fs::File::options()
                .write(true)
                .open(entry.path())
                .unwrap()
                .set_modified(then)
                .unwrap();
        }
    }
}

/// The one line a command wrote to stderr.
fn one_line(out: &std::process::Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    stderr
}

/// A loopback port nothing listens on (yet).
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// A test installation whose config.toml archives to `endpoint`.
fn archiving_env(endpoint: &str) -> TestEnv {
    let env = TestEnv::new();
    std::fs::create_dir_all(env.config_dir()).unwrap();
    let config = format!(
        "[archive]\nurl = \"s3://{BUCKET}/fleet\"\nendpoint = \"{endpoint}\"\nallow_http = true\n"
    );
    std::fs::write(env.config_dir().join("config.toml"), config).unwrap();
    env
}

/// `tether ARGS` with the test credentials.
fn with_keys(env: &TestEnv, args: &[&str]) -> Command {
    let mut c = env.cmd(args);
    c.env("AWS_ACCESS_KEY_ID", KEY_ID).env("AWS_SECRET_ACCESS_KEY", SECRET);
    c
}

fn sha256_hex(data: &[u8]) -> String {
    Sha256::digest(data).iter().map(|b| format!("{b:02x}")).collect()
}

/// The recording files of the test installation.
fn recording_files(env: &TestEnv) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(env.root().join("data/tether/recordings"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cast"))
        .collect();
    files.sort();
    files
}

fn finished_session(env: &TestEnv, name: &str) -> PathBuf {
    env.start(name, &["sh", "-c", "echo hello from the job; sleep 1.2; echo bye"]);
    env.ok(&["wait", name]);
    let files = recording_files(env);
    assert_eq!(files.len(), 1, "{files:?}");
    files[0].clone()
}

#[test]
fn a_finished_recording_and_its_checkpoints_are_shipped_once_and_verified() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    let file = finished_session(&env, "shipped");
    let local = std::fs::read(&file).unwrap();
    assert_eq!(env.session("shipped")["archived"], "pending");

    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert_eq!(env.session("shipped")["archived"], "done");

    let objects = moto.objects();
    let base = file.file_name().unwrap().to_str().unwrap();
    let segment = objects
        .iter()
        .find(|o| o["key"].as_str().unwrap().ends_with(&format!("/recordings/{base}/{base}.zst")))
        .unwrap_or_else(|| panic!("no segment object in {objects:?}"));
    assert!(segment["key"].as_str().unwrap().starts_with("fleet/"), "under the prefix");
    assert_eq!(segment["sha256"], sha256_hex(&local), "the SHA-256 of the local file");
    let packed = moto.s3(&["get", BUCKET, segment["key"].as_str().unwrap()]);
    assert_eq!(
        zstd::stream::decode_all(&packed[..]).unwrap(),
        local,
        "the archived copy is the file"
    );

    // A witness object for each checkpoint and the end, holding the line.
    let signed: Vec<&[u8]> =
        local.split(|b| *b == b'\n').filter(|l| l.starts_with(b"#tether:")).collect();
    let witness: Vec<&Value> =
        objects.iter().filter(|o| o["key"].as_str().unwrap().contains("/witness/")).collect();
    assert_eq!(witness.len(), signed.len(), "{objects:?}");
    for w in &witness {
        let key = w["key"].as_str().unwrap();
        let body = moto.s3(&["get", BUCKET, key]);
        assert!(signed.contains(&&body[..]), "a witness holds a line of the file");
        // …the line its name says: segment 0, that checkpoint or the end.
        let text = String::from_utf8(body).unwrap();
        let name = key.rsplit('/').next().unwrap();
        if name == "000000-end" {
            assert!(text.starts_with("#tether:end "), "{text}");
        } else {
            let seq: u64 = name.strip_prefix("000000-").unwrap().parse().unwrap();
            assert!(text.starts_with(&format!("#tether:checkpoint {{\"seq\":{seq},")), "{text}");
        }
    }

    // Nothing twice; nothing pending; nothing local touched.
    let again = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("shipped 0 objects"));
    assert_eq!(moto.objects().len(), objects.len());
    let status: Value = serde_json::from_str(&env.ok(&["archive", "--status", "--json"])).unwrap();
    assert_eq!(status["pending_witness"], 0, "{status}");
    assert_eq!(status["pending_segments"], 0, "{status}");
    assert_eq!(status["shipped"], objects.len(), "{status}");
    assert_eq!(std::fs::read(&file).unwrap(), local);
    // The journal keeps no checkpoint of a shipped segment (it grows with
    // segments, not with seconds), yet nothing was shipped twice.
    let journal = std::fs::read_to_string(env.root().join("state/tether/archive/journal")).unwrap();
    let kept: Vec<&str> = journal.lines().filter(|l| l.contains("/witness/")).collect();
    assert!(kept.iter().all(|l| l.contains("-end\"")), "{journal}");
    assert!(journal.starts_with("{\"compacted\":"), "{journal}");
    let out = run_with_timeout(with_keys(&env, &["check", "--json"]), TIMEOUT);
    let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
    let archive =
        checks["checks"].as_array().unwrap().iter().find(|c| c["name"] == "archive").unwrap();
    assert_eq!(archive["ok"], true, "{archive}");
}

#[test]
fn the_uploader_witnesses_checkpoints_while_the_session_runs_and_resumes_after_kill_9() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    let mut uploader = Guard(
        with_keys(&env, &["archive"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    env.start("live", &["sh", "-c", "while :; do echo tick; sleep 0.3; done"]);
    // Checkpoints are written every second while output flows; each is
    // witnessed within seconds, while the session runs.
    let started = Instant::now();
    wait_until_for(Duration::from_secs(20), "three checkpoints witnessed", || {
        moto.objects().iter().filter(|o| o["key"].as_str().unwrap().contains("/witness/")).count()
            >= 3
    });
    eprintln!("three checkpoints witnessed after {:?}", started.elapsed());
    assert!(env.session("live")["state"] == "running");

    // kill -9, more checkpoints meanwhile, then a new uploader: it skips
    // nothing (every line of the finished file is witnessed) and writes
    // nothing twice (keys are unique; the journal and the read-back agree).
    kill9(uploader.0.id());
    let _ = uploader.0.wait();
    std::thread::sleep(Duration::from_millis(2500));
    env.ok(&["kill", "live"]);
    // (`wait` exits with the job's status: killed by SIGHUP.)
    env.run(&["wait", "live"]);
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let file = recording_files(&env).remove(0);
    let local = std::fs::read(&file).unwrap();
    let signed = local.split(|b| *b == b'\n').filter(|l| l.starts_with(b"#tether:")).count();
    let objects = moto.objects();
    let witnessed =
        objects.iter().filter(|o| o["key"].as_str().unwrap().contains("/witness/")).count();
    assert_eq!(witnessed, signed, "every checkpoint and the end, once");
    assert!(objects.iter().any(|o| o["sha256"] == sha256_hex(&local)), "the segment, whole");
}

/// A child process killed (by PID) when dropped.
struct Guard(Child);

impl Drop for Guard {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn a_bucket_that_cannot_be_used_is_named_in_one_line_and_nothing_local_changes() {
    let moto = Moto::start();
    let env = archiving_env(&moto.endpoint);
    let file = finished_session(&env, "local");
    let before = std::fs::read(&file).unwrap();
    // No bucket.
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(6));
    let msg = one_line(&out);
    assert!(msg.contains("does not exist") && msg.contains(BUCKET), "{msg}");
    // No credentials.
    let out = env.run(&["archive", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(one_line(&out).contains("AWS_ACCESS_KEY_ID"));
    // Nobody listening.
    let closed = free_port();
    let env2 = archiving_env(&format!("http://127.0.0.1:{closed}"));
    std::fs::create_dir_all(env2.root().join("data/tether/recordings")).unwrap();
    let out = run_with_timeout(with_keys(&env2, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(6));
    let msg = one_line(&out);
    assert!(msg.contains("cannot reach") && msg.contains(&closed.to_string()), "{msg}");
    // Status names the last error; the recording is as it was.
    let status: Value = serde_json::from_str(&env.ok(&["archive", "--status", "--json"])).unwrap();
    assert!(status["last_pass"]["errors"][0].as_str().unwrap().contains("does not exist"));
    assert!(status["pending_segments"] == 1, "{status}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    // A checkpoint that has waited more than a minute fails `check`.
    let old = file.with_file_name("old-20200101T000000Z.cast");
    std::fs::write(&old, "{}\n#tether:checkpoint {\"seq\":1,\"wall\":\"2020-01-01T00:00:05Z\"}\n")
        .unwrap();
    let out = run_with_timeout(with_keys(&env, &["check", "--json"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(1));
    let checks: Value = serde_json::from_slice(&out.stdout).unwrap();
    let archive =
        checks["checks"].as_array().unwrap().iter().find(|c| c["name"] == "archive").unwrap();
    assert_eq!(archive["ok"], false, "{archive}");
    assert!(archive["detail"].as_str().unwrap().contains("lags"), "{archive}");
}

/// Changes one byte of the job's output in `file` and signs every
/// checkpoint again with the host's own key, as a job of the same user
/// could: the result verifies locally.
fn rewrite_and_resign(file: &Path, key_file: &Path) {
    use tether_proto::record::chain::Chain;
    use tether_proto::record::v3::encode_checkpoint;
    use tether_proto::record::{CHECKPOINT_PREFIX, Checkpoint, END_PREFIX, SIG_NAMESPACE, base64};
    let key = tether::signing::SigningKey::load_or_create(key_file).unwrap();
    let text = std::fs::read_to_string(file).unwrap();
    let text = text.replacen("hello from the job", "jello from the job", 1);
    let mut lines = text.split('\n');
    let header = lines.next().unwrap();
    let session = serde_json::from_str::<Value>(header).unwrap()["tether"]["session"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut chain = Chain::start(header.as_bytes());
    let mut out = vec![header.to_owned()];
    for line in lines {
        let (json, end) =
            match (line.strip_prefix(CHECKPOINT_PREFIX), line.strip_prefix(END_PREFIX)) {
                (Some(j), _) => (j, false),
                (_, Some(j)) => (j, true),
                _ => {
                    if !line.is_empty() {
                        chain.push(line.as_bytes());
                    }
                    out.push(line.to_owned());
                    continue;
                }
            };
        let mut cp: Checkpoint = serde_json::from_str(json).unwrap();
        let link = chain.checkpoint();
        (cp.lines, cp.count, cp.set, cp.hash) = (link.lines, link.count, link.set, link.hash);
        let message = cp.message(&session, end);
        cp.sig =
            base64::encode(&key.sshsig(SIG_NAMESPACE, tether::signing::SigHash::Sha256, &message));
        out.push(encode_checkpoint(&cp, end));
    }
    std::fs::write(file, out.join("\n")).unwrap();
}

#[test]
fn a_recording_rewritten_and_re_signed_on_the_host_is_reported_rewritten() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    let file = finished_session(&env, "audited");
    let path = file.display().to_string();
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run_with_timeout(with_keys(&env, &["verify", &path]), TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("checkpoints match the archive"), "{text}");

    // The job's user can also drop the session record, which names the
    // recording's signed end.
    env.ok(&["rm", "audited"]);
    rewrite_and_resign(&file, &env.root().join("data/tether/signing_ed25519_key"));
    // Without the archive, the rewrite is invisible: it verifies.
    let config = env.config_dir().join("config.toml");
    let archive_config = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, "").unwrap();
    let out = env.run(&["verify", &path]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    // With it, the witness tells.
    std::fs::write(&config, archive_config).unwrap();
    let out = run_with_timeout(with_keys(&env, &["verify", &path, "--json"]), TIMEOUT);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(1), "{report}");
    assert_eq!(report["status"], "rewritten", "{report}");
    let differs = report["witness"]["first_differs"].as_str().unwrap();
    assert!(differs.contains("segment 0 checkpoint"), "{differs}");

    // The bucket still has it as it was: listed with every host's
    // recordings, and intact when verified from there.
    let out = run_with_timeout(with_keys(&env, &["ls", "--archive", "--json"]), TIMEOUT);
    let listed: Value = serde_json::from_slice(&out.stdout).unwrap();
    let entry = listed
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["session"] == "audited")
        .unwrap_or_else(|| panic!("{listed}"));
    assert_eq!(entry["status"], "ended", "{entry}");
    assert_eq!(entry["segments"], 1);
    let url = entry["url"].as_str().unwrap();
    let host = entry["host"].as_str().unwrap();
    let out = run_with_timeout(with_keys(&env, &["ls", "--archive", "--host", host]), TIMEOUT);
    assert!(String::from_utf8_lossy(&out.stdout).contains("audited"));
    let out =
        run_with_timeout(with_keys(&env, &["ls", "--archive", "--host", "elsewhere"]), TIMEOUT);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "nothing archived");
    let out = run_with_timeout(with_keys(&env, &["verify", url]), TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{text}{}", String::from_utf8_lossy(&out.stderr));
    // And it is read from there as from a file: grep across the fleet,
    // export, replay.
    let out =
        run_with_timeout(with_keys(&env, &["grep", "hello from the job", "--archive"]), TIMEOUT);
    let found = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(0), "{found}{}", String::from_utf8_lossy(&out.stderr));
    assert!(found.starts_with("audited\t") && found.contains("hello from the job"), "{found}");
    let out = run_with_timeout(with_keys(&env, &["grep", "jello", "--archive"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "the rewrite is only local");
    let grep_on = |h: &str| {
        let args = ["grep", "hello from the job", "--archive", "--host", h];
        run_with_timeout(with_keys(&env, &args), TIMEOUT).status.code()
    };
    assert_eq!(grep_on(host), Some(0), "--host names a host in the bucket");
    assert_eq!(grep_on("elsewhere"), Some(1));
    let out = run_with_timeout(with_keys(&env, &["export", url, "--format", "txt"]), TIMEOUT);
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello from the job"));
    let out = run_with_timeout(with_keys(&env, &["replay", url, "--at", "+0.4s"]), TIMEOUT);
    assert!(String::from_utf8_lossy(&out.stdout).contains("hello from the job"), "{out:?}");
    assert!(
        text.contains("hello from the job") || text.contains("checkpoints match the archive"),
        "{text}"
    );
}

#[test]
fn an_object_already_in_the_bucket_is_never_overwritten() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    let file = finished_session(&env, "planted");
    let base = file.file_name().unwrap().to_str().unwrap().to_owned();
    // Ship once to learn the keys, then plant other content under a key
    // of a second recording before its uploader gets there.
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0));
    let key = moto
        .objects()
        .into_iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .find(|k| k.ends_with("/000000-end"))
        .unwrap()
        .replace(&base, "second-20300101T000000Z.cast");
    moto.s3(&["put", BUCKET, &key, "planted by someone else"]);
    let second = file.with_file_name("second-20300101T000000Z.cast");
    let text = std::fs::read_to_string(&file).unwrap().replace("\"shipped\"", "\"second\"");
    std::fs::write(&second, text).unwrap();
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("conflict") && stderr.contains(&key), "{stderr}");
    assert_eq!(moto.s3(&["get", BUCKET, &key]), b"planted by someone else", "not overwritten");
    // The rest of that recording went, and the second segment waits for
    // its signed lines.
    let status: Value = serde_json::from_str(&env.ok(&["archive", "--status", "--json"])).unwrap();
    assert_eq!(status["pending_witness"], 1, "{status}");
}

#[test]
fn closed_segments_ship_while_the_session_runs_and_a_lost_one_ships_whole() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    let config = env.config_dir().join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text = format!("segment_bytes = 65536\n{text}");
    std::fs::write(&config, text).unwrap();
    // About 300 KB of output: several segments; then it waits.
    env.start("big", &["sh", "-c", "seq 1 60000; echo BIG-DONE; exec sleep 600"]);
    env.wait_text("big", "BIG-DONE");
    wait_until("several segments", || recording_files(&env).len() >= 3);
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let files = recording_files(&env);
    let segments = |moto: &Moto| {
        moto.objects()
            .into_iter()
            .filter(|o| {
                let key = o["key"].as_str().unwrap();
                key.contains("/recordings/") && key.ends_with(".cast.zst")
            })
            .count()
    };
    // Every closed segment, not the one still being written.
    assert_eq!(segments(&moto), files.len() - 1, "{files:?}");
    assert_eq!(env.session("big")["archived"], "partial");
    // The keeper dies without an end: its last segment is closed for good.
    let keeper = env.session("big")["keeper_pid"].as_u64().unwrap() as u32;
    kill9(keeper);
    wait_until("the session to be lost", || env.session("big")["state"] == "lost");
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let files = recording_files(&env);
    assert_eq!(segments(&moto), files.len());
    assert_eq!(env.session("big")["archived"], "done");
    for f in &files {
        let sha = sha256_hex(&std::fs::read(f).unwrap());
        assert!(
            moto.objects().iter().any(|o| o["sha256"] == sha),
            "{} not archived whole",
            f.display()
        );
    }
}

#[test]
fn evidence_bundles_and_the_audit_log_are_shipped_and_a_cut_log_is_named() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    env.start("incident", &["sh", "-c", "echo evidence; exec sleep 600"]);
    env.wait_text("incident", "evidence");
    let bundle = PathBuf::from(env.ok(&["snapshot", "incident"]).trim());
    let audit = env.state_dir().join("audit.jsonl");
    let first = "{\"event\":\"login\",\"n\":1}\n{\"event\":\"attach\",\"n\":2}\n";
    std::fs::write(&audit, first).unwrap();
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));

    // Every file of the bundle, its signature among them, as it is locally.
    let name = bundle.file_name().unwrap().to_str().unwrap();
    let keys: Vec<String> =
        moto.objects().iter().map(|o| o["key"].as_str().unwrap().to_owned()).collect();
    for file in ["manifest.json", "manifest.sig"] {
        let key = keys
            .iter()
            .find(|k| k.ends_with(&format!("/evidence/{name}/{file}.zst")))
            .unwrap_or_else(|| panic!("{file} of {name} not in {keys:?}"));
        let packed = moto.s3(&["get", BUCKET, key]);
        let local = std::fs::read(bundle.join(file)).unwrap();
        assert_eq!(zstd::stream::decode_all(&packed[..]).unwrap(), local);
    }
    // The audit log in chunks named by their byte offsets.
    let chunk = |start: usize, end: usize| {
        let name = format!("/audit/{start:016}-{end:016}.jsonl");
        let objects = moto.objects();
        objects.iter().map(|o| o["key"].as_str().unwrap().to_owned()).find(|k| k.ends_with(&name))
    };
    let key = chunk(0, first.len()).expect("the audit log's first chunk");
    assert_eq!(moto.s3(&["get", BUCKET, &key]), first.as_bytes());
    let more = "{\"event\":\"detach\",\"n\":3}\n";
    std::fs::write(&audit, format!("{first}{more}")).unwrap();
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0));
    let key = chunk(first.len(), first.len() + more.len()).expect("the next chunk");
    assert_eq!(moto.s3(&["get", BUCKET, &key]), more.as_bytes());
    // A log cut short is named, not shipped over what was.
    std::fs::write(&audit, "{\"event\":\"nothing happened\"}\n").unwrap();
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("audit log") && stderr.contains("cut or rewritten"), "{stderr}");
}

/// A TCP proxy on loopback in front of `upstream` that answers one
/// connection in five with 503 and cuts about one in three of the others
/// after a random number of bytes, either way (with `faults`; without, it
/// only counts).
struct CuttingProxy {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Connections cut or answered 503 so far.
    cuts: std::sync::Arc<AtomicU64>,
    /// Bytes passed from the server to its clients so far.
    down: std::sync::Arc<AtomicU64>,
    /// Bytes passed from clients to the server so far.
    up: std::sync::Arc<AtomicU64>,
    /// The connections open: all cut when the proxy is dropped.
    open: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
}

impl CuttingProxy {
    fn start(upstream: u16) -> CuttingProxy {
        CuttingProxy::start_with(upstream, true)
    }

    fn start_with(upstream: u16, faults: bool) -> CuttingProxy {
        CuttingProxy::start_on(0, upstream, faults, None)
    }

    /// A proxy on `port` (0: any) that passes at most `up_rate` bytes a
    /// second to the server, if given (a slow uplink).
    fn start_on(port: u16, upstream: u16, faults: bool, up_rate: Option<u64>) -> CuttingProxy {
        use std::io::{Read, Write};
        use std::sync::atomic::{AtomicBool, Ordering};
        let listener = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
        let port = listener.local_addr().unwrap().port();
        listener.set_nonblocking(true).unwrap();
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let cuts = std::sync::Arc::new(AtomicU64::new(0));
        let counted = cuts.clone();
        let down = std::sync::Arc::new(AtomicU64::new(0));
        let passed = down.clone();
        let up = std::sync::Arc::new(AtomicU64::new(0));
        let sent_up = up.clone();
        let open = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let live = open.clone();
        let seed = std::sync::Arc::new(AtomicU64::new(0x9e37_79b9_7f4a_7c15));
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(5));
                    continue;
                };
                let _ = client.set_nonblocking(false);
                let Ok(server) = std::net::TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                if let (Ok(c), Ok(s)) = (client.try_clone(), server.try_clone()) {
                    live.lock().unwrap().extend([c, s]);
                }
                // xorshift: which connections are cut, and where.
                let mut x = seed.fetch_add(0x2545_f491_4f6c_dd1d, Ordering::Relaxed);
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // One connection in five is answered 503 at once (a server
                // that is overloaded); one in three of the rest is cut.
                if faults && x % 5 == 1 {
                    let mut client = client;
                    let mut request = [0u8; 4096];
                    let _ = client.set_read_timeout(Some(Duration::from_secs(2)));
                    let _ = client.read(&mut request);
                    let _ = client.write_all(
                        b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                    );
                    counted.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let cut_after =
                    if faults && x.is_multiple_of(3) { Some((x >> 8) % 4096) } else { None };
                for (mut from, mut to, downward) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap(), false),
                    (server.try_clone().unwrap(), client.try_clone().unwrap(), true),
                ] {
                    let counted = counted.clone();
                    let passed = passed.clone();
                    let sent_up = sent_up.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 8192];
                        let mut sent = 0u64;
                        loop {
                            let n = match from.read(&mut buf) {
                                Ok(0) | Err(_) => break,
                                Ok(n) => n,
                            };
                            if cut_after.is_some_and(|c| sent + n as u64 > c) {
                                counted.fetch_add(1, Ordering::Relaxed);
                                break;
                            }
                            if to.write_all(&buf[..n]).is_err() {
                                break;
                            }
                            sent += n as u64;
                            if downward {
                                passed.fetch_add(n as u64, Ordering::Relaxed);
                            } else {
                                sent_up.fetch_add(n as u64, Ordering::Relaxed);
                                if let Some(rate) = up_rate {
                                    // The uplink's pace, not a wait for a condition.
                                    std::thread::sleep(Duration::from_micros(
                                        n as u64 * 1_000_000 / rate,
                                    ));
                                }
                            }
                        }
                        let _ = from.shutdown(std::net::Shutdown::Both);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        });
        CuttingProxy { port, stop, cuts, down, up, open }
    }
}

impl Drop for CuttingProxy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
        // The listener closes within a few milliseconds (the accept loop
        // looks at `stop` every 5 ms); wait until the port refuses.
        wait_until("the proxy to stop listening", || {
            std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err()
        });
    }
}

/// Waits until the uploader has nothing pending and every recording file
/// is in the bucket, whole.
fn wait_all_shipped(env: &TestEnv, moto: &Moto, within: Duration) {
    wait_until_for(within, "everything shipped", || {
        let status: Value = match serde_json::from_str(&env.ok(&["archive", "--status", "--json"]))
        {
            Ok(v) => v,
            Err(_) => return false,
        };
        if status["pending_witness"] != 0 || status["pending_segments"] != 0 {
            return false;
        }
        let objects = moto.objects();
        recording_files(env).iter().all(|f| {
            let sha = sha256_hex(&std::fs::read(f).unwrap());
            objects.iter().any(|o| o["sha256"] == sha)
        })
    });
}

#[test]
fn the_uploader_rides_out_a_server_that_is_down_then_comes_up() {
    let port = free_port();
    let env = archiving_env(&format!("http://127.0.0.1:{port}"));
    let file = finished_session(&env, "outage");
    let before = std::fs::read(&file).unwrap();
    let _uploader = Guard(
        with_keys(&env, &["archive"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    // Down: passes fail, the uploader waits longer each time; nothing local changes.
    wait_until("a failed pass", || {
        let status: Value =
            serde_json::from_str(&env.ok(&["archive", "--status", "--json"])).unwrap();
        status["last_pass"]["errors"][0].as_str().is_some_and(|e| e.contains("cannot reach"))
    });
    assert_eq!(std::fs::read(&file).unwrap(), before);
    // One uploader at a time: a second one is refused while it runs.
    let second = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(second.status.code(), Some(4), "{}", String::from_utf8_lossy(&second.stderr));
    assert!(String::from_utf8_lossy(&second.stderr).contains("another `tether archive`"));
    // Up, on the same port, with its bucket.
    let moto = Moto::start_on(port);
    moto.s3(&["mkbucket", BUCKET]);
    wait_all_shipped(&env, &moto, Duration::from_secs(90));
}

#[test]
fn every_byte_arrives_through_a_proxy_that_cuts_connections_and_answers_503() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let upstream: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = CuttingProxy::start(upstream);
    let env = archiving_env(&format!("http://127.0.0.1:{}", proxy.port));
    let config = env.config_dir().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("segment_bytes = 65536\n{text}")).unwrap();
    env.start("cut", &["sh", "-c", "seq 1 40000; echo CUT-DONE"]);
    env.ok(&["wait", "cut"]);
    let _uploader = Guard(
        with_keys(&env, &["archive"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap(),
    );
    wait_all_shipped(&env, &moto, Duration::from_secs(120));
    // Every signed line too, each once.
    let signed: usize = recording_files(&env)
        .iter()
        .map(|f| {
            let data = std::fs::read(f).unwrap();
            data.split(|b| *b == b'\n').filter(|l| l.starts_with(b"#tether:")).count()
        })
        .sum();
    let witnessed =
        moto.objects().iter().filter(|o| o["key"].as_str().unwrap().contains("/witness/")).count();
    assert_eq!(witnessed, signed);
    let cuts = proxy.cuts.load(std::sync::atomic::Ordering::Relaxed);
    eprintln!("the proxy cut or answered 503 to {cuts} connection(s)");
    assert!(cuts > 0, "the proxy cut nothing: the test proved nothing");
}

#[test]
fn verify_trusts_no_witness_object_it_did_not_write_and_fails_closed_without_the_bucket() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    let file = finished_session(&env, "guarded");
    let path = file.display().to_string();
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(
        run_with_timeout(with_keys(&env, &["verify", &path]), TIMEOUT).status.code(),
        Some(0)
    );
    // Without credentials the witness cannot be read: not vouched for.
    let out = env.run(&["verify", &path]);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("UNWITNESSED") && text.contains("could not be read"), "{text}");
    // Another spelling of checkpoint 1's place, planted by someone with
    // the credentials, is not taken for the witness.
    let end = moto
        .objects()
        .into_iter()
        .map(|o| o["key"].as_str().unwrap().to_owned())
        .find(|k| k.ends_with("/000000-end"))
        .unwrap();
    let planted = end.replace("000000-end", "00000000-1");
    moto.s3(&["put", BUCKET, &planted, "#tether:checkpoint {}"]);
    let out = run_with_timeout(with_keys(&env, &["verify", &path]), TIMEOUT);
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("REWRITTEN") && text.contains("never writes"), "{text}");
}

#[test]
fn local_copies_go_only_once_archived_and_kept_long_enough() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    let config = env.config_dir().join("config.toml");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}keep_local_days = 1\n")).unwrap();
    let file = finished_session(&env, "kept");
    // Something that cannot be shipped (not a regular file), old as well.
    let fifo = file.with_file_name("stuck-20200101T000000Z.cast");
    assert!(Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    // Shipped, but changed less than a day ago: kept.
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(1), "the FIFO is set aside");
    assert!(file.exists());
    // Three days later (by its time stamps), the next pass removes it and
    // its sidecars; the FIFO, never shipped, stays.
    let sidecars: Vec<PathBuf> =
        ["cast.idx", "cast.keys"].iter().map(|e| file.with_extension(e)).collect();
    for f in std::iter::once(&file).chain(sidecars.iter()).filter(|f| f.exists()) {
        let touched =
            Command::new("touch").args(["-h", "-d", "3 days ago"]).arg(f).status().unwrap();
        assert!(touched.success());
    }
    assert!(
        Command::new("touch").args(["-d", "3 days ago"]).arg(&fifo).status().unwrap().success()
    );
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("removed the local copy of kept-"), "{stdout}");
    assert!(!file.exists() && sidecars.iter().all(|s| !s.exists()));
    assert!(fifo.exists(), "what is not archived is never removed");
    // The archive still has it whole.
    let listed: Value = serde_json::from_slice(
        &run_with_timeout(with_keys(&env, &["ls", "--archive", "--json"]), TIMEOUT).stdout,
    )
    .unwrap();
    let url = listed.as_array().unwrap().iter().find(|r| r["session"] == "kept").unwrap()["url"]
        .as_str()
        .unwrap()
        .to_owned();
    let out = run_with_timeout(with_keys(&env, &["verify", &url]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
}

#[test]
fn credentials_come_from_a_profile_when_the_environment_has_none() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    finished_session(&env, "profiled");
    let aws = env.root().join("home/.aws");
    std::fs::create_dir_all(&aws).unwrap();
    std::fs::write(
        aws.join("credentials"),
        format!("[default]\naws_access_key_id = nope\n\n[archive]\naws_access_key_id = {KEY_ID}\naws_secret_access_key = {SECRET}\n"),
    )
    .unwrap();
    // `default` lacks its secret: named, not guessed around.
    let out = env.run(&["archive", "--once"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("lacks aws_access_key_id or aws_secret_access_key")
    );
    let mut cmd = env.cmd(&["archive", "--once"]);
    cmd.env("AWS_PROFILE", "archive");
    let out = run_with_timeout(cmd, TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!moto.objects().is_empty());
}

#[test]
fn an_archived_recording_is_replayed_at_its_end_with_range_reads() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let upstream: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let proxy = CuttingProxy::start_with(upstream, false);
    let env = archiving_env(&format!("http://127.0.0.1:{}", proxy.port));
    // About 20 MiB of output that compresses poorly: many frames, several
    // keyframes, one segment.
    env.start(
        "long",
        &["sh", "-c", "head -c 15000000 /dev/urandom | base64 -w 100; printf '\\033[H\\033[2J'; echo THE-END-OF-IT"],
    );
    env.ok(&["wait", "long"]);
    // The sidecars ship once unchanged for a while: as if written a
    // minute ago.
    age_sidecars(&env);
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    // The seek index and keyframes went too, once the recording ended.
    let objects = moto.objects();
    let keys: Vec<&str> = objects.iter().filter_map(|o| o["key"].as_str()).collect();
    assert!(keys.iter().any(|k| k.ends_with(".cast.idx.zst")), "{keys:?}");
    assert!(keys.iter().any(|k| k.ends_with(".cast.keys.zst")), "{keys:?}");
    let stored: u64 = objects
        .iter()
        .filter(|o| o["key"].as_str().is_some_and(|k| k.contains("/recordings/")))
        .map(|o| o["size"].as_u64().unwrap())
        .sum();
    let listed: Value = serde_json::from_slice(
        &with_keys(&env, &["ls", "--archive", "--json"]).output().unwrap().stdout,
    )
    .unwrap();
    let url = listed[0]["url"].as_str().unwrap().to_owned();
    assert_eq!(listed[0]["segments"], 1, "{listed}");
    let local = env.ok(&["replay", "long", "--at", "+10h"]);
    assert!(local.contains("THE-END-OF-IT"), "{local}");
    let before = proxy.down.load(std::sync::atomic::Ordering::Relaxed);
    let remote = run_with_timeout(with_keys(&env, &["replay", &url, "--at", "+10h"]), TIMEOUT);
    assert!(remote.status.success(), "{}", String::from_utf8_lossy(&remote.stderr));
    let read = proxy.down.load(std::sync::atomic::Ordering::Relaxed) - before;
    assert_eq!(String::from_utf8_lossy(&remote.stdout), local);
    eprintln!("replay --at the end read {read} of {stored} bytes stored");
    assert!(read * 2 < stored, "replay --at the end read {read} bytes of {stored}");
    // Read through from the start, by range requests, it is the same too.
    let whole = run_with_timeout(with_keys(&env, &["export", &url, "--format", "txt"]), TIMEOUT);
    assert!(whole.status.success(), "{}", String::from_utf8_lossy(&whole.stderr));
    assert_eq!(
        String::from_utf8_lossy(&whole.stdout),
        env.ok(&["export", "long", "--format", "txt"])
    );
}

#[test]
fn a_server_that_checks_credentials_refuses_an_unknown_key_and_a_wrong_secret() {
    // Four requests set it up (bucket, user, policy, key); every later one
    // must be signed by a key it issued.
    let moto = Moto::checking_credentials(4);
    moto.s3(&["mkbucket", BUCKET]);
    let policy = format!(
        r#"{{"Version":"2012-10-17","Statement":[
        {{"Effect":"Allow","Action":["s3:PutObject","s3:GetObject"],"Resource":"arn:aws:s3:::{BUCKET}/fleet/*"}}]}}"#
    );
    let user: Value = serde_json::from_slice(&moto.s3(&["mkuser", BUCKET, &policy])).unwrap();
    let (id, secret) = (user["id"].as_str().unwrap(), user["secret"].as_str().unwrap());
    // The key is real: the server takes a put signed with it.
    let put = moto.s3_as(Some((id, secret)), &["put", BUCKET, "fleet/probe", "x"]);
    assert!(put.status.success(), "{}", String::from_utf8_lossy(&put.stderr));
    let env = archiving_env(&moto.endpoint);
    let file = finished_session(&env, "keyed");
    let before = std::fs::read(&file).unwrap();
    let journal = env.root().join("state/tether/archive/journal");
    for (what, key_id, key) in [
        ("an unknown key", "AKIAUNKNOWNUNKNOWN00", secret),
        ("a wrong secret", id, "not-the-secret-not-the-secret-not-the-secr"),
    ] {
        let mut cmd = env.cmd(&["archive", "--once"]);
        cmd.env("AWS_ACCESS_KEY_ID", key_id).env("AWS_SECRET_ACCESS_KEY", key);
        let out = run_with_timeout(cmd, TIMEOUT);
        assert_eq!(out.status.code(), Some(6), "{what}");
        let msg = one_line(&out);
        assert!(msg.contains("refused the credentials"), "{what}: {msg}");
        assert_eq!(std::fs::read(&file).unwrap(), before, "{what}");
        assert!(!journal.exists(), "{what}: something counted as shipped");
        let status: Value =
            serde_json::from_str(&env.ok(&["archive", "--status", "--json"])).unwrap();
        let error = status["last_pass"]["errors"][0].as_str().unwrap_or_default();
        assert!(error.contains("refused the credentials"), "{what}: {status}");
    }
    // (The right key's success is tested against moto without checks:
    // moto 5.2.1 miscomputes the signature of a listing whose prefix has
    // a `/`, for boto3 as much as for tether.)
}

#[test]
fn uploads_cut_by_a_killed_uploader_and_a_restarted_server_front_lose_nothing() {
    use std::sync::atomic::Ordering::Relaxed;
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let upstream: u16 = moto.endpoint.rsplit(':').next().unwrap().parse().unwrap();
    let port = free_port();
    // 4 MiB/s to the server: a 15 MB upload takes about four seconds.
    let rate = Some(4 << 20);
    let proxy = CuttingProxy::start_on(port, upstream, false, rate);
    let env = archiving_env(&format!("http://127.0.0.1:{port}"));
    // One segment of about 20 MiB that compresses poorly: its upload
    // takes a while, so it can be cut in the middle.
    env.start("bulky", &["sh", "-c", "head -c 15000000 /dev/urandom | base64 -w 100"]);
    env.ok(&["wait", "bulky"]);
    let files = recording_files(&env);
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let segment_sha = sha256_hex(&before[0]);
    let in_bucket = || moto.objects().iter().any(|o| o["sha256"] == segment_sha.as_str());
    let uploader = || {
        with_keys(&env, &["archive"]).stdout(Stdio::null()).stderr(Stdio::null()).spawn().unwrap()
    };
    let mid_upload = |proxy: &CuttingProxy| {
        let from = proxy.up.load(Relaxed);
        wait_until_for(Duration::from_secs(60), "a segment upload under way", || {
            proxy.up.load(Relaxed) > from + (2 << 20)
        });
        assert!(!in_bucket(), "the segment was shipped already: nothing was cut");
    };
    // 1. The uploader is killed in the middle of the segment's upload.
    let mut first = Guard(uploader());
    mid_upload(&proxy);
    kill9(first.0.id());
    let _ = first.0.wait();
    // 2. A new one starts it again; the server's front stops in the
    // middle of it (every connection cut, the port closed), then comes
    // back on the same port. (moto keeps objects in memory only, so it is
    // its front that restarts: to the uploader that is the same.)
    let second = Guard(uploader());
    mid_upload(&proxy);
    let up_before = proxy.up.load(Relaxed);
    drop(proxy);
    wait_until_for(Duration::from_secs(60), "a failed pass", || {
        let status: Value =
            serde_json::from_str(&env.ok(&["archive", "--status", "--json"])).unwrap();
        status["last_pass"]["errors"][0].as_str().is_some_and(|e| e.contains("cannot reach"))
    });
    for (f, b) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read(f).unwrap(), b, "{} changed", f.display());
    }
    assert!(!in_bucket());
    let proxy = CuttingProxy::start_on(port, upstream, false, None);
    wait_all_shipped(&env, &moto, Duration::from_secs(120));
    let after = proxy.up.load(Relaxed);
    eprintln!("{up_before} bytes sent before the cut, {after} after");
    assert!(after > 10 << 20, "the segment was not sent again whole: {after} bytes");
    // Nothing local was lost, and the bucket holds the segment whole.
    for (f, b) in files.iter().zip(&before) {
        assert_eq!(&std::fs::read(f).unwrap(), b, "{} changed", f.display());
    }
    drop(second);
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
}

/// A tmpfs of `kib` KiB mounted on `dir`, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, kib: u32) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let mut cmd = Command::new("mount");
        cmd.args(["-t", "tmpfs", "-o", &format!("size={kib}k,mode=0700"), "tmpfs"]).arg(dir);
        let out = run_with_timeout(cmd, TIMEOUT);
        assert!(
            out.status.success(),
            "mounting a tmpfs (the full-disk test runs as root, as .ci/run does): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        Tmpfs(dir.to_owned())
    }

    /// Fills it up.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let filler = self.0.join("filler");
        let mut f = std::fs::File::create(&filler).unwrap();
        let block = [0x55u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
        filler
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_under_the_journal_stops_nothing_and_loses_nothing() {
    if !rustix::process::geteuid().is_root() {
        eprintln!("skipped: mounting a tmpfs needs root (.ci/run runs as root)");
        return;
    }
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    let file = finished_session(&env, "crowded");
    let before = std::fs::read(&file).unwrap();
    let disk = Tmpfs::mount(&env.root().join("state/tether/archive"), 64);
    let filler = disk.fill();
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("No space left on device"), "{stderr}");
    assert_eq!(std::fs::read(&file).unwrap(), before);
    // The uploader that runs on keeps running, and says why it cannot ship.
    let log = env.root().join("uploader.err");
    let mut uploader = Guard(
        with_keys(&env, &["archive"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    wait_until("the uploader to name the full disk", || {
        std::fs::read_to_string(&log).is_ok_and(|l| l.contains("No space left on device"))
    });
    assert!(uploader.0.try_wait().unwrap().is_none(), "the uploader exited");
    // A session still starts and records while that disk is full.
    env.start("meanwhile", &["sh", "-c", "echo still recording"]);
    env.ok(&["wait", "meanwhile"]);
    assert!(env.ok(&["export", "meanwhile", "--format", "txt"]).contains("still recording"));
    // Room again: everything ships, once, and matches.
    std::fs::remove_file(filler).unwrap();
    wait_all_shipped(&env, &moto, Duration::from_secs(60));
    assert!(uploader.0.try_wait().unwrap().is_none(), "the uploader exited");
    drop(uploader);
    assert_eq!(std::fs::read(&file).unwrap(), before);
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert!(String::from_utf8_lossy(&out.stdout).contains("shipped 0 objects"));
}

#[test]
fn a_checkpoint_claimed_before_the_uploader_shipped_it_is_marked_and_verify_says_so() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    env.start(
        "claimed",
        &[
            "sh",
            "-c",
            "for i in 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16; do echo tick $i; sleep 0.25; done",
        ],
    );
    env.ok(&["wait", "claimed"]);
    let file = recording_files(&env).remove(0);
    let local = std::fs::read_to_string(&file).unwrap();
    assert!(local.contains("#tether:checkpoint {\"seq\":2,"), "too few checkpoints: {local}");
    // Someone holding the credentials puts checkpoint 2's witness first,
    // with a line of their own.
    let status: Value = serde_json::from_str(&env.ok(&["archive", "--status", "--json"])).unwrap();
    let root = status["location"].as_str().unwrap();
    let base = file.file_name().unwrap().to_str().unwrap();
    let key = format!("{root}/witness/{base}/000000-0000000002");
    moto.s3(&["put", BUCKET, &key, "#tether:checkpoint {\"seq\":2,\"forged\":true}"]);
    // The uploader never overwrites it: it reports the conflict and leaves
    // a mark beside it.
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("conflict"), "{stderr}");
    let objects = moto.objects();
    let mark = format!("{key}.conflict");
    assert!(objects.iter().any(|o| o["key"] == mark.as_str()), "no mark in {objects:?}");
    assert_eq!(moto.s3(&["get", BUCKET, &key]), b"#tether:checkpoint {\"seq\":2,\"forged\":true}");
    // verify reports it, whatever the file holds.
    let out = run_with_timeout(with_keys(&env, &["verify", &file.display().to_string()]), TIMEOUT);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("REWRITTEN") || stdout.contains("rewritten"), "{stdout}");
    assert!(stdout.contains("claimed before the uploader shipped it"), "{stdout}");
}

#[test]
fn commands_archive_lists_the_commands_of_every_archived_recording() {
    let moto = Moto::start();
    moto.s3(&["mkbucket", BUCKET]);
    let env = archiving_env(&moto.endpoint);
    // A job that writes the marks itself (as a prompt of the user's own
    // would): a command `make deploy` that fails with 2.
    let script = r"printf '$ \033]133;B\007make deploy\r\n\033]133;C\007building\r\n\033]133;D;2\007$ '; sleep 0.3";
    env.start("marked", &["sh", "-c", script]);
    env.ok(&["wait", "marked"]);
    let local = env.ok(&["commands", "marked", "--json"]);
    let out = run_with_timeout(with_keys(&env, &["archive", "--once"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let out = run_with_timeout(with_keys(&env, &["commands", "--archive", "--json"]), TIMEOUT);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let fleet = String::from_utf8(out.stdout).unwrap();
    assert_eq!(fleet, local);
    let ran: Value = serde_json::from_str(fleet.lines().next().unwrap()).unwrap();
    assert_eq!(ran["command"], "make deploy", "{ran}");
    assert_eq!(ran["exit"], 2, "{ran}");
    assert_eq!(ran["marks"], "job", "{ran}");
    // --failed and --grep over the fleet too; another host has nothing.
    let failed = run_with_timeout(
        with_keys(&env, &["commands", "--archive", "--failed", "--grep", "deploy"]),
        TIMEOUT,
    );
    assert_eq!(String::from_utf8_lossy(&failed.stdout).lines().count(), 1);
    let other = run_with_timeout(
        with_keys(&env, &["commands", "--archive", "--host", "no-such-host"]),
        TIMEOUT,
    );
    assert_eq!(other.status.code(), Some(1));
}

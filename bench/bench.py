#!/usr/bin/env python3
"""tether's benchmark: tether and the anchors (raw PTY, tmux, GNU screen,
dtach, OpenSSH) measured in the same run on the same machine; prints the
ratios the performance targets are stated in (docs/PERFORMANCE.md).

Usage: bench/run [--mb 100] [--sessions 50] [--scale 500] [--only NAME,...]

Everything runs under a throwaway HOME/XDG tree; every process started is
killed at the end. Times are wall clock (time.perf_counter); memory is RSS
and PSS from /proc/PID/smaps_rollup. Standard library only.
"""

import argparse
import json
import os
import pty
import random
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLS, ROWS = 120, 40


# ---------------------------------------------------------------- helpers

class Env:
    """A private HOME/XDG tree and the processes to kill at the end."""

    def __init__(self, tether):
        self.dir = tempfile.mkdtemp(prefix="tether-bench-")
        for sub in ("home", "run", "state", "data", "config"):
            os.makedirs(os.path.join(self.dir, sub), mode=0o700)
        self.tether = tether
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": self.path("home"),
            "XDG_RUNTIME_DIR": self.path("run"),
            "XDG_STATE_HOME": self.path("state"),
            "XDG_DATA_HOME": self.path("data"),
            "XDG_CONFIG_HOME": self.path("config"),
            "TERM": "xterm-256color",
            "SHELL": "/bin/sh",
            "LANG": "C.UTF-8",
            "TMUX_TMPDIR": self.path("run"),
            "SCREENDIR": self.path("run") + "/screen",
        }
        os.makedirs(self.env["SCREENDIR"], mode=0o700)
        self.pids = []

    def path(self, *parts):
        return os.path.join(self.dir, *parts)

    def run(self, args, check=True, **kw):
        return subprocess.run(args, env=self.env, check=check, capture_output=True, text=True, **kw)

    def spawn(self, args):
        """Starts args in a new PTY of COLSxROWS; returns (pid, fd)."""
        pid, fd = pty.fork()
        if pid == 0:
            os.execvpe(args[0], args, self.env)
        import fcntl
        import struct
        import termios
        fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLS, 0, 0))
        self.pids.append(pid)
        return pid, fd

    def cleanup(self):
        try:
            reset(self)
        except Exception:  # noqa: BLE001 - best effort, then kill by pid
            pass
        for pid in self.pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        for line in self.run(["ps", "-eo", "pid,args"], check=False).stdout.splitlines():
            if self.dir in line or "tether-bench" in line:
                try:
                    os.kill(int(line.split()[0]), signal.SIGKILL)
                except (OSError, ValueError):
                    pass
        self.run(["tmux", "-L", "bench", "kill-server"], check=False)
        shutil.rmtree(self.dir, ignore_errors=True)


def read_until(fd, marker, timeout=600):
    """Reads fd until marker appears; returns (seconds, bytes read)."""
    start = time.perf_counter()
    tail = b""
    total = 0
    deadline = start + timeout
    while True:
        if time.perf_counter() > deadline:
            raise TimeoutError(marker)
        ready, _, _ = select.select([fd], [], [], 1.0)
        if not ready:
            continue
        try:
            chunk = os.read(fd, 1 << 20)
        except OSError:
            raise TimeoutError(marker + b" (eof)")
        total += len(chunk)
        tail = (tail + chunk)[-4096:]
        if marker in tail:
            return time.perf_counter() - start, total


def drain(fd, seconds):
    end = time.time() + seconds
    while time.time() < end:
        ready, _, _ = select.select([fd], [], [], 0.05)
        if ready:
            try:
                os.read(fd, 1 << 20)
            except OSError:
                return


def mem(pids):
    """Sum of RSS and PSS (kB) over pids."""
    rss = pss = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup") as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            pass
    return rss, pss


def keeper_pids(env, prefix=""):
    """The keeper pids of the running tether sessions whose name starts
    with prefix (from `tether ls --json`)."""
    info = json.loads(env.run([env.tether, "ls", "--json"]).stdout)
    return [s["keeper_pid"] for s in info if s["name"].startswith(prefix) and s["state"] == "running"]


def reset(env):
    """Ends every session of every tool, so one measure does not weigh on
    the next."""
    info = json.loads(env.run([env.tether, "ls", "--json"]).stdout)
    for s in info:
        env.run([env.tether, "kill", "--force", s["name"]], check=False)
    for s in info:
        env.run([env.tether, "wait", s["name"]], check=False)
        env.run([env.tether, "rm", s["name"]], check=False)
    env.run(["tmux", "-L", "bench", "kill-server"], check=False)
    # Our screen sessions are the ones in our SCREENDIR; our dtach masters
    # name a socket in our runtime dir.
    for line in env.run(["screen", "-ls"], check=False).stdout.splitlines():
        fields = line.split()
        if fields and "." in fields[0] and fields[0].split(".")[0].isdigit():
            env.run(["screen", "-S", fields[0], "-X", "quit"], check=False)
    env.run(["screen", "-wipe"], check=False)
    for line in env.run(["ps", "-eo", "pid,args"], check=False).stdout.splitlines():
        fields = line.split(None, 1)
        if len(fields) == 2 and fields[1].startswith("dtach") and env.dir in fields[1]:
            try:
                os.kill(int(fields[0]), signal.SIGKILL)
            except (OSError, ValueError):
                pass
    time.sleep(0.5)


def pids_of(pattern, env):
    out = subprocess.run(["pgrep", "-f", pattern], capture_output=True, text=True).stdout
    return [int(p) for p in out.split()]


def mixed_text(path, mb):
    """mb MiB of log-like text: colours, CJK, emoji, progress bars."""
    rnd = random.Random(42)
    words = ["deploy", "migrate", "rows", "ok", "retry", "backup", "INFO", "WARN", "数据库", "完成", "🚀", "✔", "latency", "ms"]
    with open(path, "w") as f:
        size = 0
        n = 0
        while size < mb << 20:
            n += 1
            kind = n % 10
            if kind == 0:
                line = f"\x1b[1;31mERROR\x1b[0m {n} " + " ".join(rnd.choice(words) for _ in range(8)) + "\n"
            elif kind == 1:
                line = f"\r\x1b[2K[{'#' * (n % 40):<40}] {n % 100}%"
            elif kind == 2:
                line = f"\x1b[38;5;{n % 256}m{n:08d}\x1b[0m \x1b[38;2;{n % 256};100;200m" + "x" * (n % 90) + "\x1b[0m\n"
            else:
                line = f"{time.strftime('%H:%M:%S')} {n} " + " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 14))) + "\n"
            f.write(line)
            size += len(line.encode())


JOB = "read x; s=$(date +%s.%N); cat {data}; e=$(date +%s.%N); echo JOBTIME $s $e > {res}; echo; echo BENCH-END-{n}"


def job_seconds(text):
    for line in text.splitlines():
        if line.startswith("JOBTIME"):
            _, s, e = line.split()[:3]
            return float(e) - float(s)
    return None


def job_file_seconds(path, timeout=600):
    """The job's own time, written by the job into path."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if os.path.exists(path):
            got = job_seconds(open(path).read())
            if got is not None:
                return got
        time.sleep(0.02)
    return None


# ----------------------------------------------------------- the measures

def attached(env, tool, data, n):
    """A job prints the data to an attached client: (last byte at the
    client, job finished) in seconds."""
    marker = f"BENCH-END-{n}".encode()
    res = env.path(f"att{n}.time")
    job = JOB.format(data=data, n=n, res=res)
    name = f"att{n}"
    if tool == "raw":
        pid, fd = env.spawn(["sh", "-c", job])
    elif tool == "tether":
        env.run([env.tether, "new", "-d", name, "--", "sh", "-c", job])
        pid, fd = env.spawn([env.tether, "attach", name])
    elif tool == "tmux":
        env.run(["tmux", "-L", "bench", "-f", "/dev/null", "new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS), "sh", "-c", job + "; sleep 600"])
        env.run(["tmux", "-L", "bench", "set-option", "-g", "history-limit", "10000"], check=False)
        pid, fd = env.spawn(["tmux", "-L", "bench", "attach", "-t", name])
    elif tool == "screen":
        env.run(["screen", "-dmS", name, "sh", "-c", job + "; sleep 600"])
        pid, fd = env.spawn(["screen", "-r", name])
    elif tool == "dtach":
        sock = env.path("run", name)
        env.run(["dtach", "-n", sock, "-E", "sh", "-c", job + "; sleep 600"])
        pid, fd = env.spawn(["dtach", "-a", sock, "-E"])
    else:
        raise ValueError(tool)
    drain(fd, 1.0)
    os.write(fd, b"\n")
    start = time.perf_counter()
    read_until(fd, marker)
    last_byte = time.perf_counter() - start
    jobtime = job_file_seconds(res)
    os.kill(pid, signal.SIGKILL)
    return last_byte, jobtime


def detached(env, tool, data, n):
    """The job's finishing time with no client attached (tether records)."""
    job = JOB.format(data=data, n=n, res=env.path(f"det{n}.time")).replace("read x; ", "")
    name = f"det{n}"
    if tool == "raw":
        pid, fd = env.spawn(["sh", "-c", job])
        start = time.perf_counter()
        read_until(fd, f"BENCH-END-{n}".encode())
        return time.perf_counter() - start
    if tool == "tether":
        env.run([env.tether, "new", "-d", name, "--", "sh", "-c", job])
        env.run([env.tether, "wait", name])
        return job_file_seconds(env.path(f"det{n}.time"))
    raise ValueError(tool)


def detached_terminal(env, tool, data, n):
    """Like detached, the job writing to the multiplexer's terminal."""
    name = f"dt{n}"
    result = env.path(f"{name}.time")
    job = f"s=$(date +%s.%N); cat {data}; e=$(date +%s.%N); echo JOBTIME $s $e > {result}"
    if tool == "tmux":
        env.run(["tmux", "-L", "bench", "-f", "/dev/null", "new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS), "sh", "-c", job])
    elif tool == "screen":
        env.run(["screen", "-dmS", name, "sh", "-c", job])
    elif tool == "dtach":
        env.run(["dtach", "-n", env.path("run", name), "-E", "sh", "-c", job])
    deadline = time.time() + 600
    while time.time() < deadline:
        if os.path.exists(result) and os.path.getsize(result) > 0:
            return job_seconds(open(result).read())
        time.sleep(0.05)
    return None


def echo_latency(argv_fn, env, n, keys=200):
    """Median and p99 milliseconds from a keystroke to its echo."""
    pid, fd = env.spawn(argv_fn())
    drain(fd, 1.5)
    samples = []
    for i in range(keys):
        ch = bytes([ord("a") + i % 26])
        start = time.perf_counter()
        os.write(fd, ch)
        while True:
            ready, _, _ = select.select([fd], [], [], 5)
            if not ready:
                raise TimeoutError("echo")
            if ch in os.read(fd, 65536):
                break
        samples.append((time.perf_counter() - start) * 1000)
        time.sleep(0.005)
    os.kill(pid, signal.SIGKILL)
    samples.sort()
    return statistics.median(samples), samples[int(len(samples) * 0.99) - 1]


def reattach(env, tool, n):
    """Seconds from starting the client until it shows the full screen of
    a session with 10,000 lines of history."""
    name = f"re{n}"
    job = "i=0; while [ $i -lt 10000 ]; do echo history line $i; i=$((i+1)); done; echo READY-MARK; sleep 600"
    if tool == "tether":
        env.run([env.tether, "new", "-d", name, "--", "sh", "-c", job])
        wait_text(lambda: env.run([env.tether, "tail", name, "-n", "2"]).stdout, "READY-MARK")
        argv = [env.tether, "attach", name]
    elif tool == "tmux":
        env.run(["tmux", "-L", "bench", "-f", "/dev/null", "new-session", "-d", "-s", name, "-x", str(COLS), "-y", str(ROWS), "sh", "-c", job])
        wait_text(lambda: env.run(["tmux", "-L", "bench", "capture-pane", "-p", "-t", name]).stdout, "READY-MARK")
        argv = ["tmux", "-L", "bench", "attach", "-t", name]
    elif tool == "screen":
        env.run(["screen", "-dmS", name, "sh", "-c", job])
        time.sleep(3)
        argv = ["screen", "-d", "-r", name]
    times = []
    for _ in range(11):
        start = time.perf_counter()
        pid, fd = env.spawn(argv)
        read_until(fd, b"READY-MARK", timeout=30)
        times.append(time.perf_counter() - start)
        os.kill(pid, signal.SIGKILL)
        time.sleep(0.2)
    return statistics.median(times)


def wait_text(fetch, needle, timeout=60):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if needle in fetch():
            return
        time.sleep(0.1)
    raise TimeoutError(needle)


def idle_memory(env, tool, count):
    """(RSS, PSS) kB per idle session, over all of the tool's processes."""
    if tool == "tether":
        for i in range(count):
            env.run([env.tether, "new", "-d", f"idle{i}", "--", "sleep", "1000"])
        time.sleep(1)
        return per(mem(keeper_pids(env, "idle")), count)
    if tool == "tmux":
        for i in range(count):
            env.run(["tmux", "-L", "bench", "-f", "/dev/null", "new-session", "-d", "-s", f"idle{i}", "sleep", "1000"])
        time.sleep(1)
        return per(mem(pids_of("tmux -L bench", env)), count)
    if tool == "screen":
        for i in range(count):
            env.run(["screen", "-dmS", f"idle{i}", "sleep", "1000"])
        time.sleep(1)
        return per(mem(pids_of("SCREEN -dmS idle", env)), count)
    if tool == "dtach":
        for i in range(count):
            env.run(["dtach", "-n", env.path("run", f"idle{i}"), "sleep", "1000"])
        time.sleep(1)
        return per(mem(pids_of(f"dtach -n {env.path('run', 'idle')}", env)), count)
    raise ValueError(tool)


def per(rp, count):
    return rp[0] / count, rp[1] / count


def after_output(env, data):
    """The keeper's RSS after the data was printed into its session."""
    env.run([env.tether, "new", "-d", "heavy", "--", "sh", "-c", f"cat {data}; sleep 1000"])
    wait_text(lambda: env.run([env.tether, "tail", "heavy", "-n", "3"]).stdout, "", timeout=10)
    info = json.loads(env.run([env.tether, "ls", "--json"]).stdout)
    keeper = next(s["keeper_pid"] for s in info if s["name"] == "heavy")
    # Let the parser catch up with everything.
    last = None
    for _ in range(600):
        rss = mem([keeper])
        if last is not None and abs(rss[0] - last[0]) < 64:
            break
        last = rss
        time.sleep(0.5)
    tmux_rss = None
    env.run(["tmux", "-L", "bench", "-f", "/dev/null", "new-session", "-d", "-s", "heavy", "-x", str(COLS), "-y", str(ROWS), "sh", "-c", f"cat {data}; sleep 1000"])
    env.run(["tmux", "-L", "bench", "set-option", "-g", "history-limit", "10000"], check=False)
    time.sleep(2)
    before = None
    for _ in range(600):
        r = mem(pids_of("tmux -L bench", env))
        if before is not None and abs(r[0] - before[0]) < 64:
            tmux_rss = r
            break
        before = r
        time.sleep(0.5)
    return mem([keeper]), tmux_rss


def plain_text(path, mb):
    """mb MiB of plain log lines (no escape sequences)."""
    rnd = random.Random(7)
    words = ["deploy", "migrate", "rows", "ok", "retry", "backup", "INFO", "WARN", "latency", "ms", "copied", "table"]
    with open(path, "w") as f:
        size = n = 0
        while size < mb << 20:
            n += 1
            line = f"2026-11-28T10:{n // 60 % 60:02d}:{n % 60:02d}Z {n} " + " ".join(rnd.choice(words) for _ in range(rnd.randint(3, 14))) + "\n"
            f.write(line)
            size += len(line)


def recording_stats(env, data, mb, name="recsize"):
    env.run([env.tether, "new", "-d", name, "--", "cat", data])
    env.run([env.tether, "wait", name])
    info = json.loads(env.run([env.tether, "ls", "--json"]).stdout)
    path = next(s["recording_path"] for s in info if s["name"] == name)
    stem = os.path.basename(path)[: -len(".cast")]
    folder = os.path.dirname(path)
    # The first segment and any rotated ones (STEM.N.cast).
    size = sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder) if f == stem + ".cast" or (f.startswith(stem + ".") and f.endswith(".cast")))
    out_bytes = os.path.getsize(data)
    start = time.perf_counter()
    env.run([env.tether, "verify", name])
    verify_s = time.perf_counter() - start
    start = time.perf_counter()
    env.run([env.tether, "grep", "no-such-text-anywhere", name], check=False)
    grep_s = time.perf_counter() - start
    return size / out_bytes, out_bytes / verify_s / 1e6, out_bytes / grep_s / 1e6


def scale(env, count):
    """Memory and `ls` time as sessions grow; attach and check at the end."""
    rows = []
    made = 0
    for target in sorted({t for t in (50, 100, 250) if t < count} | {count}):
        while made < target:
            env.run([env.tether, "new", "-d", f"s{made}", "--", "sleep", "3600"])
            made += 1
        start = time.perf_counter()
        env.run([env.tether, "ls"])
        ls_ms = (time.perf_counter() - start) * 1000
        rss, pss = mem(keeper_pids(env, "s"))
        rows.append({"sessions": target, "ls_ms": round(ls_ms, 1), "rss_mb": round(rss / 1024, 1), "pss_mb": round(pss / 1024, 1), "pss_per_session_mb": round(pss / 1024 / target, 2)})
    pid, fd = env.spawn([env.tether, "attach", f"s{count - 1}"])
    drain(fd, 1)
    os.kill(pid, signal.SIGKILL)
    start = time.perf_counter()
    check = env.run([env.tether, "check"], check=False)
    return rows, check.returncode == 0, (time.perf_counter() - start) * 1000


# ------------------------------------------------------------------- main

def ssh_setup(env):
    """A tether daemon and an OpenSSH sshd with the same client key."""
    key = env.path("home", "id")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", key], check=True)
    os.makedirs(env.path("config", "tether"), exist_ok=True)
    shutil.copy(key + ".pub", env.path("config", "tether", "authorized_keys"))
    d = subprocess.Popen([env.tether, "daemon", "--foreground", "--listen", "127.0.0.1:0"], env=env.env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    env.pids.append(d.pid)
    port = int(d.stdout.readline().strip().rsplit(":", 1)[1])
    hk = env.path("host")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", hk], check=True)
    sshd_port = free_port()
    auth = env.path("authorized")
    shutil.copy(key + ".pub", auth)
    os.chmod(auth, 0o600)
    cfg = env.path("sshd_config")
    with open(cfg, "w") as f:
        f.write(f"Port {sshd_port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {auth}\nPasswordAuthentication no\nStrictModes no\nPidFile {env.path('sshd.pid')}\nUsePAM no\n")
    sshd = shutil.which("sshd") or "/usr/sbin/sshd"
    os.makedirs("/run/sshd", exist_ok=True)
    s = subprocess.Popen([sshd, "-D", "-f", cfg], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env.pids.append(s.pid)
    time.sleep(1)
    base = ["ssh", "-F", "/dev/null", "-o", "StrictHostKeyChecking=no", "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes", "-o", "LogLevel=ERROR", "-i", key, "-tt"]
    return base, port, sshd_port


def free_port():
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--mb", type=int, default=100, help="MiB of output for the throughput runs")
    ap.add_argument("--sessions", type=int, default=50, help="idle sessions for the memory run")
    ap.add_argument("--scale", type=int, default=500, help="sessions for the scale run (0: skip)")
    ap.add_argument("--only", default="", help="comma-separated measures to run")
    ap.add_argument("--json", default=os.path.join(ROOT, "target", "bench.json"))
    args = ap.parse_args()
    tether = os.path.join(ROOT, "target", "release", "tether")
    only = set(filter(None, args.only.split(",")))
    want = lambda m: not only or m in only
    results = {"mb": args.mb}
    env = Env(tether)
    try:
        data = env.path("mixed.txt")
        mixed_text(data, args.mb)
        if want("attached"):
            r = {t: attached(env, t, data, i) for i, t in enumerate(["raw", "tether", "tmux", "screen", "dtach"])}
            results["attached"] = r
        reset(env)
        if want("detached"):
            r = {"raw": detached(env, "raw", data, 100), "tether": detached(env, "tether", data, 101)}
            for i, t in enumerate(["tmux", "screen", "dtach"]):
                r[t] = detached_terminal(env, t, data, 110 + i)
            results["detached"] = r
        reset(env)
        if want("latency"):
            lat = {
                "raw": echo_latency(lambda: ["cat"], env, 0),
                "tether": echo_latency(lambda: (env.run([env.tether, "new", "-d", "lat", "--", "cat"]), [env.tether, "attach", "lat"])[1], env, 1),
                "tmux": echo_latency(lambda: ["tmux", "-L", "bench", "-f", "/dev/null", "new-session", "-s", "lat", "cat"], env, 2),
                "screen": echo_latency(lambda: ["screen", "-S", "latscr", "cat"], env, 3),
                "dtach": echo_latency(lambda: ["dtach", "-c", env.path("run", "lat"), "-E", "cat"], env, 4),
            }
            try:
                base, port, sshd_port = ssh_setup(env)
                env.run([tether, "new", "-d", "latssh", "--", "cat"])
                lat["tether_ssh"] = echo_latency(lambda: base + ["-p", str(port), "127.0.0.1", "attach", "latssh"], env, 5)
                lat["openssh"] = echo_latency(lambda: base + ["-p", str(sshd_port), "127.0.0.1", "cat"], env, 6)
            except Exception as e:  # noqa: BLE001 - report and go on
                lat["ssh_error"] = str(e)
            results["latency_ms"] = lat
        reset(env)
        if want("reattach"):
            results["reattach_s"] = {t: reattach(env, t, i) for i, t in enumerate(["tether", "tmux", "screen"])}
        reset(env)
        if want("memory"):
            results["idle_kb_per_session"] = {t: idle_memory(env, t, args.sessions) for t in ["tether", "tmux", "screen", "dtach"]}
            after, tmux_after = after_output(env, data)
            results["after_output_kb"] = {"tether_keeper": after, "tmux_server": tmux_after}
        reset(env)
        if want("recording"):
            ratio, verify_mbs, grep_mbs = recording_stats(env, data, args.mb)
            plain = env.path("plain.txt")
            plain_text(plain, args.mb)
            plain_ratio, _, _ = recording_stats(env, plain, args.mb, name="recplain")
            results["recording"] = {"size_ratio": ratio, "plain_size_ratio": plain_ratio, "verify_MBps": verify_mbs, "grep_MBps": grep_mbs}
        reset(env)
        if want("scale") and args.scale:
            rows, ok, check_ms = scale(env, args.scale)
            results["scale"] = {"rows": rows, "check_ok": ok, "check_ms": check_ms}
    finally:
        env.cleanup()
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(results, f, indent=2)
    report(results)


def report(r):
    def ratio(a, b):
        return f"{a / b:.2f}x" if a and b else "n/a"

    print(f"\n== tether benchmark ({r['mb']} MiB of mixed text, {COLS}x{ROWS}) ==")
    if "attached" in r:
        a = r["attached"]
        print("\nattached throughput: seconds until the last byte reaches the client (job's own time)")
        for t, (last, job) in a.items():
            print(f"  {t:<8} {last:7.2f} s   job {job if job is None else round(job, 2)}")
        print(f"  target: tether at least dtach's, 1.5x tmux's job throughput: tether/dtach {ratio(a['dtach'][0], a['tether'][0])} (>=1 is better), tmux job/tether job {ratio(a['tmux'][1], a['tether'][1])} (>=1.5)")
    if "detached" in r:
        d = r["detached"]
        print("\ndetached, recording on: the job's finishing time")
        for t, v in d.items():
            print(f"  {t:<8} {v if v is None else round(v, 2)} s")
        print(f"  target: tether within 1.25x of raw: {ratio(d['tether'], d['raw'])}")
    if "latency_ms" in r:
        l = r["latency_ms"]
        print("\nkeystroke echo latency, median / p99 ms")
        for t, v in l.items():
            print(f"  {t:<10} {v if isinstance(v, str) else f'{v[0]:.3f} / {v[1]:.3f}'}")
        if "dtach" in l and "tether" in l:
            print(f"  target: tether median within 1.2x of dtach: {ratio(l['tether'][0], l['dtach'][0])}")
        if "openssh" in l and "tether_ssh" in l:
            print(f"  target: over SSH within 1.2x of OpenSSH: {ratio(l['tether_ssh'][0], l['openssh'][0])}")
    if "reattach_s" in r:
        re_ = r["reattach_s"]
        print("\nreattach to a full screen with 10,000 lines of history (median of 11)")
        for t, v in re_.items():
            print(f"  {t:<8} {v * 1000:.1f} ms")
        print(f"  target: no slower than tmux: {ratio(re_['tether'], re_['tmux'])}")
    if "idle_kb_per_session" in r:
        print("\nmemory per idle session (RSS / PSS, MB)")
        for t, (rss, pss) in r["idle_kb_per_session"].items():
            print(f"  {t:<8} {rss / 1024:.2f} / {pss / 1024:.2f}")
        (after, _), tmux_after = r["after_output_kb"]["tether_keeper"], r["after_output_kb"]["tmux_server"]
        print(f"  after {r['mb']} MiB of output: tether keeper RSS {after / 1024:.1f} MB; tmux server {tmux_after[0] / 1024 if tmux_after else 'n/a'} MB (history 10,000 lines)")
        print("  targets: idle <= 4 MB RSS and 2 MB PSS; after output <= 32 MB")
    if "recording" in r:
        rec = r["recording"]
        print(f"\nrecording size per output byte (target <= 1.1 for text): plain text {rec['plain_size_ratio']:.3f}, mixed text with colours {rec['size_ratio']:.3f}")
        print(f"verify {rec['verify_MBps']:.0f} MB/s; grep {rec['grep_MBps']:.0f} MB/s (of output)")
    if "scale" in r:
        print("\nscale: sessions, ls time, keeper memory")
        for row in r["scale"]["rows"]:
            print(f"  {row['sessions']:>5}  ls {row['ls_ms']:8.1f} ms   RSS {row['rss_mb']:8.1f} MB   PSS {row['pss_mb']:8.1f} MB ({row['pss_per_session_mb']:.2f} MB a session)")
        print(f"  check at the largest size: {'ok' if r['scale']['check_ok'] else 'FAILED'} in {r['scale']['check_ms']:.0f} ms")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""The archive's benchmark (docs/ARCHIVE.md, docs/PERFORMANCE.md).

    python3 bench/archive.py [--sessions 50] [--seconds 20] [--mb 50] [--backlog 10000]

Starts moto's S3 server on loopback (pip install 'moto[server]'), then:

* witness lag: SESSIONS sessions print lines for SECONDS seconds while
  `tether archive` runs; every signed checkpoint's lag is the time the
  server acknowledged its witness object (the uploader's journal) minus
  the time written in the checkpoint (whole seconds, so each lag reads up
  to one second long); p50, p99, max;
* upload throughput: the bytes of closed segments shipped per second by
  `tether archive --once` on those recordings, compressed and raw;
* keeper throughput with the archive on and off: the job's own time to
  print MB MiB detached, with the uploader running (shipping the
  checkpoints as they come) and without, in the same run;
* a backlog: BACKLOG finished recordings not shipped yet (copies of one
  real recording), shipped by `tether archive --once`: its peak RSS and
  peak open files (sampled from /proc), objects shipped, and time.

Needs the release build (target/release/tether). Prints the numbers and
writes them to target/bench-archive.json.
"""
import argparse
import calendar
import json
import os
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (the main benchmark's helpers)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUCKET = "tether-bench"
KEYS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}


def s3_client(endpoint):
    import boto3
    return boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench",
                        aws_secret_access_key="bench-secret", region_name="us-east-1")


def keys(s3):
    out = {}
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET):
        for o in page.get("Contents", []):
            out[o["Key"]] = o["Size"]
    return out


def configure(env, endpoint, extra=""):
    os.makedirs(env.path("config", "tether"), exist_ok=True)
    with open(env.path("config", "tether", "config.toml"), "w") as f:
        f.write(f"{extra}[archive]\nurl = \"s3://{BUCKET}/bench\"\nendpoint = \"{endpoint}\"\nallow_http = true\n")
    env.env.update(KEYS)


def checkpoint_walls(env):
    """witness key suffix (BASE/SSSSSS-CCCCCCCCCC) -> wall time of that checkpoint."""
    walls = {}
    rec = env.path("data", "tether", "recordings")
    for name in os.listdir(rec):
        if not name.endswith(".cast"):
            continue
        parts = name[:-5].split(".")
        seg = int(parts[1]) if len(parts) > 1 else 0
        base = parts[0] + ".cast"
        with open(os.path.join(rec, name), "rb") as f:
            for line in f:
                if line.startswith(b"#tether:checkpoint "):
                    cp = json.loads(line[len(b"#tether:checkpoint "):])
                    t = calendar.timegm(time.strptime(cp["wall"], "%Y-%m-%dT%H:%M:%SZ"))
                    walls[f"{base}/{seg:06}-{cp['seq']:010}"] = t
    return walls


def witness_lag(env, s3, sessions, seconds):
    uploader = subprocess.Popen([env.tether, "archive"], env=env.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env.pids.append(uploader.pid)
    try:
        # 20 lines a second each, for SECONDS seconds, without a process
        # spawned per line (which would measure fork, not the archive).
        job = (f"exec python3 -c 'import time\nfor i in range({seconds * 20}):\n"
               f"    print(\"line\", i, time.time(), flush=True); time.sleep(0.05)'")
        for i in range(sessions):
            env.run([env.tether, "new", "-d", f"lag{i}", "--", "sh", "-c", job])
        start = time.time()
        # When each witness object was acknowledged by the server: the
        # uploader's journal (one entry a shipped object, with its time),
        # read as it grows (the uploader compacts it once segments ship).
        seen = {}
        journal = env.path("state", "tether", "archive", "journal")

        def read_journal():
            try:
                with open(journal) as f:
                    lines = f.readlines()
            except OSError:
                return
            for line in lines:
                try:
                    e = json.loads(line)
                except ValueError:
                    continue
                if "/witness/" in e.get("key", "") and e["key"] not in seen:
                    at = e["at"].rstrip("Z")
                    whole, _, frac = at.partition(".")
                    t = calendar.timegm(time.strptime(whole, "%Y-%m-%dT%H:%M:%S")) + float("0." + (frac or "0"))
                    seen[e["key"]] = t
        # While they print, then until nothing is pending (30 s at most).
        while time.time() < start + seconds:
            read_journal()
            time.sleep(0.25)
        while time.time() < start + seconds + 30 and pending(env):
            read_journal()
            time.sleep(0.25)
        read_journal()
        walls = checkpoint_walls(env)
        lags = []
        for k, t in seen.items():
            suffix = "/".join(k.split("/")[-2:])
            if suffix in walls:
                lags.append(t - walls[suffix])
        return lags
    finally:
        uploader.terminate()
        uploader.wait()


def pending(env):
    st = json.loads(env.run([env.tether, "archive", "--status", "--json"]).stdout)
    return st["pending_witness"] + st["pending_segments"]


def upload_throughput(env, s3):
    raw = sum(os.path.getsize(os.path.join(env.path("data", "tether", "recordings"), n))
              for n in os.listdir(env.path("data", "tether", "recordings")) if n.endswith(".cast"))
    before = sum(v for k, v in keys(s3).items() if "/recordings/" in k)
    start = time.perf_counter()
    env.run([env.tether, "archive", "--once"], check=False)
    took = time.perf_counter() - start
    packed = sum(v for k, v in keys(s3).items() if "/recordings/" in k) - before
    return raw, packed, took


def clear_recordings(env):
    """Removes the recordings so far: each run ships only its own."""
    rec = env.path("data", "tether", "recordings")
    for name in os.listdir(rec) if os.path.isdir(rec) else []:
        os.remove(os.path.join(rec, name))


def keeper_time(env, data, n, with_uploader):
    uploader = None
    if with_uploader:
        uploader = subprocess.Popen([env.tether, "archive"], env=env.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        env.pids.append(uploader.pid)
    try:
        return bench.detached(env, "tether", data, n)
    finally:
        if uploader:
            uploader.terminate()
            uploader.wait()


def backlog(env, s3, count):
    """Ships COUNT finished recordings at once; returns peak RSS (KiB), peak
    open files, objects shipped, seconds."""
    clear_recordings(env)
    env.run([env.tether, "new", "-d", "seed", "--", "sh", "-c", "seq 1 2000; sleep 2.5; echo done"])
    env.run([env.tether, "wait", "seed"])
    rec = env.path("data", "tether", "recordings")
    [seed] = [n for n in os.listdir(rec) if n.endswith(".cast")]
    with open(os.path.join(rec, seed), "rb") as f:
        data = f.read()
    env.run([env.tether, "rm", "seed"], check=False)
    os.remove(os.path.join(rec, seed))
    for n in [n for n in os.listdir(rec) if not n.endswith(".cast")]:
        os.remove(os.path.join(rec, n))
    # No session names them, and they are an hour old: closed.
    old = time.time() - 3600
    for i in range(count):
        path = os.path.join(rec, f"b{i}-20260101T000000Z.cast")
        with open(path, "wb") as f:
            f.write(data)
        os.utime(path, (old, old))
    before = len(keys(s3))
    start = time.perf_counter()
    p = subprocess.Popen([env.tether, "archive", "--once"], env=env.env,
                         stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env.pids.append(p.pid)
    peak_rss, peak_fds = 0, 0
    while p.poll() is None:
        try:
            with open(f"/proc/{p.pid}/status") as f:
                for line in f:
                    if line.startswith("VmHWM:"):
                        peak_rss = max(peak_rss, int(line.split()[1]))
            peak_fds = max(peak_fds, len(os.listdir(f"/proc/{p.pid}/fd")))
        except OSError:
            pass
        time.sleep(0.05)
    took = time.perf_counter() - start
    return peak_rss, peak_fds, len(keys(s3)) - before, took, p.returncode


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sessions", type=int, default=50)
    ap.add_argument("--seconds", type=int, default=20)
    ap.add_argument("--mb", type=int, default=50)
    ap.add_argument("--backlog", type=int, default=10000)
    args = ap.parse_args()
    port = bench.free_port()
    endpoint = f"http://127.0.0.1:{port}"
    moto = subprocess.Popen(["moto_server", "-H", "127.0.0.1", "-p", str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    env = bench.Env(os.path.join(ROOT, "target", "release", "tether"))
    results = {}
    try:
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.2)
        s3 = s3_client(endpoint)
        s3.create_bucket(Bucket=BUCKET)
        configure(env, endpoint, "segment_bytes = 1048576\n")
        lags = sorted(witness_lag(env, s3, args.sessions, args.seconds))
        q = lambda p: lags[min(len(lags) - 1, int(p * len(lags)))] if lags else None
        results["witness_lag_s"] = {"checkpoints": len(lags), "p50": q(0.5), "p99": q(0.99), "max": lags[-1] if lags else None}
        bench.reset(env)
        data = env.path("mixed.txt")
        bench.mixed_text(data, args.mb)
        # Upload: the recording of MB MiB of output, not shipped yet.
        clear_recordings(env)
        bench.detached(env, "tether", data, 199)
        raw, packed, took = upload_throughput(env, s3)
        results["upload"] = {"raw_bytes": raw, "compressed_bytes": packed, "seconds": took}
        bench.reset(env)
        off, on = [], []
        for i in range(3):
            clear_recordings(env)
            off.append(keeper_time(env, data, 200 + 2 * i, False))
            clear_recordings(env)
            on.append(keeper_time(env, data, 201 + 2 * i, True))
        results["keeper_job_seconds"] = {"archive_off": off, "archive_on": on}
        bench.reset(env)
        if args.backlog:
            rss, fds, objects, took, code = backlog(env, s3, args.backlog)
            results["backlog"] = {"recordings": args.backlog, "peak_rss_kib": rss, "peak_fds": fds,
                                  "objects": objects, "seconds": took, "exit": code}
    finally:
        env.cleanup()
        moto.terminate()
        moto.wait()
    os.makedirs(os.path.join(ROOT, "target"), exist_ok=True)
    with open(os.path.join(ROOT, "target", "bench-archive.json"), "w") as f:
        json.dump(results, f, indent=2)
    w = results["witness_lag_s"]
    print(f"\n== tether archive benchmark ({args.sessions} sessions printing for {args.seconds} s) ==")
    print(f"witness lag over {w['checkpoints']} checkpoints: p50 {w['p50']:.2f} s, p99 {w['p99']:.2f} s, max {w['max']:.2f} s (target: within 5 s)")
    u = results["upload"]
    print(f"upload: {u['raw_bytes'] / 1e6:.1f} MB of segments ({u['compressed_bytes'] / 1e6:.1f} MB zstd) in {u['seconds']:.2f} s: "
          f"{u['raw_bytes'] / 1e6 / max(u['seconds'], 1e-9):.1f} MB/s raw")
    k = results["keeper_job_seconds"]
    m_off, m_on = statistics.median(k["archive_off"]), statistics.median(k["archive_on"])
    print(f"keeper: {args.mb} MiB detached, the job's own time, median of 3: archive off {m_off:.2f} s, on {m_on:.2f} s "
          f"(on/off {m_on / m_off:.2f}x)")
    if "backlog" in results:
        b = results["backlog"]
        print(f"backlog: {b['recordings']} recordings, {b['objects']} objects shipped in {b['seconds']:.1f} s "
              f"(exit {b['exit']}); uploader peak RSS {b['peak_rss_kib'] / 1024:.1f} MiB, peak open files {b['peak_fds']}")


if __name__ == "__main__":
    main()

#!/usr/bin/env python3
"""A paramiko client for tests/clients.rs: what Ansible, Fabric and other
Python tools do to an SSH server, one scenario per subcommand.

    paramiko_client.py SCENARIO --port P --key KEY --host-key HOSTKEY.pub [ARGS]

Prints one JSON object (what it saw) and exits 0, or prints why it failed
and exits 1. Every wait is bounded; a server that does not answer is a
failure ("no reply"), never a hang.
"""

import argparse
import json
import os
import socket
import sys
import threading
import time

import paramiko
from paramiko.common import cMSG_CHANNEL_REQUEST
from paramiko.message import Message

TIMEOUT = 15.0


class Failed(Exception):
    pass


def within(seconds, what, fn, *args):
    """Runs fn(*args) on a thread; fails with "no reply" if it takes longer."""
    box = {}

    def run():
        try:
            box["value"] = fn(*args)
        except BaseException as e:  # noqa: BLE001 - reported to the caller
            box["error"] = e

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise Failed(f"no reply to {what} within {seconds} s")
    if "error" in box:
        raise box["error"]
    return box.get("value")


def connect(args, disabled=None):
    sock = socket.create_connection(("127.0.0.1", args.port), timeout=TIMEOUT)
    t = paramiko.Transport(sock, disabled_algorithms=disabled or {})
    t.start_client(timeout=TIMEOUT)
    expected_type, expected_b64 = open(args.host_key).read().split()[:2]
    key = t.get_remote_server_key()
    if key.get_name() != expected_type or key.get_base64() != expected_b64:
        raise Failed(f"host key {key.get_name()} is not the daemon's {expected_type} key")
    t.auth_publickey("tester", paramiko.Ed25519Key.from_private_key_file(args.key))
    if not t.is_authenticated():
        raise Failed("not authenticated")
    return t


def run(t, command, timeout=TIMEOUT):
    """Runs a command on a new channel: (exit status, stdout, stderr)."""
    chan = t.open_session(timeout=timeout)
    chan.settimeout(timeout)
    chan.exec_command(command)
    out = chan.makefile("rb").read()
    err = chan.makefile_stderr("rb").read()
    status = chan.recv_exit_status()
    chan.close()
    return status, out.decode(errors="replace"), err.decode(errors="replace")


def ok(t, command):
    status, out, err = within(TIMEOUT, command, run, t, command)
    if status != 0:
        raise Failed(f"{command!r} exited {status}: {err}")
    return out


def keepalive(t):
    """A global request that wants a reply (OpenSSH's ServerAliveInterval)."""
    started = time.monotonic()
    within(10, "a keepalive", t.global_request, "keepalive@openssh.com", None, True)
    return time.monotonic() - started


def hostkey(args):
    t = connect(args, {"keys": ["ssh-ed25519"]})
    name = t.get_remote_server_key().get_name()
    ok(t, "ls --json")
    t.close()
    return {"host_key": name}


def reuse(args):
    t = connect(args)
    for i in range(args.count):
        ok(t, "ls")
    t.close()
    return {"commands": args.count}


def channel_request(t, chan, kind, payload):
    """Sends a channel request with want_reply and waits for the answer:
    True (success) or False (failure). Paramiko closes a channel whose
    request failed."""
    m = Message()
    m.add_byte(cMSG_CHANNEL_REQUEST)
    m.add_int(chan.remote_chanid)
    m.add_string(kind)
    m.add_boolean(True)
    for item in payload:
        if isinstance(item, int):
            m.add_int(item)
        else:
            m.add_string(item)
    chan._event_pending()
    t._send_user_message(m)
    try:
        within(10, kind, chan._wait_for_event)
        return True
    except paramiko.SSHException:
        return False


def requests(args):
    t = connect(args)
    answers = {}
    # x11-req on a fresh channel, paramiko's own call.
    chan = t.open_session()
    try:
        within(10, "x11-req", chan.request_x11)
        answers["x11-req"] = True
    except paramiko.SSHException:
        answers["x11-req"] = False
    # signal on a channel running a command.
    chan = t.open_session()
    chan.exec_command(f"wait {args.session}")
    answers["signal"] = channel_request(t, chan, "signal", ["TERM"])
    # window-change with a reply wanted, on a channel with a terminal.
    chan = t.open_session()
    chan.get_pty()
    answers["window-change"] = channel_request(t, chan, "window-change", [100, 30, 0, 0])
    # Replies stay in order: a command right after still works.
    answers["ls"] = ok(t, "ls").strip()
    t.close()
    return answers


def flood(args):
    """Floods a command that never reads its input; the same connection
    must keep serving other channels and keepalives meanwhile."""
    t = connect(args)
    chan = t.open_session()
    chan.exec_command(f"wait {args.session}")
    sent = {"bytes": 0}
    block = b"x" * 32768

    def pour():
        try:
            while sent["bytes"] < args.mbytes << 20:
                chan.sendall(block)
                sent["bytes"] += len(block)
        except (OSError, paramiko.SSHException) as e:
            sent["error"] = str(e)

    pouring = threading.Thread(target=pour, daemon=True)
    pouring.start()
    # While it pours: other channels and keepalives on the same connection.
    others = 0
    slowest = 0.0
    while pouring.is_alive() or others < 5:
        started = time.monotonic()
        ok(t, "ls")
        slowest = max(slowest, keepalive(t), time.monotonic() - started)
        others += 1
        if others > 200:
            break
    pouring.join(60)
    if pouring.is_alive():
        raise Failed(f"the flood stalled after {sent['bytes']} bytes")
    if "error" in sent:
        raise Failed(f"the flood failed after {sent['bytes']} bytes: {sent['error']}")
    # The flooded command is still there, still waiting.
    if chan.exit_status_ready():
        raise Failed("the flooded command ended")
    chan.close()
    t.close()
    return {"flooded": sent["bytes"], "others": others, "slowest": slowest}


def overflow(args):
    """Floods an attachment to a job that reads nothing: that channel alone
    is closed with a message; the connection goes on."""
    t = connect(args)
    chan = t.open_session()
    chan.get_pty()
    chan.exec_command(f"attach {args.session}")
    chan.settimeout(TIMEOUT)
    # Drain its output (echo, redraws) so that only input is stuck.
    seen = bytearray()

    def drain():
        try:
            while True:
                data = chan.recv(65536)
                if not data:
                    return
                seen.extend(data)
        except (OSError, paramiko.SSHException):
            return

    draining = threading.Thread(target=drain, daemon=True)
    draining.start()
    sent = {"bytes": 0}
    block = b"y" * 32768

    def pour():
        try:
            while sent["bytes"] < args.mbytes << 20 and not chan.closed:
                chan.sendall(block)
                sent["bytes"] += len(block)
        except (OSError, paramiko.SSHException) as e:
            sent["error"] = str(e)

    pouring = threading.Thread(target=pour, daemon=True)
    pouring.start()
    slowest = 0.0
    while pouring.is_alive():
        started = time.monotonic()
        ok(t, "ls")
        slowest = max(slowest, keepalive(t), time.monotonic() - started)
        time.sleep(0.05)
    status = within(TIMEOUT, "the exit status", chan.recv_exit_status)
    draining.join(TIMEOUT)
    said = b""
    while chan.recv_stderr_ready():
        said += chan.recv_stderr(65536)
    ok(t, "ls")
    t.close()
    return {
        "sent": sent["bytes"],
        "status": status,
        "said": said.decode(errors="replace"),
        "slowest": slowest,
    }


def main():
    p = argparse.ArgumentParser()
    p.add_argument("scenario")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--key", required=True)
    p.add_argument("--host-key", required=True)
    p.add_argument("--session", default="")
    p.add_argument("--count", type=int, default=40)
    p.add_argument("--mbytes", type=int, default=8)
    args = p.parse_args()
    scenarios = {
        "hostkey": hostkey,
        "reuse": reuse,
        "requests": requests,
        "flood": flood,
        "overflow": overflow,
    }
    try:
        print(json.dumps(scenarios[args.scenario](args)), flush=True)
    except Exception as e:  # noqa: BLE001 - the test prints it
        print(f"{args.scenario}: {type(e).__name__}: {e}", file=sys.stderr, flush=True)
        os._exit(1)
    # Threads blocked on a dead server must not keep the process alive.
    os._exit(0)


if __name__ == "__main__":
    main()

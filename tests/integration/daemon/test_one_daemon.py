"""One daemon per user and base directory, whatever environment a front door was started with.

MCP clients launch ``voicemode-mcp`` with a trimmed environment (the SDK passes only HOME, LOGNAME, PATH,
SHELL, TERM, USER), so it cannot see the ``XDG_RUNTIME_DIR`` the running daemon put its socket under.
"""

from __future__ import annotations

import getpass
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from voicemoded.testing.daemon import DaemonHandle, make_env
from voicemoded.testing.jsonrpc import INITIALIZE
from voicemoded.testing.ports import free_port

MCP_CLIENT_ENV = ("HOME", "LOGNAME", "PATH", "SHELL", "TERM", "USER")


@pytest.fixture
def session_daemon() -> Iterator[DaemonHandle]:
    """A daemon as a login session starts it: socket under $XDG_RUNTIME_DIR, state under ~/.voicemode."""
    root = Path(tempfile.mkdtemp(prefix="vm-"))
    home, runtime = root / "home", root / "xdg"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    base = home / ".voicemode"
    socket = runtime / "voicemode" / "voicemoded.sock"
    env = make_env(root, socket, base, home)
    for key in ("VOICEMODE_BASE_DIR", "VOICEMODE_SOCKET"):
        del env[key]
    env["XDG_RUNTIME_DIR"] = str(runtime)
    env["VOICEMODE_PIPER_PORT"] = str(free_port())
    handle = DaemonHandle(root, socket, base, home, env)
    try:
        yield handle
    finally:
        handle.stop()
        shutil.rmtree(root, ignore_errors=True)


def trimmed_env(daemon: DaemonHandle) -> dict[str, str]:
    """What an MCP client hands its server: none of the session's XDG_* or VOICEMODE_* variables."""
    full = {
        "HOME": str(daemon.home),
        "LOGNAME": getpass.getuser(),
        "PATH": f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        "SHELL": "/bin/sh",
        "TERM": "dumb",
        "USER": getpass.getuser(),
    }
    return {k: full[k] for k in MCP_CLIENT_ENV}


def ctl(
    daemon: DaemonHandle, *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """voicemodectl without --socket: it finds the daemon the way a user's shell would."""
    return subprocess.run(
        [sys.executable, "-m", "voicemodectl", *args],
        env=env if env is not None else daemon.env,
        cwd=daemon.root,
        capture_output=True,
        text=True,
        timeout=180,
    )


def running_piper(daemon: DaemonHandle) -> psutil.Process:
    started = ctl(daemon, "--json", "service", "start", "piper")
    assert started.returncode == 0, started.stderr
    return psutil.Process(json.loads(started.stdout)["pid"])


def voicemoded_processes(root: Path) -> list[psutil.Process]:
    """Every voicemoded whose command line or environment belongs to this test's folder."""
    found = []
    for proc in psutil.process_iter(["cmdline", "environ"]):
        cmdline = " ".join(proc.info["cmdline"] or ())
        environ = proc.info["environ"] or {}
        if "voicemoded" in cmdline and "engines" not in cmdline and str(root) in environ.get("HOME", ""):
            found.append(proc)
    return found


def mcp_initialize(env: dict[str, str], cwd: Path) -> tuple[dict[str, object], str]:
    """One real ``initialize`` through the real voicemode-mcp; returns the reply and its stderr."""
    tunnel = subprocess.Popen(
        ["voicemode-mcp"],
        env=env,
        cwd=cwd,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert tunnel.stdin is not None and tunnel.stdout is not None
    tunnel.stdin.write(json.dumps(INITIALIZE) + "\n")
    tunnel.stdin.flush()
    reply = json.loads(tunnel.stdout.readline())
    tunnel.stdin.close()
    assert tunnel.wait(30) == 0
    assert tunnel.stderr is not None
    return reply, tunnel.stderr.read()


def test_one_daemon_per_base_dir_whatever_the_front_door_environment(session_daemon: DaemonHandle) -> None:
    daemon = session_daemon
    daemon.start()
    assert daemon.process is not None
    piper = running_piper(daemon)
    pid_file = daemon.base / "services" / "piper.pid"
    recorded = pid_file.read_text()
    env = trimmed_env(daemon)

    # The trimmed environment computes another socket path; the base dir's record leads to the daemon.
    status = ctl(daemon, "--json", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["pid"] == daemon.process.pid
    reply, stderr = mcp_initialize(env, daemon.root)
    assert reply.get("id") == 1 and "result" in reply, reply
    assert "started voicemoded" not in stderr, stderr
    assert not (daemon.base / "run" / "voicemoded.sock").exists(), "no second daemon's socket"

    # A second daemon started outright on another socket refuses before it touches anything.
    other_socket = daemon.root / "other" / "voicemoded.sock"
    second = subprocess.run(
        [sys.executable, "-m", "voicemoded", "--socket", str(other_socket)],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 3, second.stderr
    assert f"pid {daemon.process.pid}" in second.stderr
    assert str(daemon.socket) in second.stderr and str(daemon.base) in second.stderr
    assert not other_socket.exists()

    # A front door told to use that other socket does not start one there: it names the running daemon.
    started = subprocess.run(
        [sys.executable, "-m", "voicemodectl", "--socket", str(other_socket), "daemon", "start"],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert started.returncode != 0
    assert f"pid {daemon.process.pid}" in started.stderr and str(daemon.socket) in started.stderr

    assert [p.pid for p in voicemoded_processes(daemon.root)] == [daemon.process.pid]
    assert piper.is_running() and piper.status() != psutil.STATUS_ZOMBIE
    assert pid_file.read_text() == recorded
    listed = json.loads(ctl(daemon, "--json", "service", "status", "piper").stdout)
    assert listed["state"] == "RUNNING" and listed["pid"] == piper.pid


def test_the_record_is_emptied_when_the_daemon_stops(session_daemon: DaemonHandle) -> None:
    daemon = session_daemon
    daemon.start()
    record = daemon.base / "run" / "voicemoded.lock"
    assert json.loads(record.read_text()) == {"pid": daemon.process.pid if daemon.process else 0,
                                              "socket": str(daemon.socket)}  # fmt: skip
    assert daemon.stop() == 0
    assert record.read_text() == ""
    assert ctl(daemon, "status", env=trimmed_env(daemon)).returncode == 3

"""No orphan after the daemon itself is SIGKILLed and started again; children killed under a live daemon
come back by themselves."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import grpc
import psutil

from voicemoded.api.v1 import daemon_pb2
from voicemoded.supervisor.orphans import is_gone, wait_gone
from voicemoded.testing.children import HERE, stand_in_whisper_server
from voicemoded.testing.daemon import DaemonHandle
from voicemoded.testing.ports import free_port


async def _host(base: Path, port: int) -> tuple[asyncio.subprocess.Process, dict[str, Any]]:
    env = {**os.environ, "HOME": str(base), "VOICEMODE_BASE_DIR": str(base)}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-u",
        str(HERE / "supervisor_host.py"),
        str(base),
        str(port),
        stdout=asyncio.subprocess.PIPE,
        env=env,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 20)
    assert line, "the host exited before its child was RUNNING"
    return proc, json.loads(line)


def _alive_after(procs: list[psutil.Process], timeout: float) -> list[psutil.Process]:
    return wait_gone(procs, timeout)


async def test_children_die_with_a_sigkilled_daemon_and_the_next_one_ends_the_leftovers(
    tmp_path: Path,
) -> None:
    port = free_port()
    pid_file = tmp_path / "run" / "engine.pid"
    host1, first = await _host(tmp_path, port)
    leader = psutil.Process(first["pid"])
    (grandchild,) = leader.children()
    assert json.loads(pid_file.read_text())["pid"] == leader.pid

    host1.kill()
    await host1.wait()
    # The parent-death signal takes the direct child down with the daemon...
    assert await asyncio.to_thread(_alive_after, [leader], 5.0) == []
    # ...but not its own children: those are what the next daemon must find and end.
    assert grandchild.is_running()
    assert pid_file.is_file()

    host2, second = await _host(tmp_path, port)
    try:
        assert await asyncio.to_thread(_alive_after, [grandchild], 5.0) == []
        assert second["leftovers"] == [{"name": "engine", "pids": str(grandchild.pid)}]
        assert second["pid"] != first["pid"]
        assert json.loads(pid_file.read_text())["pid"] == second["pid"]
        new_leader = psutil.Process(second["pid"])
        new_group = [new_leader, *new_leader.children()]
    finally:
        host2.send_signal(signal.SIGTERM)
        await asyncio.wait_for(host2.wait(), 10)
    assert host2.returncode == 0
    assert await asyncio.to_thread(_alive_after, new_group, 5.0) == []
    assert not pid_file.exists()


# --- the real daemon -------------------------------------------------------------------------------------


class ServiceEvents:
    """The daemon's supervisor events as they come, awaited by condition (never by sleeping)."""

    def __init__(self, daemon: DaemonHandle) -> None:
        self.events: list[dict[str, str]] = []
        self._changed = threading.Condition()
        self._client = daemon.client()
        request = daemon_pb2.WatchEventsRequest(replay=500, subsystems=["supervisor"])
        self._stream = self._client.daemon.WatchEvents(request)
        threading.Thread(target=self._follow, daemon=True).start()

    def _follow(self) -> None:
        with contextlib.suppress(grpc.RpcError):
            for event in self._stream:
                with self._changed:
                    self.events.append({"kind": event.kind, **event.fields})
                    self._changed.notify_all()

    def wait_running(self, name: str, other_than: int | None = None, timeout: float = 30.0) -> int:
        """The pid of ``name`` once an event says it is RUNNING (with a pid other than ``other_than``)."""

        def found() -> int | None:
            for e in reversed(self.events):
                if e["kind"] == "service.state" and e.get("name") == name and e.get("state") == "RUNNING":
                    pid = int(e["pid"])
                    return pid if pid != other_than else None
            return None

        with self._changed:
            assert self._changed.wait_for(lambda: found() is not None, timeout), self.events[-5:]
            pid = found()
        assert pid is not None
        return pid

    def close(self) -> None:
        self._stream.cancel()
        self._client.close()


class HeldSpeechEndpoint:
    """An OpenAI-compatible TTS endpoint that takes a request and holds it: a turn caught mid-answer."""

    def __init__(self) -> None:
        self.arrived = threading.Event()
        self.release = threading.Event()
        held = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                self._reply(b'{"object": "list", "data": []}')

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                held.arrived.set()
                held.release.wait(30)
                self._reply(b"")

            def _reply(self, body: bytes) -> None:
                with contextlib.suppress(OSError):
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


def _whisper_with_grandchild(daemon: DaemonHandle) -> dict[str, str]:
    """A cheap real engine child (see fails_while.py) that forks a grandchild, as worker pools do."""
    env = stand_in_whisper_server(daemon.root, broken_while=daemon.root / "no", grandchild=True)
    return {**env, "VOICEMODE_AUTOSTART_SERVICES": "whisper"}


def _processes_of(root: Path) -> list[psutil.Process]:
    """Every live process started for this test's daemons (their HOME is under ``root``)."""
    found = []
    for proc in psutil.process_iter(["environ"]):
        environ = proc.info["environ"] or {}
        if environ.get("HOME", "").startswith(str(root)) and not is_gone(proc):
            found.append(proc)
    return found


def test_a_daemon_sigkilled_mid_answer_leaves_no_orphan_once_restarted(daemon_env: DaemonHandle) -> None:
    endpoint = HeldSpeechEndpoint()
    env = {**_whisper_with_grandchild(daemon_env), "VOICEMODE_TTS_BASE_URLS": endpoint.url}
    try:
        daemon_env.start(env)
        events = ServiceEvents(daemon_env)
        leader = psutil.Process(events.wait_running("whisper"))
        (grandchild,) = leader.children()
        events.close()
        out = daemon_env.root / "answer.wav"
        say = subprocess.Popen(
            [sys.executable, "-m", "voicemodectl", "--socket", str(daemon_env.socket), "say", "--out",
             str(out), "An answer that is cut off by a crash."],
            env=daemon_env.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )  # fmt: skip
        assert endpoint.arrived.wait(30), "the answer never reached the speech endpoint"

        assert daemon_env.process is not None
        first = daemon_env.process
        first.kill()  # the daemon only: its children must not need a group signal to go
        first.wait(10)
        assert say.wait(30) != 0
        assert wait_gone([leader], 5.0) == [], "the parent-death signal ends the direct child"
        assert grandchild.is_running(), "a grandchild outlives the daemon until the next one ends it"

        daemon_env.start(env)
        events = ServiceEvents(daemon_env)
        new_pid = events.wait_running("whisper", other_than=leader.pid)
        events.close()
        assert wait_gone([grandchild], 10.0) == []
        ended = daemon_env.log_events("service.leftover_found")
        assert [(e["service"], e["pids"]) for e in ended] == [("whisper", [grandchild.pid])]
        new_leader = psutil.Process(new_pid)
        expected = {daemon_env.process.pid, new_pid, *(p.pid for p in new_leader.children(recursive=True))}
        survivors = {p.pid for p in _processes_of(daemon_env.root)} - expected
        assert survivors == set(), [psutil.Process(p).cmdline() for p in survivors]
        assert daemon_env.ctl("status").returncode == 0
    finally:
        endpoint.close()


def test_children_killed_at_random_are_restarted_and_the_daemon_stays_healthy(
    daemon_env: DaemonHandle,
) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    print(f"seed {seed}")
    daemon_env.start(_whisper_with_grandchild(daemon_env))
    events = ServiceEvents(daemon_env)
    seen: list[psutil.Process] = []
    pid: int | None = None
    kills = 3
    try:
        with daemon_env.client() as client:
            for _ in range(kills):
                pid = events.wait_running("whisper", other_than=pid)
                leader = psutil.Process(pid)
                seen += [leader, *leader.children()]
                for _ in range(rng.randrange(4)):  # the daemon is in use when the child dies
                    assert client.status().pid == daemon_env.process.pid  # type: ignore[union-attr]
                os.kill(pid, signal.SIGKILL)
            pid = events.wait_running("whisper", other_than=pid)
            status = client.status()
        health = {h.name: h.state for h in status.subsystems}
        assert health["supervisor"] == daemon_pb2.SubsystemHealth.OK
        info = json.loads(daemon_env.ctl("--json", "service", "status", "whisper").stdout)
        assert info["state"] == "RUNNING" and info["pid"] == pid and info["restarts"] == kills
        assert wait_gone(seen, 5.0) == [], "each killed child's grandchild went with its group"
        zombies = [p for p in psutil.Process(daemon_env.process.pid).children()  # type: ignore[union-attr]
                   if p.status() == psutil.STATUS_ZOMBIE]  # fmt: skip
        assert zombies == []
    finally:
        events.close()

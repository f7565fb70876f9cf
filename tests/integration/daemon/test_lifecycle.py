"""The daemon process: socket, lock, stale socket, signals, systemd notify, health service."""

from __future__ import annotations

import json
import os
import signal
import socket as socketlib
import stat
import subprocess
import sys
import threading
import time

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc

from voicemoded.api.client import Client, DaemonNotRunning
from voicemoded.api.v1 import daemon_pb2
from voicemoded.testing.daemon import DaemonHandle


def test_status_over_the_socket(daemon: DaemonHandle) -> None:
    with daemon.client() as client:
        status = client.status()
    assert daemon.process is not None
    assert status.pid == daemon.process.pid
    assert status.socket == str(daemon.socket)
    assert status.base_dir == str(daemon.base)
    assert status.version
    assert status.uptime_seconds > 0
    assert [s.layer for s in status.config_sources] == ["default", "daemon-environment", "user"]
    assert {h.name for h in status.subsystems} >= {"config"}


def test_socket_folder_and_files_are_private(daemon: DaemonHandle) -> None:
    assert stat.S_IMODE(daemon.socket.parent.stat().st_mode) == 0o700
    assert stat.S_ISSOCK(daemon.socket.stat().st_mode)
    assert stat.S_IMODE(daemon.socket.stat().st_mode) == 0o600
    lock = daemon.socket.with_name(daemon.socket.name + ".lock")
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert lock.read_text().strip() == str(daemon.process.pid if daemon.process else "")


def test_grpc_health_service_reports_serving(daemon: DaemonHandle) -> None:
    with grpc.insecure_channel(f"unix:{daemon.socket}") as channel:
        stub = health_pb2_grpc.HealthStub(channel)
        for service in ("", "voicemode.v1.Daemon"):
            reply = stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
            assert reply.status == health_pb2.HealthCheckResponse.SERVING


def test_second_daemon_on_the_same_socket_refuses(daemon: DaemonHandle) -> None:
    second = subprocess.run(
        [sys.executable, "-m", "voicemoded", "--socket", str(daemon.socket)],
        env=daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert second.returncode == 3
    assert f"pid {daemon.process.pid if daemon.process else ''}" in second.stderr
    assert "already serving" in second.stderr
    # The first one is untouched.
    with daemon.client() as client:
        assert client.status().pid == daemon.process.pid  # type: ignore[union-attr]


def test_stale_socket_from_a_killed_daemon_is_replaced(daemon: DaemonHandle) -> None:
    assert daemon.process is not None
    os.killpg(daemon.process.pid, signal.SIGKILL)
    daemon.process.wait(10)
    assert daemon.socket.exists(), "a SIGKILLed daemon leaves its socket behind"
    with daemon.client() as client, pytest.raises(DaemonNotRunning):
        client.status()
    daemon.start()
    with daemon.client() as client:
        assert client.status().pid == daemon.process.pid


def test_sigterm_stops_gracefully_and_ends_event_streams(daemon: DaemonHandle) -> None:
    client = daemon.client()
    stream = client.daemon.WatchEvents(daemon_pb2.WatchEventsRequest(replay=50))
    kinds: list[str] = []
    finished = threading.Event()
    outcome: list[object] = []

    def follow() -> None:
        try:
            for event in stream:
                kinds.append(event.kind)
            outcome.append("ended")
        except grpc.RpcError as exc:
            outcome.append(exc.code())
        finally:
            finished.set()

    threading.Thread(target=follow, daemon=True).start()
    # A call in flight while the signal lands still gets its answer.
    assert client.status().pid
    daemon.signal(signal.SIGTERM)
    assert daemon.process is not None
    assert daemon.process.wait(15) == 0
    assert finished.wait(10)
    assert outcome == ["ended"], f"the event stream should end cleanly, got {outcome}"
    assert "daemon.started" in kinds and "daemon.stopping" in kinds
    assert not daemon.socket.exists()
    assert daemon.socket.with_name(daemon.socket.name + ".lock").read_text() == ""
    assert '"daemon.stopped"' in daemon.log_text()
    client.close()


def test_a_watcher_hanging_up_ends_its_stream_without_an_error_in_the_daemon(daemon: DaemonHandle) -> None:
    # A browser tab closing mid-stream is the common case: the daemon must close the subscription cleanly.
    client = daemon.client()
    for _ in range(3):
        stream = client.watch_events(replay=5)
        assert next(stream).kind
        stream.cancel()
    assert client.status().pid
    time.sleep(0.3)
    log = daemon.log_text()
    assert "rpc.internal_error" not in log and "already running" not in log, log[-2000:]
    client.close()


def test_shutdown_rpc_stops_the_daemon(daemon: DaemonHandle) -> None:
    result = daemon.ctl("daemon", "stop")
    assert result.returncode == 0, result.stderr
    assert "stopped" in result.stdout
    assert daemon.process is not None and daemon.process.wait(10) == 0


def test_client_waits_for_a_daemon_that_is_starting(daemon_env: DaemonHandle) -> None:
    daemon_env.start(wait=False)
    assert daemon_env.process is not None
    # Wait only until the lock names the live process, then call at once: the client must ride out start-up.
    lock = daemon_env.socket.with_name(daemon_env.socket.name + ".lock")
    deadline = time.monotonic() + 20
    while not (lock.exists() and lock.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.005)
    with daemon_env.client() as client:
        assert client.status(timeout=15).pid == daemon_env.process.pid


def test_not_running_is_a_clear_error_with_its_own_exit_code(daemon_env: DaemonHandle) -> None:
    result = daemon_env.ctl("status")
    assert result.returncode == 3
    assert "voicemoded is not running" in result.stderr
    assert "voicemodectl daemon start" in result.stderr
    as_json = daemon_env.ctl("--json", "status")
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["error"]["code"] == "UNAVAILABLE"


def test_daemon_start_and_restart_from_the_cli(daemon_env: DaemonHandle) -> None:
    started = daemon_env.ctl("--json", "daemon", "start")
    assert started.returncode == 0, started.stderr
    first = json.loads(started.stdout)
    again = json.loads(daemon_env.ctl("--json", "daemon", "start").stdout)
    assert again == {**first, "already_running": True}
    restarted = json.loads(daemon_env.ctl("--json", "daemon", "restart").stdout)
    assert restarted["pid"] != first["pid"]
    stopped = json.loads(daemon_env.ctl("--json", "daemon", "stop").stdout)
    assert stopped == {"stopped": True, "pid": restarted["pid"]}
    assert daemon_env.ctl("status").returncode == 3


def test_systemd_notify_ready_watchdog_stopping(daemon_env: DaemonHandle) -> None:
    path = daemon_env.root / "notify.sock"
    receiver = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    receiver.bind(str(path))
    receiver.settimeout(20)
    try:
        daemon_env.start({"NOTIFY_SOCKET": str(path), "WATCHDOG_USEC": "400000"})
        messages: list[str] = []
        while not any("READY=1" in m for m in messages) or not any("WATCHDOG=1" in m for m in messages):
            messages.append(receiver.recv(4096).decode())
        assert any(f"MAINPID={daemon_env.process.pid}" in m for m in messages if daemon_env.process)
        daemon_env.signal(signal.SIGHUP)
        while not any("RELOADING=1" in m for m in messages):
            messages.append(receiver.recv(4096).decode())
        daemon_env.signal(signal.SIGTERM)
        while not any("STOPPING=1" in m for m in messages):
            messages.append(receiver.recv(4096).decode())
    finally:
        receiver.close()


def test_manager_is_reported_when_run_by_systemd(daemon_env: DaemonHandle) -> None:
    daemon_env.start({"INVOCATION_ID": "0123456789abcdef"})
    with daemon_env.client() as client:
        assert client.status().manager == "systemd"


def test_client_import_stays_light() -> None:
    code = (
        "import sys, voicemoded.api.client, voicemodectl.__main__;"
        "heavy = [m for m in ('numpy', 'pyaudio', 'openai', 'mcp', 'structlog', 'av', 'soxr') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_help_version_and_read_only_commands_write_nothing_home(daemon_env: DaemonHandle) -> None:
    # Each command with the exit code it must give: a crash (1) writes nothing either, so it counts too.
    commands = [
        ([sys.executable, "-m", "voicemoded", "--help"], 0),
        ([sys.executable, "-m", "voicemoded", "--version"], 0),
        ([sys.executable, "-m", "voicemodectl", "--help"], 0),
        ([sys.executable, "-m", "voicemodectl", "--version"], 0),
        ([sys.executable, "-m", "voicemodectl", "config", "path"], 0),
        ([sys.executable, "-m", "voicemodectl", "status"], 3),
        ([sys.executable, "-m", "voicemodectl", "config", "show"], 3),
    ]
    env = {k: v for k, v in daemon_env.env.items() if k not in ("VOICEMODE_BASE_DIR", "VOICEMODE_SOCKET")}
    for cmd, expected in commands:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30, cwd=daemon_env.root)
        assert done.returncode == expected, (cmd[2:], done.returncode, done.stderr)
        assert "Traceback" not in done.stderr, done.stderr
    assert list(daemon_env.home.iterdir()) == []


def test_client_sends_its_context(daemon: DaemonHandle, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VOICEMODE_TTS_SPEED", "1.75")
    monkeypatch.setenv("UNRELATED_SECRET", "never-forwarded")
    with Client(daemon.socket) as client:
        ctx = client.caller()
        assert ctx.env == {
            k: v for k, v in os.environ.items() if k.startswith(("VOICEMODE_", "OPENAI_", "LIVEKIT_"))
        }
        assert "UNRELATED_SECRET" not in ctx.env
        assert ctx.pid == os.getpid() and ctx.cwd == os.getcwd()
        reply = client.call(
            client.daemon.GetConfig, daemon_pb2.GetConfigRequest(caller=ctx, keys=["tts_speed"])
        )
    assert reply.values[0].value == "1.75" and reply.values[0].layer == "environment"

"""The tunnel process itself: daemon auto-start, honest failures, breakage, and a clean fd 1."""

from __future__ import annotations

import json
import os
import shlex
import signal
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from mcp.shared.exceptions import MCPError

from tests.integration.mcp.conftest import EventWatcher, RawTunnel, host_command, mcp_session, tunnel_stderr
from voicemoded import __version__
from voicemoded.api.client import daemon_pid
from voicemoded.api.v1 import daemon_pb2
from voicemoded.testing.daemon import DaemonHandle, daemon_handle
from voicemoded.testing.jsonrpc import INITIALIZE, INITIALIZED, call


@pytest.fixture
def fresh() -> Iterator[DaemonHandle]:
    """A socket with no daemon on it (the handle's teardown stops whatever a test started)."""
    yield from daemon_handle()


def stop_started_daemon(handle: DaemonHandle) -> None:
    pid = daemon_pid(handle.socket)
    if pid is not None:
        os.kill(pid, signal.SIGTERM)


async def test_no_daemon_and_no_start_answers_initialize_with_the_fix(fresh: DaemonHandle) -> None:
    async with mcp_session(fresh, "--no-start") as session:
        with pytest.raises(MCPError) as caught:
            await session.initialize()
    assert "voicemoded is not running" in caught.value.error.message
    assert "voicemodectl daemon start" in caught.value.error.message
    assert "not running" in tunnel_stderr(fresh)


def test_daemon_that_cannot_start_is_reported_on_stdout_as_json_rpc_only(fresh: DaemonHandle) -> None:
    tunnel = RawTunnel(fresh, "--daemon-command", f"{sys.executable} -c 'import sys; sys.exit(3)'")
    tunnel.send(INITIALIZE)
    reply = tunnel.read()
    tunnel.send(INITIALIZED)
    tunnel.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    second = tunnel.read()
    out, err = tunnel.finish()
    assert reply["id"] == 1 and "exited with code 3" in reply["error"]["message"]
    assert reply["error"]["data"]["fix"]
    assert second["id"] == 2 and "error" in second
    assert tunnel.proc.returncode == 1
    assert "exited with code 3" in err
    for line in out.splitlines():
        assert json.loads(line)["jsonrpc"] == "2.0"


async def test_tunnel_starts_the_daemon_when_none_runs(fresh: DaemonHandle) -> None:
    assert daemon_pid(fresh.socket) is None
    try:
        # No --daemon-command: the tunnel starts the real voicemoded, which serves MCP itself.
        async with mcp_session(fresh) as session:
            init = await session.initialize()
            assert init.server_info.version == __version__
            stats = await session.call_tool("statistics", {})
            assert not stats.is_error
        assert daemon_pid(fresh.socket) is not None
        assert "started voicemoded" in tunnel_stderr(fresh)
        # The daemon outlives the tunnel that started it: the next tunnel finds it running.
        async with mcp_session(fresh) as again:
            await again.initialize()
    finally:
        stop_started_daemon(fresh)


async def test_tunnel_starts_the_daemon_through_the_user_unit(fresh: DaemonHandle, tmp_path: Path) -> None:
    # No systemd here: a stand-in `systemctl` records how it was asked and starts the daemon as the unit would.
    unit_dir = fresh.home / ".config" / "systemd" / "user"
    unit_dir.mkdir(parents=True)
    (unit_dir / "voicemoded.service").write_text("[Service]\nExecStart=voicemoded\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    asked = tmp_path / "systemctl.args"
    systemctl = bin_dir / "systemctl"
    systemctl.write_text(
        f'#!/bin/sh\necho "$@" > {asked}\n'
        f"setsid {shlex.join(host_command(fresh.socket))} </dev/null >/dev/null 2>&1 &\n"
    )
    systemctl.chmod(0o755)
    try:
        async with mcp_session(fresh, env={"PATH": f"{bin_dir}:{os.environ['PATH']}"}) as session:
            await session.initialize()
        assert asked.read_text().split() == ["--user", "start", "--no-block", "voicemoded.service"]
        assert "systemd)" in tunnel_stderr(fresh)
    finally:
        stop_started_daemon(fresh)


def test_stdout_carries_json_rpc_only(host: DaemonHandle) -> None:
    tunnel = RawTunnel(host)
    tunnel.send(INITIALIZE)
    tunnel.read_until(1)
    tunnel.send(INITIALIZED)
    tunnel.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    tunnel.send(call(3, "converse", {"message": "hello"}, progressToken="p3"))
    tunnel.send(call(4, "config", {"key": "NOPE"}))
    tunnel.send({"jsonrpc": "2.0", "id": 5, "method": "ping"})
    tunnel.send({"jsonrpc": "2.0", "id": 6, "method": "no/such/method"})
    tunnel.read_until(6)
    out, err = tunnel.finish()
    assert tunnel.proc.returncode == 0, err
    assert out.endswith(b"\n")
    ids = []
    for line in out.split(b"\n")[:-1]:
        message = json.loads(line)  # every line is one JSON value, nothing else on fd 1
        assert message["jsonrpc"] == "2.0"
        assert b"\n" not in line
        ids.append(message.get("id"))
    assert {1, 2, 3, 4, 5, 6} <= set(ids)


def test_killed_tunnel_ends_its_session_and_cancels_its_call(
    host: DaemonHandle, events: EventWatcher
) -> None:
    tunnel = RawTunnel(host)
    tunnel.send(INITIALIZE)
    tunnel.read_until(1)
    tunnel.send(INITIALIZED)
    tunnel.send(call(2, "converse", {"message": "block until killed"}))
    opened = events.wait_for("mcp.session_opened", lambda e: e.fields["client_pid"] == str(tunnel.proc.pid))
    events.wait_for("test.turn_blocking", lambda e: e.message == "block until killed")
    tunnel.proc.kill()
    tunnel.proc.communicate(timeout=10)
    events.wait_for("test.turn_cancelled", lambda e: e.message == "block until killed")
    closed = events.wait_for("mcp.session_closed", lambda e: e.fields["session"] == opened.fields["session"])
    assert closed.fields["reason"] == "tunnel gone", closed.fields["reason"]
    with host.client() as client:
        status = client.call(client.daemon.GetStatus, daemon_pb2.GetStatusRequest())
    mcp = next(s for s in status.subsystems if s.name == "mcp")
    assert mcp.detail == "0 MCP sessions"  # the tests before this one closed theirs
    assert closed.fields["live"] == "0"


def test_closed_stdin_mid_call_ends_the_session(host: DaemonHandle, events: EventWatcher) -> None:
    tunnel = RawTunnel(host)
    tunnel.send(INITIALIZE)
    tunnel.read_until(1)
    tunnel.send(INITIALIZED)
    tunnel.send(call(2, "converse", {"message": "block until stdin closes"}))
    events.wait_for("test.turn_blocking", lambda e: e.message == "block until stdin closes")
    _out, err = tunnel.finish()
    assert tunnel.proc.returncode == 0, err
    events.wait_for("test.turn_cancelled", lambda e: e.message == "block until stdin closes")
    events.wait_for("mcp.session_closed", lambda e: e.fields["client_pid"] == str(tunnel.proc.pid))

"""No orphan after the daemon itself is SIGKILLed and started again."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

import psutil

from tests.fixtures.children import HERE, free_port
from voicemoded.supervisor.orphans import wait_gone


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

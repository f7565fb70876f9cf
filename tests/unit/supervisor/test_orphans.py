"""Pid files, proof of ownership before signalling, and naming a port's foreign owner."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from voicemoded.supervisor.orphans import PidFiles, end_leftovers, port_owner, port_taken, wait_gone
from voicemoded.testing.ports import free_port

SLEEPER = [sys.executable, "-c", "import time; time.sleep(600)"]


@pytest.fixture
def sleeper() -> Iterator[subprocess.Popen[bytes]]:
    """A real process in its own session, like a child a crashed daemon left behind."""
    proc = subprocess.Popen(SLEEPER, start_new_session=True)
    yield proc
    proc.kill()
    proc.wait()


async def test_a_recorded_leftover_is_ended_and_its_pid_file_removed(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    files = PidFiles(tmp_path)
    record = files.write("whisper", sleeper.pid, tuple(SLEEPER))
    assert record is not None and record.cmdline == tuple(SLEEPER)
    assert files.read_all() == [record]

    ended = await end_leftovers(files, grace=2.0)
    assert ended == {"whisper": [sleeper.pid]}
    assert sleeper.wait(5) == -15  # SIGTERM was enough
    assert not files.path("whisper").exists()


async def test_a_recycled_pid_running_something_else_is_left_alone(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    files = PidFiles(tmp_path)
    files.write("whisper", sleeper.pid)
    raw = json.loads(files.path("whisper").read_text())
    raw["cmdline"] = ["whisper-server", "--port", "2022"]  # what our child was; not what runs now
    files.path("whisper").write_text(json.dumps(raw))

    assert await end_leftovers(files, grace=0.5) == {}
    assert sleeper.poll() is None
    assert not files.path("whisper").exists()


def _leader_with_member() -> tuple[subprocess.Popen[bytes], psutil.Process]:
    script = "import subprocess, sys, time; subprocess.Popen(%r); print('up', flush=True); time.sleep(600)"
    leader = subprocess.Popen(
        [sys.executable, "-c", script % SLEEPER], start_new_session=True, stdout=subprocess.PIPE
    )
    assert leader.stdout is not None and leader.stdout.readline() == b"up\n"
    (member,) = psutil.Process(leader.pid).children()
    return leader, member


async def test_group_members_outliving_their_leader_are_ended(tmp_path: Path) -> None:
    leader, member = _leader_with_member()
    files = PidFiles(tmp_path)
    files.write("kokoro", leader.pid)
    leader.kill()
    leader.wait()

    ended = await end_leftovers(files, grace=2.0)
    assert ended == {"kokoro": [member.pid]}
    assert wait_gone([member], 5.0) == []


def test_unreadable_pid_files_are_dropped(tmp_path: Path) -> None:
    (tmp_path / "broken.pid").write_text("{not json")
    assert PidFiles(tmp_path).read_all() == []
    assert not (tmp_path / "broken.pid").exists()


def test_port_owner_names_the_listening_process() -> None:
    port = free_port()
    assert port_owner("127.0.0.1", port) is None
    assert not port_taken("127.0.0.1", port)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        sock.listen()
        owner = port_owner("127.0.0.1", port)
    assert owner is not None and owner.pid == os.getpid()
    assert "pytest" in owner.name or "python" in owner.name
    assert owner.describe().startswith(f"pid {os.getpid()} (")


def _recording_daemon(run_dir: Path, pid: int) -> subprocess.Popen[bytes]:
    """Another live process that records ``pid`` as its child, the way a running daemon does."""
    script = (
        "import sys, time; from pathlib import Path; from voicemoded.supervisor.orphans import PidFiles;"
        f"PidFiles(Path({str(run_dir)!r})).write('whisper', {pid}); print('up', flush=True); time.sleep(600)"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    assert proc.stdout is not None and proc.stdout.readline() == b"up\n"
    return proc


async def test_a_child_whose_recorded_daemon_is_alive_is_never_ended(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    recorder = _recording_daemon(tmp_path, sleeper.pid)
    try:
        (record,) = PidFiles(tmp_path).read_all()
        assert record.parent_pid == recorder.pid
        assert record.parent_create_time == psutil.Process(recorder.pid).create_time()
        assert await end_leftovers(PidFiles(tmp_path), grace=0.5) == {}
        assert sleeper.poll() is None
        assert PidFiles(tmp_path).path("whisper").exists(), "the live daemon's pid file is its own"
    finally:
        recorder.kill()
        recorder.wait()
    # Once that daemon is dead its child is a leftover like any other.
    assert await end_leftovers(PidFiles(tmp_path), grace=2.0) == {"whisper": [sleeper.pid]}
    assert sleeper.wait(5) == -15


async def test_a_pid_file_without_its_daemon_is_a_leftover(
    tmp_path: Path, sleeper: subprocess.Popen[bytes]
) -> None:
    """Files written before the daemon was recorded, or naming a daemon whose pid was reused."""
    files = PidFiles(tmp_path)
    files.write("piper", sleeper.pid, tuple(SLEEPER))
    raw = json.loads(files.path("piper").read_text())
    raw["parent_pid"] = os.getppid()  # alive, but not the process that started the child
    raw["parent_create_time"] = 1.0
    files.path("piper").write_text(json.dumps(raw))
    assert await end_leftovers(files, grace=2.0) == {"piper": [sleeper.pid]}
    assert sleeper.wait(5) == -15

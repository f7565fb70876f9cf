"""The machine's state is not a bug: unwritable or full state folders, over-long socket paths, file modes.

Each fault is caused for real. The suite may run as root, whom file modes do not stop: the processes that
must meet a mode bit are started without the capabilities that override it, like any ordinary user.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import psutil
import pytest

from voicemoded.testing.children import stand_in_whisper_server
from voicemoded.testing.daemon import DaemonHandle

_PR_CAPBSET_DROP = 24
_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER = 1, 2, 3


def as_ordinary_user(umask: int | None = None) -> Callable[[], None]:
    """A preexec hook: drop root's file-permission overrides (no-op for a normal user), set a umask."""
    libc = ctypes.CDLL(None, use_errno=True)

    def apply() -> None:
        if os.geteuid() == 0:
            for cap in (_CAP_DAC_OVERRIDE, _CAP_DAC_READ_SEARCH, _CAP_FOWNER):
                libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0)
        if umask is not None:
            os.umask(umask)

    return apply


def start(daemon: DaemonHandle, preexec: Callable[[], None], extra: dict[str, str] | None = None) -> None:
    """Like ``DaemonHandle.start``, with a preexec hook; the handle still stops it at the end."""
    daemon.log_path = daemon.root / "daemon.log"
    with open(daemon.log_path, "wb") as log:
        daemon.process = subprocess.Popen(
            [sys.executable, "-m", "voicemoded", "--socket", str(daemon.socket), "--log-format", "json"],
            env={**daemon.env, **(extra or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=preexec,
        )
    with daemon.client() as client:
        alive = daemon.process.poll
        client.wait_until_ready(20, alive=lambda: alive() is None)


def run(
    daemon: DaemonHandle, *argv: str, preexec: Callable[[], None] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, *argv],
        env=daemon.env,
        cwd=daemon.root,
        capture_output=True,
        text=True,
        timeout=60,
        preexec_fn=preexec,
    )


def error_of(result: subprocess.CompletedProcess[str]) -> dict[str, str]:
    return dict(json.loads(result.stdout)["error"])


def assert_not_a_bug(text: str) -> None:
    assert "internal error" not in text and "this is a bug" not in text and "Traceback" not in text, text


def fake_whisper_server(daemon: DaemonHandle) -> dict[str, str]:
    """A cheap real child: an executable that serves like whisper-server (see fails_while.py)."""
    return stand_in_whisper_server(daemon.root, broken_while=daemon.root / "no")


@contextlib.contextmanager
def full_folder(folder: Path) -> Iterator[None]:
    """``folder`` on a file system with no space left: a filled 64 KiB tmpfs where we may mount one,
    else its fixed temp file is the kernel's full device (writes fail with ENOSPC all the same)."""
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(folder)], capture_output=True
    )
    if mounted.returncode == 0:
        try:
            with contextlib.suppress(OSError), open(folder / "filler", "wb") as filler:
                while True:
                    filler.write(b"\0" * 4096)
                    filler.flush()
            with pytest.raises(OSError) as full:
                (folder / "probe").write_bytes(b"\0" * 4096)
            assert full.value.errno == errno.ENOSPC
            yield
        finally:
            subprocess.run(["umount", str(folder)], check=True)
    else:
        tmp = folder / "autostart.json.tmp"
        tmp.symlink_to("/dev/full")
        try:
            yield
        finally:
            tmp.unlink(missing_ok=True)


def test_autostart_choice_on_an_unwritable_folder_names_the_folder(daemon_env: DaemonHandle) -> None:
    start(daemon_env, as_ordinary_user())
    services = daemon_env.base / "services"
    services.chmod(0o500)
    try:
        result = daemon_env.ctl("--json", "service", "enable", "piper")
    finally:
        services.chmod(0o700)
    assert result.returncode != 0
    error = error_of(result)
    assert_not_a_bug(json.dumps(error))
    assert error["code"] == "PERMISSION_DENIED"
    assert "permission denied" in error["message"] and str(services) in error["message"]
    assert f"chmod u+rwx {services}" in error["hint"]
    # Nothing half-done: the choice is what the file says, and the daemon carries on.
    status = json.loads(daemon_env.ctl("--json", "service", "status", "piper").stdout)
    assert status["autostart"] is False
    assert daemon_env.ctl("--json", "service", "enable", "piper").returncode == 0


def test_autostart_choice_on_a_full_disk_says_so(daemon: DaemonHandle) -> None:
    services = daemon.base / "services"
    with full_folder(services):
        result = daemon.ctl("--json", "service", "enable", "piper")
    assert result.returncode != 0
    error = error_of(result)
    assert_not_a_bug(json.dumps(error))
    assert error["code"] == "NO_SPACE" and error["errno"] == "ENOSPC"
    assert "no space left" in error["message"] and str(services) in error["message"]
    assert "free some space" in error["hint"]
    assert json.loads(daemon.ctl("--json", "service", "status", "piper").stdout)["autostart"] is False


def test_a_socket_path_too_long_for_a_unix_socket_is_named(daemon_env: DaemonHandle) -> None:
    long = daemon_env.root / ("d" * 60) / ("e" * 60) / "voicemoded.sock"
    for argv in (["-m", "voicemodectl", "--socket", str(long), "status"],
                 ["-m", "voicemodectl", "--socket", str(long), "daemon", "start"]):  # fmt: skip
        result = run(daemon_env, *argv)
        assert result.returncode == 6, result.stderr
        assert "Unix sockets allow at most 107" in result.stderr and str(long) in result.stderr
        assert "not running" not in result.stderr and "UNKNOWN" not in result.stderr
        assert_not_a_bug(result.stderr)
    daemon = run(daemon_env, "-m", "voicemoded", "--socket", str(long))
    assert daemon.returncode == 1 and "Unix sockets allow at most 107" in daemon.stderr
    assert not long.parent.exists() and not daemon_env.base.exists(), "refused before creating anything"


def test_an_unwritable_base_dir_is_named_with_the_fix(daemon_env: DaemonHandle) -> None:
    base = daemon_env.base
    base.mkdir(mode=0o500)
    ordinary = as_ordinary_user()
    daemon = run(daemon_env, "-m", "voicemoded", preexec=ordinary)
    assert daemon.returncode == 1
    assert_not_a_bug(daemon.stderr)
    assert f"permission denied on {base}/" in daemon.stderr and f"chmod u+rwx {base}" in daemon.stderr

    started = run(daemon_env, "-m", "voicemodectl", "daemon", "start", preexec=ordinary)
    assert started.returncode != 0
    assert_not_a_bug(started.stderr)
    assert "check that voicemode is installed" not in started.stderr
    assert f"permission denied on {base}/logs" in started.stderr and f"chmod u+rwx {base}" in started.stderr
    assert stat.S_IMODE(base.stat().st_mode) == 0o500, "never widened behind the user's back"


def _umask(pid: int) -> str:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Umask:"):
            return line.split()[1]
    raise AssertionError("no Umask line")


def test_state_files_are_private_and_loose_folders_are_tightened(daemon_env: DaemonHandle) -> None:
    base = daemon_env.base
    for folder in (base, base / "logs", base / "audio"):
        folder.mkdir(mode=0o755)
        folder.chmod(0o755)
    start(daemon_env, as_ordinary_user(umask=0o022), fake_whisper_server(daemon_env))
    assert daemon_env.process is not None
    assert daemon_env.ctl("service", "enable", "whisper").returncode == 0
    started = daemon_env.ctl("--json", "service", "start", "whisper")
    assert started.returncode == 0, started.stderr
    child = psutil.Process(json.loads(started.stdout)["pid"])

    assert _umask(daemon_env.process.pid) == "0077"
    assert _umask(child.pid) == "0077", "children inherit the daemon's umask"
    files = [p for p in base.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"whisper.pid", "whisper.log", "autostart.json", "voicemoded.lock"}
    loose = {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in files if p.stat().st_mode & 0o077}
    assert loose == {}
    folders = [base, *(p for p in base.rglob("*") if p.is_dir())]
    assert {str(p): oct(stat.S_IMODE(p.stat().st_mode)) for p in folders if p.stat().st_mode & 0o077} == {}

    tightened = daemon_env.log_events("paths.tightened")
    assert len(tightened) == 1
    assert set(str(tightened[0]["folders"]).split(", ")) == {
        str(base),
        str(base / "logs"),
        str(base / "audio"),
    }
    events = daemon_env.ctl("--json", "events", "--replay", "200", "--count", "1", "--subsystem", "daemon")
    assert "daemon.folders_tightened" in events.stdout, events.stdout


def test_daemon_start_creates_a_private_base_dir_and_log(daemon_env: DaemonHandle) -> None:
    started = run(daemon_env, "-m", "voicemodectl", "daemon", "start", preexec=as_ordinary_user(umask=0o022))
    assert started.returncode == 0, started.stderr
    assert stat.S_IMODE(daemon_env.base.stat().st_mode) == 0o700
    assert stat.S_IMODE((daemon_env.base / "logs").stat().st_mode) == 0o700
    assert stat.S_IMODE((daemon_env.base / "logs" / "voicemoded.log").stat().st_mode) == 0o600
    assert run(daemon_env, "-m", "voicemodectl", "daemon", "stop").returncode == 0

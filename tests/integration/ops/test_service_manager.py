"""voicemodectl daemon install|uninstall|enable|disable through the real CLI.

No systemd runs on these machines, so the manager's part is played twice: by the real ``systemctl``
(present, but with no bus: the warning path) and by a stand-in ``systemctl`` that starts the rendered unit
the way systemd does (ExecStart, Environment=, RuntimeDirectory=, NOTIFY_SOCKET), so the daemon that
answers is the one the unit file describes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket as socketlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from voicemodectl.service_manager import voicemoded_command
from voicemoded.api import starter

HERE = Path(__file__).resolve().parent


@dataclass
class Box:
    """A private HOME and runtime dir, and the environment a login shell would have there."""

    root: Path
    home: Path
    runtime: Path
    env: dict[str, str]

    @property
    def unit(self) -> Path:
        return self.home / ".config" / "systemd" / "user" / "voicemoded.service"

    def ctl(self, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "voicemodectl", *args], env={**self.env, **(env or {})},
            cwd=self.root, capture_output=True, text=True, timeout=60,
        )  # fmt: skip


@pytest.fixture
def box() -> Iterator[Box]:
    root = Path(tempfile.mkdtemp(prefix="vm-ops-"))  # short: the socket lives under the runtime dir
    home, runtime = root / "home", root / "rt"
    home.mkdir()
    runtime.mkdir(mode=0o700)
    env = {
        "HOME": str(home), "XDG_RUNTIME_DIR": str(runtime), "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "VOICEMODE_BASE_DIR": str(root / "base"), "VOICEMODE_AUTOSTART_SERVICES": "", "LANG": "C.UTF-8",
    }  # fmt: skip
    try:
        yield Box(root, home, runtime, env)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_install_writes_the_unit_and_says_how_to_reload_when_no_manager_answers(box: Box) -> None:
    empty = box.root / "empty-path"
    empty.mkdir()
    result = box.ctl("daemon", "install", env={"PATH": str(empty)})
    assert result.returncode == 0, result.stderr
    assert box.unit.is_file() and (box.unit.stat().st_mode & 0o777) == 0o644
    assert f"ExecStart={voicemoded_command()[0]} " in box.unit.read_text()
    assert f"--base-dir {box.root / 'base'}" in box.unit.read_text(), "the shell's VOICEMODE_BASE_DIR is kept"
    assert "systemctl is not installed" in result.stderr
    assert "run `systemctl --user daemon-reload`" in result.stderr
    assert "voicemodectl daemon enable" in result.stdout
    again = box.ctl("--json", "daemon", "install", env={"PATH": str(empty)})
    assert json.loads(again.stdout)["unchanged"] is True


@pytest.mark.skipif(shutil.which("systemctl") is None, reason="systemctl is not installed")
def test_real_systemctl_without_a_bus_is_a_warning_and_enable_an_error_with_the_command(box: Box) -> None:
    result = box.ctl("--json", "daemon", "install")
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout)
    assert info["path"] == str(box.unit) and info["reloaded"] is False and info["reload_error"]
    assert "warning" in result.stderr and "systemctl --user daemon-reload" in result.stderr
    # The front doors' auto-start finds the same file.
    assert starter.systemd_unit(box.env) == box.unit
    enabled = box.ctl("daemon", "enable")
    assert enabled.returncode == 6, enabled.stderr
    assert "systemctl --user enable --now voicemoded.service" in enabled.stderr


def test_enable_runs_the_rendered_unit_and_status_says_systemd(box: Box) -> None:
    bin_dir, state = box.root / "bin", box.root / "fake"
    bin_dir.mkdir()
    state.mkdir()
    shim = bin_dir / "systemctl"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} {HERE / "fake_systemctl.py"} "$@"\n')
    shim.chmod(0o755)
    notify = socketlib.socket(socketlib.AF_UNIX, socketlib.SOCK_DGRAM)
    notify.bind(str(box.root / "notify"))
    notify.settimeout(30)
    env = {
        "PATH": f"{bin_dir}:{box.env['PATH']}", "FAKE_SYSTEMCTL_STATE": str(state),
        "FAKE_NOTIFY_SOCKET": str(box.root / "notify"),
    }  # fmt: skip
    box.env.update(env)
    try:
        assert box.ctl("daemon", "install").returncode == 0
        enabled = box.ctl("daemon", "enable")
        assert enabled.returncode == 0, enabled.stderr + (state / "daemon.log").read_text()
        assert "voicemoded runs (pid" in enabled.stdout
        messages = [notify.recv(4096).decode()]
        while not any("READY=1" in m for m in messages):
            messages.append(notify.recv(4096).decode())
        status = box.ctl("status")
        assert status.returncode == 0, status.stderr
        assert "running under systemd" in status.stdout
        assert f"socket:   {box.runtime / 'voicemode' / 'voicemoded.sock'}" in status.stdout
        assert (box.runtime / "voicemode").stat().st_mode & 0o777 == 0o700
        disabled = box.ctl("daemon", "disable")
        assert disabled.returncode == 0, disabled.stderr
        while not any("STOPPING=1" in m for m in messages):
            messages.append(notify.recv(4096).decode())
        assert box.ctl("status").returncode == 3, "stopped"
        removed = box.ctl("daemon", "uninstall")
        assert removed.returncode == 0 and not box.unit.exists()
        calls = (state / "calls.log").read_text().splitlines()
        assert calls == [
            "--user daemon-reload",
            "--user enable --now voicemoded.service",
            "--user disable --now voicemoded.service",
            "--user disable --now voicemoded.service",
            "--user daemon-reload",
        ]
    finally:
        notify.close()
        pid_file = state / "daemon.pid"
        if pid_file.exists():
            os.kill(int(pid_file.read_text()), signal.SIGKILL)


def test_system_unit_into_a_staging_folder(box: Box) -> None:
    staging = box.root / "stage"
    as_root = (
        box.ctl("daemon", "install", "--system", "--unit-dir", str(staging)) if os.getuid() == 0 else None
    )
    if as_root is not None:
        assert as_root.returncode == 5 and "not as root" in as_root.stderr
    user = next(u for u in ("daemon", "nobody") if _exists(u))
    result = box.ctl("daemon", "install", "--system", "--run-as", user, "--unit-dir", str(staging))
    assert result.returncode == 0, result.stderr
    assert f"not reloading systemd: it does not read {staging}" in result.stdout
    text = (staging / "voicemoded.service").read_text()
    assert f"User={user}" in text and "WantedBy=multi-user.target" in text
    printed = box.ctl("daemon", "install", "--system", "--run-as", user, "--print")
    assert printed.stdout == text


def test_launchd_agent_install_creates_its_log_folder(box: Box) -> None:
    agents = box.root / "agents"
    result = box.ctl("daemon", "install", "--manager", "launchd", "--unit-dir", str(agents))
    assert result.returncode == 0, result.stderr
    assert (agents / "com.voicemode.voicemoded.plist").is_file()
    assert (box.root / "base" / "logs").is_dir(), "launchd would not start a job whose log folder is missing"


def test_enable_without_a_unit_says_install_first(box: Box) -> None:
    result = box.ctl("daemon", "enable")
    assert result.returncode == 6
    assert "voicemodectl daemon install" in result.stderr


def _exists(user: str) -> bool:
    import pwd

    try:
        pwd.getpwnam(user)
    except KeyError:
        return False
    return True

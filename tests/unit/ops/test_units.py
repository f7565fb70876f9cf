"""The rendered systemd units and launchd agent: what they promise, and what systemd itself says of them."""

from __future__ import annotations

import os
import plistlib
import pwd
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from voicemodectl.service_manager import (
    Install,
    current_install,
    render_launchd,
    render_systemd,
    sd_quote,
    target,
    voicemoded_command,
)
from voicemoded.api.starter import LAUNCHD_LABEL

ROOT = Path(__file__).resolve().parents[3]


def parse_unit(text: str) -> dict[str, list[tuple[str, str]]]:
    """Sections -> (key, value) in order; systemd allows a key more than once (Environment=)."""
    sections: dict[str, list[tuple[str, str]]] = {}
    current = ""
    for line in text.splitlines():
        if not line.strip() or line.startswith(("#", ";")):
            continue
        if line.startswith("["):
            current = line.strip("[]")
            sections[current] = []
            continue
        key, sep, value = line.partition("=")
        assert sep, f"not key=value: {line!r}"
        sections[current].append((key, value))
    return sections


def values(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> list[str]:
    return [v for k, v in unit[section] if k == key]


def one(unit: dict[str, list[tuple[str, str]]], section: str, key: str) -> str:
    found = values(unit, section, key)
    assert len(found) == 1, f"{section}.{key}: {found}"
    return found[0]


def a_user() -> str:
    """A real account that is neither root nor nobody (systemd warns about both)."""
    for entry in pwd.getpwall():
        if 0 < entry.pw_uid < 65534 and entry.pw_name != "nobody":
            return entry.pw_name
    pytest.skip("no unprivileged account on this machine")


def test_user_unit_runs_this_install_under_notify_with_a_watchdog() -> None:
    install = current_install({"PATH": "/usr/bin:/bin"})
    unit = parse_unit(render_systemd(install, system=False))
    service = dict(unit["Service"])
    assert service["Type"] == "notify"
    assert service["Restart"] == "on-failure"
    assert service["RuntimeDirectory"] == "voicemode" and service["RuntimeDirectoryMode"] == "0700"
    assert int(service["WatchdogSec"]) >= 10, "room for a busy event loop; the daemon pings at half of it"
    assert service["KillMode"] == "mixed", "the daemon stops its own children in order"
    assert service["RestartPreventExitStatus"] == "3"
    argv = shlex.split(service["ExecStart"])
    assert argv[0] == voicemoded_command()[0] and os.access(argv[0], os.X_OK)
    assert argv[argv.index("--socket") + 1] == "%t/voicemode/voicemoded.sock", "where the front doors look"
    path = next(v for v in values(unit, "Service", "Environment") if v.startswith("PATH="))
    assert path.startswith(f"PATH={Path(argv[0]).parent}:"), "its speech servers come from the same install"
    assert dict(unit["Install"])["WantedBy"] == "default.target"


def test_user_unit_hardening_leaves_audio_and_home_alone() -> None:
    service = dict(parse_unit(render_systemd(current_install(), system=False))["Service"])
    assert service["NoNewPrivileges"] == "yes" and service["RestrictNamespaces"] == "yes"
    assert "AF_UNIX" in service["RestrictAddressFamilies"], "gRPC socket and the sound server's socket"
    assert "AF_INET" in service["RestrictAddressFamilies"], "the speech servers on 127.0.0.1"
    for hides_audio_or_state in (
        "PrivateDevices",
        "ProtectHome",
        "ProtectSystem",
        "DevicePolicy",
        "PrivateUsers",
    ):
        assert hides_audio_or_state not in service
    assert "RestrictRealtime" not in service and "MemoryDenyWriteExecute" not in service


def test_system_unit_runs_as_one_user_with_state_in_var_lib() -> None:
    user = a_user()
    install = current_install(run_as=user)
    service = dict(parse_unit(render_systemd(install, system=True))["Service"])
    assert service["User"] == user and service["SupplementaryGroups"] == "audio"
    argv = shlex.split(service["ExecStart"])
    assert argv[argv.index("--socket") + 1] == "/run/voicemode/voicemoded.sock"
    assert (
        argv[argv.index("--base-dir") + 1] == "/var/lib/voicemode"
        and service["StateDirectory"] == "voicemode"
    )
    assert service["ProtectSystem"] == "strict" and service["ProtectHome"] == "read-only"
    assert "PrivateDevices" not in service, "/dev/snd stays reachable"
    uid = pwd.getpwnam(user).pw_uid
    unit = parse_unit(render_systemd(install, system=True))
    assert f"PULSE_SERVER=unix:/run/user/{uid}/pulse/native" in values(unit, "Service", "Environment")


def test_the_installing_shell_s_base_dir_and_socket_are_carried_over(tmp_path: Path) -> None:
    env = {
        "PATH": "/usr/bin",
        "VOICEMODE_BASE_DIR": str(tmp_path / "my state"),
        "VOICEMODE_SOCKET": "/tmp/v.sock",
    }
    service = dict(parse_unit(render_systemd(current_install(env), system=False))["Service"])
    argv = shlex.split(service["ExecStart"])
    assert argv[argv.index("--base-dir") + 1] == str(tmp_path / "my state")
    assert argv[argv.index("--socket") + 1] == "/tmp/v.sock"


def test_systemd_quoting() -> None:
    assert sd_quote("/usr/bin/voicemoded") == "/usr/bin/voicemoded"
    assert sd_quote("/home/a b/venv") == '"/home/a b/venv"'
    assert sd_quote("50%") == "50%%", "systemd expands % specifiers"
    assert sd_quote("$HOME") == "$$HOME", "and $VARIABLES in command lines"
    assert shlex.split(sd_quote('say "hi" there')) == ['say "hi" there']


def _verify(path: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["systemd-analyze", "verify", *args, str(path)], capture_output=True, text=True, timeout=60, env=env
    )


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="systemd-analyze is not installed")
def test_units_pass_systemd_analyze_verify(tmp_path: Path) -> None:
    runtime = tmp_path / "runtime"
    runtime.mkdir(mode=0o700)
    # verify --user needs a runtime dir; it resolves ExecStart, parses every option and reports unknown keys.
    env = {**os.environ, "XDG_RUNTIME_DIR": str(runtime), "HOME": str(tmp_path)}
    user_unit = tmp_path / "user" / "voicemoded.service"
    user_unit.parent.mkdir()
    user_unit.write_text(render_systemd(current_install(), system=False))
    done = _verify(user_unit, "--user", env=env)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    system_unit = tmp_path / "system" / "voicemoded.service"
    system_unit.parent.mkdir()
    system_unit.write_text(render_systemd(current_install(run_as=a_user()), system=True))
    done = _verify(system_unit, env=env)
    assert done.returncode == 0 and done.stderr.strip() == "", done.stderr
    # The check can fail: a misspelt option is reported.
    user_unit.write_text(render_systemd(current_install(), system=False) + "\n[Service]\nProtectHome=maybe\n")
    assert "protect home value" in _verify(user_unit, "--user", env=env).stderr


def test_launchd_agent_restarts_on_failure_and_logs_to_the_base_dir(tmp_path: Path) -> None:
    install = Install(("/opt/vm/bin/voicemoded",), "you", "staff", 501, "/opt/vm/bin:/usr/bin")
    plist = plistlib.loads(render_launchd(install, tmp_path))
    assert plist["Label"] == LAUNCHD_LABEL, "the label the front doors kickstart"
    assert plist["ProgramArguments"] == ["/opt/vm/bin/voicemoded", "--log-format", "json"]
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["StandardErrorPath"] == str(tmp_path / ".voicemode" / "logs" / "voicemoded.launchd.log")
    assert plist["EnvironmentVariables"]["PATH"].startswith("/opt/vm/bin")
    placed = target(install, manager="launchd", system=False, env={"HOME": str(tmp_path)})
    assert placed.path == tmp_path / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    assert placed.enable == ("launchctl", "bootstrap", "gui/501", str(placed.path))


def test_systemd_targets_and_manager_commands(tmp_path: Path) -> None:
    install = current_install()
    user = target(install, manager="systemd", system=False, env={"HOME": str(tmp_path)})
    assert user.path == tmp_path / ".config" / "systemd" / "user" / "voicemoded.service"
    assert user.reload == ("systemctl", "--user", "daemon-reload")
    assert user.enable == ("systemctl", "--user", "enable", "--now", "voicemoded.service")
    system = target(install, manager="systemd", system=True, env={"HOME": str(tmp_path)})
    assert system.path == Path("/etc/systemd/system/voicemoded.service")
    assert system.disable == ("systemctl", "disable", "--now", "voicemoded.service")


def test_checked_in_examples_match_the_renderer() -> None:
    sys.path.insert(0, str(ROOT / "packaging"))
    try:
        import render  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(ROOT / "packaging"))
    for path, content in render.examples().items():
        assert path.read_bytes() == content, f"{path} is out of date: run `python packaging/render.py`"

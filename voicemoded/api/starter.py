"""Start voicemoded when a front door finds none: through the user's service manager when a unit is
installed (so the daemon lives under systemd/launchd as the user set it up), else as a detached child.

Standard library + the client only: both front doors import this.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from voicemoded.api.client import Client, ClientError, DaemonNotRunning
from voicemoded.api.errors import VoicemodeError
from voicemoded.api.instance import running_daemon
from voicemoded.api.paths import Paths, storage_error

SYSTEMD_UNIT = "voicemoded.service"
LAUNCHD_LABEL = "com.voicemode.voicemoded"


@dataclass(frozen=True, slots=True)
class Started:
    pid: int
    already_running: bool
    how: str
    """``running``, ``systemd``, ``launchd``, ``detached`` or ``command``."""


def systemd_unit(env: Mapping[str, str] | None = None) -> Path | None:
    """The installed user unit file, when there is one and systemctl exists."""
    env = os.environ if env is None else env
    if sys.platform != "linux" or shutil.which("systemctl") is None:
        return None
    home = Path(env.get("HOME") or Path.home())
    config = Path(env.get("XDG_CONFIG_HOME") or home / ".config")
    data = Path(env.get("XDG_DATA_HOME") or home / ".local" / "share")
    for folder in (config / "systemd" / "user", data / "systemd" / "user", Path("/etc/systemd/user"),
                   Path("/usr/lib/systemd/user"), Path("/usr/local/lib/systemd/user")):  # fmt: skip
        if (folder / SYSTEMD_UNIT).is_file():
            return folder / SYSTEMD_UNIT
    return None


def launchd_plist(env: Mapping[str, str] | None = None) -> Path | None:
    env = os.environ if env is None else env
    if sys.platform != "darwin":
        return None
    path = Path(env.get("HOME") or Path.home()) / "Library" / "LaunchAgents" / f"{LAUNCHD_LABEL}.plist"
    return path if path.is_file() else None


def log_file(env: Mapping[str, str] | None = None) -> Path:
    return Paths.from_env(env).logs / "voicemoded.log"


def _tail(path: Path, lines: int = 15) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def _service_manager_start(env: Mapping[str, str]) -> str:
    """Ask the service manager to start the daemon; returns how, or '' when no unit is installed."""
    if systemd_unit(env) is not None:
        cmd = ["systemctl", "--user", "start", "--no-block", SYSTEMD_UNIT]
        how = "systemd"
    elif launchd_plist(env) is not None:
        cmd = ["launchctl", "kickstart", f"gui/{os.getuid()}/{LAUNCHD_LABEL}"]
        how = "launchd"
    else:
        return ""
    result = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=10)
    if result.returncode != 0:
        print(f"voicemode: `{shlex.join(cmd)}` failed: {result.stderr.strip()}", file=sys.stderr)
        return ""
    return how


def _open_log(paths: Paths, log: Path) -> int:
    """The daemon's start-up log, private like everything under the base dir; a clear error if it can't be."""
    try:
        paths.ensure((paths.base, log.parent))
        return os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
    except VoicemodeError as exc:
        raise ClientError.of(exc) from None
    except OSError as exc:
        raise ClientError.of(storage_error(exc, log, "open the daemon's log")) from None


def _spawn(command: Sequence[str], out: int) -> subprocess.Popen[bytes]:
    try:
        return subprocess.Popen(
            list(command), stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            start_new_session=True, close_fds=True,
        )  # fmt: skip
    finally:
        os.close(out)


def _check_base_dir(client: Client, env: Mapping[str, str]) -> None:
    """A daemon already runs for this base dir on another socket: say where, do not start a second."""
    paths = Paths.from_env(env)
    record = running_daemon(paths.base)
    if record is None or record.socket == client.socket:
        return
    raise ClientError(
        "ALREADY_EXISTS",
        f"voicemoded (pid {record.pid}) already runs for {paths.base} on {record.socket}, "
        f"not on {client.socket}",
        f"talk to it with `--socket {record.socket}` (or unset VOICEMODE_SOCKET), "
        f"or stop it first: `voicemodectl --socket {record.socket} daemon stop`",
        {"pid": str(record.pid), "socket": str(record.socket), "base_dir": str(paths.base)},
    )


def start(
    client: Client,
    timeout: float,
    *,
    command: Sequence[str] | None = None,
    use_service_manager: bool = True,
    env: Mapping[str, str] | None = None,
) -> Started:
    """Make sure a daemon answers on the client's socket; start one if none does.

    ``command`` replaces the default detached ``python -m voicemoded --socket …``. Raises ``ClientError``
    that says why it did not start and how to see more.
    """
    env = os.environ if env is None else env
    try:
        return Started(client.status(timeout=2.0).pid, True, "running")
    except DaemonNotRunning:
        pass
    deadline = time.monotonic() + timeout
    _check_base_dir(client, env)
    how = "" if command else (_service_manager_start(env) if use_service_manager else "")
    if how:
        try:
            status = client.wait_until_ready(max(0.1, deadline - time.monotonic()))
            return Started(status.pid, False, how)
        except ClientError as exc:
            raise ClientError(
                "UNAVAILABLE",
                f"voicemoded was started by {how} but does not answer on {client.socket}: {exc.message}",
                "see `systemctl --user status voicemoded` / `journalctl --user -u voicemoded`"
                if how == "systemd"
                else f"see `launchctl print gui/{os.getuid()}/{LAUNCHD_LABEL}`",
            ) from None
    log = log_file(env)
    argv = list(command) if command else [sys.executable, "-m", "voicemoded", "--socket", str(client.socket),
                                           "--log-format", "json"]  # fmt: skip
    out = _open_log(Paths.from_env(env), log)
    try:
        child = _spawn(argv, out)
    except OSError as exc:
        raise ClientError(
            "UNAVAILABLE",
            f"could not run {shlex.join(argv)}: {exc.strerror or exc}",
            f"check that {argv[0]} exists and is executable (is voicemode installed in this environment?)",
        ) from None
    try:
        status = client.wait_until_ready(
            max(0.1, deadline - time.monotonic()), alive=lambda: child.poll() is None
        )
    except ClientError:
        code = child.poll()
        detail = (
            f"it exited with code {code}" if code is not None else f"it did not answer within {timeout:g} s"
        )
        tail = _tail(log)
        raise ClientError(
            "UNAVAILABLE",
            f"voicemoded did not start: {detail}" + (f"\n--- {log} ---\n{tail}" if tail else ""),
            f"run `voicemoded --socket {client.socket}` in a terminal to see why",
        ) from None
    return Started(status.pid, False, "command" if command else "detached")

"""A stand-in ``systemctl`` for machines where no systemd runs (containers, CI): it records each call and
starts the installed user unit the way systemd would: its ExecStart with its Environment= lines,
%-specifiers expanded, the RuntimeDirectory created, NOTIFY_SOCKET and INVOCATION_ID set. ``disable --now``
sends SIGTERM and removes the runtime directory.

State lives in $FAKE_SYSTEMCTL_STATE (calls.log, daemon.pid, daemon.log); the notify socket the test listens
on is $FAKE_NOTIFY_SOCKET.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil

STATE = Path(os.environ["FAKE_SYSTEMCTL_STATE"])
UNIT = "voicemoded.service"


def unit_file() -> Path:
    config = Path(os.environ.get("XDG_CONFIG_HOME") or Path(os.environ["HOME"]) / ".config")
    return config / "systemd" / "user" / UNIT


def expand(value: str) -> str:
    value = value.replace("%%", "\0").replace("%t", os.environ["XDG_RUNTIME_DIR"]).replace("\0", "%")
    return value.replace("$$", "$")


def service_section(path: Path) -> list[tuple[str, str]]:
    entries, section = [], ""
    for line in path.read_text().splitlines():
        if line.startswith("["):
            section = line.strip("[]")
        elif section == "Service" and "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            entries.append((key, value))
    return entries


def start() -> int:
    entries = service_section(unit_file())
    env = dict(os.environ)
    for key, value in entries:
        if key == "Environment":
            for assignment in shlex.split(value):
                name, _, val = assignment.partition("=")
                env[name] = expand(val)
    env.update(NOTIFY_SOCKET=os.environ["FAKE_NOTIFY_SOCKET"], INVOCATION_ID="0123456789abcdef")
    for key, value in entries:
        if key == "RuntimeDirectory":
            folder = Path(os.environ["XDG_RUNTIME_DIR"]) / value
            folder.mkdir(mode=0o700, exist_ok=True)
    argv = [expand(a) for a in shlex.split(dict(entries)["ExecStart"])]
    with open(STATE / "daemon.log", "ab") as log:
        child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                 start_new_session=True)  # fmt: skip
    (STATE / "daemon.pid").write_text(str(child.pid))
    return 0


def alive(pid: int) -> bool:
    """Gone once it exited (a zombie waiting for init to reap it counts as gone)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def stop() -> int:
    pid_file = STATE / "daemon.pid"
    if not pid_file.exists():
        return 0
    pid = int(pid_file.read_text())
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and alive(pid):
        time.sleep(0.05)
    pid_file.unlink()
    shutil.rmtree(Path(os.environ["XDG_RUNTIME_DIR"]) / "voicemode", ignore_errors=True)
    return 0


def main(argv: list[str]) -> int:
    with open(STATE / "calls.log", "a") as calls:
        calls.write(shlex.join(argv) + "\n")
    words = [a for a in argv if a != "--user"]
    if words[:1] == ["daemon-reload"]:
        return 0
    if words[:2] == ["enable", "--now"]:
        return start()
    if words[:2] == ["disable", "--now"]:
        return stop()
    print(f"fake systemctl: unsupported {argv}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Who else can read the configuration: the base folder and the files that may hold API keys.

A ``~/.voicemode`` made 0755 by an older version or by hand, with a 0644 ``voicemode.env``, lets every
user on the machine read the OpenAI key in it; a file others can write lets them choose where this
user's recordings are sent. The daemon writes its files 0600 but never changes modes behind the
person's back, so ``doctor`` says so and prints the ``chmod`` that fixes it. Standard library only, and
nothing is opened but regular files (a named pipe in the way must not hang the check).
"""

from __future__ import annotations

import os
import re
import shlex
import stat
from pathlib import Path

Finding = tuple[str, str, str]
"""(status, detail, fix): the doctor turns each into one of its checks."""

_MAX_BYTES = 1 << 20
_SECRET_NAME = re.compile(r"(key|secret|token|passw(or)?d)", re.IGNORECASE)
_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*[=:]\s*(\S.*)$")
_SECRET_SHAPE = re.compile(r"\b(sk-[A-Za-z0-9_\-]{8,}|Bearer\s+\S{8,})")


def holds_secret(path: Path) -> bool:
    """Whether a regular file has a non-empty value for a key/secret/token/password, or a key-shaped value."""
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):
            return False
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        data = os.read(fd, _MAX_BYTES)
    except OSError:
        return False
    finally:
        os.close(fd)
    for line in data.decode("utf-8", errors="replace").splitlines():
        match = _ASSIGNMENT.match(line)
        if match and _SECRET_NAME.search(match.group(1)) and match.group(2).strip("'\" "):
            return True
        if not line.lstrip().startswith("#") and _SECRET_SHAPE.search(line):
            return True
    return False


def _mode(path: Path) -> int | None:
    try:
        return stat.S_IMODE(path.lstat().st_mode)
    except OSError:
        return None


def base_folder_findings(base: Path) -> list[Finding]:
    mode = _mode(base)
    if mode is None:
        return []
    if mode & 0o077:
        return [
            (
                "warn",
                f"folder {base} is {mode:04o}: other users can look inside (recordings, transcripts, logs)",
                f"chmod 700 {shlex.quote(str(base))}",
            )
        ]
    return [("ok", f"{base} is private ({mode:04o})", "")]


def file_findings(path: Path) -> list[Finding]:
    mode = _mode(path)
    if mode is None or path.is_symlink() or not path.is_file():
        return []
    fix = f"chmod 600 {shlex.quote(str(path))}"
    if mode & 0o022:
        return [("warn", f"{path} is {mode:04o}: other users can change it (and where your audio goes)", fix)]
    if mode & 0o044 and holds_secret(path):
        return [("warn", f"{path} is {mode:04o} and holds a secret: other users can read it", fix)]
    return [("ok", f"{path} ({mode:04o})", "")]


def config_file_findings(base: Path, files: list[Path]) -> list[Finding]:
    findings = base_folder_findings(base)
    for path in files:
        findings += file_findings(path)
    return findings

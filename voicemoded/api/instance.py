"""One daemon per user and base directory: the lock the daemon holds and the record front doors read.

The socket's own lock only keeps two daemons off one socket. Two daemons on different sockets but one
base directory (a front door started with a trimmed environment computes another socket path) would
share pid files, ports and the microphone, and the second would end the first one's children as
leftovers. So the daemon also takes ``<base>/run/voicemoded.lock`` with ``flock`` before it touches
anything, and writes its pid and socket there as JSON. A front door that finds no daemon at the socket
it computed reads that record to find the one that runs.

Standard library only: both front doors import this.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import stat
import sys
from dataclasses import dataclass
from pathlib import Path

from voicemoded.api.errors import AlreadyExists

RECORD_NAME = "voicemoded.lock"
_MAX_RECORD_BYTES = 4096


def record_path(base: Path) -> Path:
    return base / "run" / RECORD_NAME


@dataclass(frozen=True, slots=True)
class DaemonRecord:
    """What the running daemon of a base directory wrote about itself."""

    pid: int
    socket: Path

    @property
    def serving(self) -> bool:
        """Its socket exists (a daemon that is still starting has not bound it yet)."""
        return self.socket.exists()


def _parse(text: str) -> DaemonRecord | None:
    try:
        raw = json.loads(text)
        pid, socket = int(raw["pid"]), str(raw["socket"])
    except (ValueError, KeyError, TypeError):
        return None
    return DaemonRecord(pid, Path(socket)) if pid > 0 and socket else None


def read_record(base: Path) -> DaemonRecord | None:
    """The record as written, unchecked; None when there is none (or only an empty, released one)."""
    try:
        fd = os.open(record_path(base), os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        return _parse(os.read(fd, _MAX_RECORD_BYTES).decode(errors="replace"))
    except OSError:
        return None
    finally:
        os.close(fd)


def _is_our_daemon(pid: int) -> bool:
    """Alive, this user's, and (where /proc tells) a voicemoded rather than a program that got its pid."""
    try:
        os.kill(pid, 0)
    except OSError:  # gone, or another user's process
        return False
    cmdline = Path(f"/proc/{pid}/cmdline")
    if sys.platform.startswith("linux") and cmdline.parent.is_dir():
        try:
            return b"voicemoded" in cmdline.read_bytes()
        except OSError:
            return False
    return True


def running_daemon(base: Path) -> DaemonRecord | None:
    """The base directory's daemon when the record holds up: pid alive and ours, socket ours or not yet made.

    A socket path that exists but is not a socket, or belongs to someone else, is never followed.
    """
    record = read_record(base)
    if record is None or not _is_our_daemon(record.pid):
        return None
    try:
        info = record.socket.lstat()
    except FileNotFoundError:
        return record  # starting: the caller waits for it to answer
    except OSError:
        return None
    if not stat.S_ISSOCK(info.st_mode) or info.st_uid != os.getuid():
        return None
    return record


class HeldLock:
    """An exclusive ``flock`` on a file that holds its owner's record, for the owner's whole life.

    The kernel lets go when the owner dies, however it dies; on a clean release the record is emptied
    first, so nobody follows a record of a process that stopped.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd: int | None = None

    def acquire(self, record: str) -> str | None:
        """Take the lock and write ``record``; None when taken, else what the holder wrote (not taken)."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            held = os.pread(fd, _MAX_RECORD_BYTES, 0).decode(errors="replace")
            os.close(fd)
            return held
        except BaseException:
            os.close(fd)
            raise
        os.fchmod(fd, 0o600)
        os.ftruncate(fd, 0)
        os.pwrite(fd, record.encode(), 0)
        self._fd = fd
        return None

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.ftruncate(self._fd, 0)
        os.close(self._fd)
        self._fd = None


class BaseDirLock:
    """``<base>/run/voicemoded.lock``, recording the daemon's pid and socket as JSON for front doors."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.path = record_path(base)
        self._lock = HeldLock(self.path)

    def acquire(self, socket: Path) -> None:
        """Take the lock and record ``socket``; AlreadyExists names the daemon that holds it."""
        held = self._lock.acquire(json.dumps({"pid": os.getpid(), "socket": str(socket)}) + "\n")
        if held is None:
            return
        owner = _parse(held)
        pid = str(owner.pid) if owner else "unknown"
        where = f" {owner.socket}" if owner else " its socket"
        raise AlreadyExists(
            f"another voicemoded (pid {pid}) is already serving{where} for {self.base}",
            hint=(f"talk to it with `voicemodectl --socket {owner.socket} status`, " if owner else "")
            + "or stop it first with `voicemodectl daemon stop`",
            fields={"pid": pid, "socket": str(owner.socket) if owner else "", "base_dir": str(self.base)},
        )

    def release(self) -> None:
        self._lock.release()

    def __enter__(self) -> BaseDirLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

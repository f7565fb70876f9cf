"""Where voicemode keeps things. Standard library only: the front doors import this too.

State lives under ``~/.voicemode`` (``VOICEMODE_BASE_DIR``); the socket lives under
``$XDG_RUNTIME_DIR/voicemode/`` when there is one (``/run/user/<uid>`` when the variable was dropped
from the environment but the folder is there and ours), else under the base dir. Nothing here creates a
folder except :meth:`Paths.ensure`, which only the daemon and the starter call, so ``--help`` or a
read-only command never writes to the home folder.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from voicemoded.api.errors import (
    DENIED_ERRNOS,
    NO_SPACE_ERRNOS,
    FailedPrecondition,
    NoSpace,
    PermissionDenied,
    VoicemodeError,
)

SOCKET_NAME = "voicemoded.sock"
USER_FILE_NAME = "voicemode.env"
PROJECT_FILE_NAME = ".voicemode.env"
#: ``sun_path`` holds 108 bytes on Linux (104 on macOS) including the final NUL.
MAX_SOCKET_PATH_BYTES = 107 if os.uname().sysname == "Linux" else 103
PRIVATE_DIR_MODE = 0o700


def base_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    configured = env.get("VOICEMODE_BASE_DIR", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".voicemode"


def socket_configured(env: Mapping[str, str] | None = None) -> bool:
    """True when the user named the socket (``VOICEMODE_SOCKET``); then nothing else is looked up."""
    env = os.environ if env is None else env
    return bool(env.get("VOICEMODE_SOCKET", "").strip())


def runtime_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """``$XDG_RUNTIME_DIR``, else ``/run/user/<uid>`` when it exists and is private to this user.

    MCP clients launch their servers with a trimmed environment (HOME, PATH, USER… but no
    ``XDG_RUNTIME_DIR``); the fallback lets such a front door compute the same socket path as a daemon
    started from a login session. A folder someone else owns or can write to is never used.
    """
    env = os.environ if env is None else env
    runtime = env.get("XDG_RUNTIME_DIR", "").strip()
    if runtime and Path(runtime).is_dir():
        return Path(runtime)
    fallback = Path(f"/run/user/{os.getuid()}")
    try:
        info = fallback.lstat()
    except OSError:
        return None
    private = stat.S_ISDIR(info.st_mode) and not info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
    return fallback if private and info.st_uid == os.getuid() else None


def default_socket(env: Mapping[str, str] | None = None) -> Path:
    """``VOICEMODE_SOCKET``, else ``<runtime dir>/voicemode/voicemoded.sock``, else ``<base>/run/...``."""
    env = os.environ if env is None else env
    configured = env.get("VOICEMODE_SOCKET", "").strip()
    if configured:
        return Path(configured).expanduser()
    runtime = runtime_dir(env)
    if runtime is not None:
        return runtime / "voicemode" / SOCKET_NAME
    return base_dir(env) / "run" / SOCKET_NAME


def lock_path(socket: Path) -> Path:
    """The single-instance lock beside the socket; it holds the daemon's pid."""
    return socket.with_name(socket.name + ".lock")


def check_socket_path(socket: Path) -> None:
    """Refuse a socket path the kernel cannot bind or connect to, before anything tries."""
    size = len(os.fsencode(socket))
    if size > MAX_SOCKET_PATH_BYTES:
        raise FailedPrecondition(
            f"the socket path {socket} is {size} bytes long; "
            f"Unix sockets allow at most {MAX_SOCKET_PATH_BYTES}",
            hint="name a shorter one with --socket or VOICEMODE_SOCKET (e.g. /tmp/voicemode/voicemoded.sock), "
            "or use a shorter VOICEMODE_BASE_DIR",
            fields={"socket": str(socket)},
        )


def storage_error(exc: OSError, path: Path, doing: str) -> VoicemodeError:
    """A failed write to the state folders as an error naming the path and the fix, not as a bug.

    ``doing`` completes "cannot …", e.g. "save the autostart choices".
    """
    target = Path(exc.filename) if isinstance(exc.filename, str) else path
    fields = {"path": str(target), "errno": errno.errorcode.get(exc.errno or 0, str(exc.errno))}
    if exc.errno in DENIED_ERRNOS or exc.errno == errno.EROFS:
        why = "read-only file system" if exc.errno == errno.EROFS else "permission denied"
        folder = target if target.is_dir() else target.parent
        return PermissionDenied(
            f"cannot {doing}: {why} on {target}",
            hint=f"make {folder} writable for your user (e.g. `chmod u+rwx {folder}`), "
            "or point VOICEMODE_BASE_DIR at a folder you own",
            fields=fields,
        )
    if exc.errno in NO_SPACE_ERRNOS:
        return NoSpace(
            f"cannot {doing}: no space left on the device holding {target}",
            hint=f"free some space there (`df -h {target.parent}` shows how much is left) and try again",
            fields=fields,
        )
    if exc.errno == errno.ENAMETOOLONG:
        return FailedPrecondition(
            f"cannot {doing}: the path {target} is too long",
            hint="use a shorter VOICEMODE_BASE_DIR",
            fields=fields,
        )
    return FailedPrecondition(
        f"cannot {doing}: {exc.strerror or exc} ({target})",
        hint=f"check {target.parent} (`ls -ld {target.parent}`)",
        fields=fields,
    )


@dataclass(frozen=True, slots=True)
class Paths:
    """The daemon's folders, derived from the base dir."""

    base: Path
    socket: Path

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, socket: Path | None = None) -> Paths:
        return cls(base=base_dir(env), socket=socket or default_socket(env))

    @property
    def user_file(self) -> Path:
        return self.base / USER_FILE_NAME

    @property
    def logs(self) -> Path:
        return self.base / "logs"

    @property
    def services(self) -> Path:
        return self.base / "services"

    @property
    def models(self) -> Path:
        return self.base / "models"

    @property
    def audio(self) -> Path:
        return self.base / "audio"

    @property
    def conversations(self) -> Path:
        return self.base / "conversations"

    @property
    def run(self) -> Path:
        return self.base / "run"

    def ensure(self, folders: tuple[Path, ...] | None = None) -> list[Path]:
        """Create the state folders private to the user; take group and other bits off existing ones.

        Returns the folders whose mode was tightened (the daemon reports them). A folder that cannot be
        created or fixed is a ``FailedPrecondition`` naming it, never a traceback.
        """
        wanted = folders or (self.base, self.logs, self.services, self.audio, self.conversations, self.run)
        optional = () if folders else (self.models,)
        tightened: list[Path] = []
        for folder in (*wanted, *optional):
            try:
                if folder in wanted:
                    _make_private(folder)
                info = folder.lstat()
            except FileNotFoundError:
                continue  # an optional folder nobody made yet
            except OSError as exc:
                raise storage_error(exc, folder, f"create the folder {folder}") from None
            if not stat.S_ISDIR(info.st_mode):
                raise FailedPrecondition(
                    f"{folder} is not a folder",
                    hint=f"move it away; voicemode keeps its state in {self.base}",
                )
            mode = stat.S_IMODE(info.st_mode)
            if info.st_uid == os.getuid() and mode & 0o077:
                try:
                    os.chmod(folder, mode & PRIVATE_DIR_MODE)  # never widens: a 0555 folder stays unwritable
                except OSError as exc:
                    raise storage_error(exc, folder, f"make {folder} private") from None
                tightened.append(folder)
        return tightened


def _make_private(folder: Path) -> None:
    """mkdir with mode 0700 for every missing level (``Path.mkdir(parents=True)`` gives parents 0755)."""
    if folder.is_dir():
        return
    if not folder.parent.is_dir():
        _make_private(folder.parent)
    try:
        folder.mkdir(mode=PRIVATE_DIR_MODE)
    except FileExistsError:
        if not folder.is_dir():
            raise

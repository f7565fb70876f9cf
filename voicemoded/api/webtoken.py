"""Per-install tokens: 32 random bytes, URL-safe base64, in a 0600 file in a 0700 folder.

The web door's is ``<base>/web/token``: anything that changes state through the web door needs it, and
beyond loopback every request does. The engines' (``voicemoded.engines.access``) is kept the same way. A
token file is made on first need and written whole before it is visible (two processes starting at once
agree on one token). Standard library only: the web door and ``voicemodectl web url`` both read it.
"""

from __future__ import annotations

import contextlib
import hmac
import os
import secrets
import stat
from collections.abc import Mapping
from pathlib import Path

from voicemoded.api.errors import FailedPrecondition
from voicemoded.api.paths import Paths, base_dir, storage_error

FOLDER_NAME = "web"
FILE_NAME = "token"
TOKEN_BYTES = 32
_MAX_FILE_BYTES = 4096


def token_path(env: Mapping[str, str] | None = None) -> Path:
    return base_dir(env) / FOLDER_NAME / FILE_NAME


WEB = "the web door's token"


def read_token(path: Path, what: str = WEB) -> str | None:
    """The token in ``path``, None when there is no file yet; a file others could read is narrowed to
    0600 on the way. A file that cannot serve as a token is a ``FailedPrecondition`` saying to delete it.
    ``what`` names the token in errors."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise storage_error(exc, path, f"read {what}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _unusable(path, what, "it is not a regular file")
    with os.fdopen(fd, "rb") as file:
        info = os.fstat(file.fileno())
        if info.st_mode & 0o077:
            os.fchmod(file.fileno(), 0o600)
        raw = file.read(_MAX_FILE_BYTES + 1)
    token = raw.decode("ascii", errors="replace").strip()
    if not token or len(raw) > _MAX_FILE_BYTES or any(c.isspace() or not c.isprintable() for c in token):
        raise _unusable(path, what, "it holds no usable token")
    return token


def ensure_token(path: Path, what: str = WEB, base: Path | None = None) -> str:
    """The token, created when there is none yet (the first creator wins a race). ``base``: the folder
    from which every level down to the file's is made 0700 (default: the file's grandparent)."""
    found = read_token(path, what)
    if found is not None:
        return found
    try:
        root = base if base is not None else path.parent.parent
        Paths(base=root, socket=Path()).ensure((path.parent,))  # 0700 at every level
        token = secrets.token_urlsafe(TOKEN_BYTES)
        temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
        try:
            with os.fdopen(fd, "w") as file:
                file.write(token + "\n")
                file.flush()
                os.fsync(file.fileno())
            try:
                os.link(temp, path)  # fails when another process made it first: theirs wins
            except FileExistsError:
                return read_token(path, what) or token
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
    except OSError as exc:
        raise storage_error(exc, path, f"create {what}") from None
    return token


def matches(given: str, token: str) -> bool:
    """Constant-time comparison, so the answer's timing tells nothing about the token."""
    return hmac.compare_digest(given.encode("utf-8", "surrogateescape"), token.encode())


def _unusable(path: Path, what: str, why: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"{what}'s file {path} cannot be used: {why}",
        hint=f"delete {path}; a new token is made on the next start (old links stop working)",
        fields={"path": str(path)},
    )

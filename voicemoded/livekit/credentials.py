"""Which LiveKit server the daemon talks to, and with which API key.

``LIVEKIT_URL`` with ``LIVEKIT_API_KEY`` and ``LIVEKIT_API_SECRET`` name a remote deployment. Without
them it is the server the daemon supervises, with a key pair generated on first use and kept in
``<base>/livekit/keys.yaml`` (0600, folder 0700): never LiveKit's well-known development key, which
anyone who can reach the port would know. The file is in livekit-server's own ``key_file`` format
(``"<key>": "<secret>"``), so the server reads the secret from it and it never appears in a command line
or in the server's config.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from voicemoded.api.errors import FailedPrecondition
from voicemoded.api.files import NotRegular, OverLimit, read_bounded
from voicemoded.api.paths import Paths, storage_error

if TYPE_CHECKING:
    from voicemoded.config import Settings

KEYS_FILE_NAME = "keys.yaml"
_MAX_KEYS_FILE_BYTES = 4096
#: One ``"key": "secret"`` line; both parts are URL-safe tokens, so no quoting rules apply inside.
_KEYS_LINE = re.compile(r'^"([A-Za-z0-9_-]{8,200})"\s*:\s*"([A-Za-z0-9_-]{16,400})"\s*$')


@dataclass(frozen=True, slots=True)
class LiveKitAccess:
    """Where LiveKit answers and the key the daemon signs its requests and join tokens with."""

    url: str
    """``ws://127.0.0.1:7880`` for the supervised server, else ``LIVEKIT_URL``."""
    api_key: str
    api_secret: str = field(repr=False)
    managed: bool
    """True: the daemon's supervised server with its generated key; False: a remote deployment."""


def livekit_folder(paths: Paths) -> Path:
    """Where the supervised server's key and config live."""
    return paths.base / "livekit"


def keys_file(paths: Paths) -> Path:
    return livekit_folder(paths) / KEYS_FILE_NAME


def livekit_access(settings: Settings, paths: Paths) -> LiveKitAccess:
    """The remote deployment when ``LIVEKIT_URL`` is set, else the supervised server (its key made once)."""
    if settings.livekit_url:
        missing = [
            name
            for name, value in (
                ("LIVEKIT_API_KEY", settings.livekit_api_key),
                ("LIVEKIT_API_SECRET", settings.livekit_api_secret),
            )
            if not value
        ]
        if missing:
            raise FailedPrecondition(
                f"LIVEKIT_URL is set but {' and '.join(missing)} {'is' if len(missing) == 1 else 'are'} not",
                hint=f"set {', '.join(missing)} to the deployment's API key pair, or unset LIVEKIT_URL "
                "to use the LiveKit server the daemon runs",
                fields={"missing": ",".join(missing)},
            )
        return LiveKitAccess(
            url=settings.livekit_url,
            api_key=settings.livekit_api_key,
            api_secret=settings.livekit_api_secret,
            managed=False,
        )
    key, secret = ensure_keys(keys_file(paths))
    return LiveKitAccess(
        url=local_url(settings.service_host, settings.livekit_port),
        api_key=key,
        api_secret=secret,
        managed=True,
    )


def local_url(host: str, port: int) -> str:
    """The URL a client on this machine uses: a server bound to every address is reached on loopback."""
    name = host.strip("[]")
    if name in ("0.0.0.0", "::", ""):
        name = "127.0.0.1"
    if ":" in name:
        name = f"[{name}]"
    return f"ws://{name}:{port}"


def ensure_keys(path: Path) -> tuple[str, str]:
    """The supervised server's ``(key, secret)``, generated on first use; a damaged file is an error."""
    with contextlib.suppress(FileNotFoundError, NotADirectoryError):
        return read_keys(path)
    key = "API" + secrets.token_urlsafe(12).replace("-", "x").replace("_", "y")
    secret = secrets.token_urlsafe(32)
    try:
        ensure_private_folder(path.parent)
        _create_once(path, f'"{key}": "{secret}"\n')
    except OSError as exc:
        raise storage_error(exc, path, "store the LiveKit API key") from None
    return read_keys(path)


def read_keys(path: Path) -> tuple[str, str]:
    """``(key, secret)`` from a keys file; ``FileNotFoundError`` (or ``NotADirectoryError``, for a file
    where the folder should be) when there is none yet."""
    try:
        raw = read_bounded(path, _MAX_KEYS_FILE_BYTES)
    except (FileNotFoundError, NotADirectoryError):
        raise
    except (OSError, NotRegular, OverLimit) as exc:
        raise _damaged(path, str(getattr(exc, "strerror", None) or exc)) from None
    lines = [line for line in raw.decode("utf-8", errors="replace").splitlines() if line.strip()]
    match = _KEYS_LINE.match(lines[0]) if len(lines) == 1 else None
    if match is None:
        raise _damaged(path, 'it does not hold one "<key>": "<secret>" line')
    if os.stat(path).st_mode & 0o077:
        with contextlib.suppress(OSError):
            os.chmod(path, 0o600)
    return match.group(1), match.group(2)


def _damaged(path: Path, why: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"the LiveKit key file {path} cannot be used: {why}",
        hint=f"delete {path} to have a new key generated (join tokens issued with the old one stop working)",
        fields={"file": str(path)},
    )


def ensure_private_folder(folder: Path) -> None:
    """The folder, made 0700 (and narrowed to it if it was wider)."""
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if folder.stat().st_mode & 0o077:
        os.chmod(folder, 0o700)


def _create_once(path: Path, text: str) -> None:
    """Write ``text`` 0600 under ``path`` whole before it is visible; a file someone made first wins."""
    temp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        with contextlib.suppress(FileExistsError):
            os.link(temp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temp)

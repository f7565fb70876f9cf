"""Where the livekit-server binary is: the configured path, PATH, or the pinned build in the cache.

The server is LiveKit's own Go program. On a machine with Go, ``go install`` of the pinned release's
``cmd/server`` package builds it into ``~/.cache/voicemode-livekit/<version>/`` (``VOICEMODE_LIVEKIT_CACHE``
moves the cache); elsewhere a ``livekit-server`` from PATH (brew, a release download) or at
``VOICEMODE_LIVEKIT_SERVER_PATH`` serves. Standard library only: the engine catalog reads the version.
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

PINNED_VERSION = "v1.13.5"
"""The LiveKit release built here: the newest whose go.mod ``go install`` accepts (no replace directives)."""
GO_PACKAGE = "github.com/livekit/livekit-server/cmd/server"
BINARY_NAME = "livekit-server"
#: The name ``go install`` gives the binary (after its package folder) before it is renamed.
GO_BINARY_NAME = "server"


def cache_folder(configured: str = "") -> Path:
    """Where pinned builds live: ``VOICEMODE_LIVEKIT_CACHE``, else ``~/.cache/voicemode-livekit``."""
    return Path(configured).expanduser() if configured else Path.home() / ".cache" / "voicemode-livekit"


def pinned_binary(cache: Path, version: str = PINNED_VERSION) -> Path:
    return cache / version / BINARY_NAME


def find_server(
    configured: str = "", cache: Path | None = None, search_path: str | None = None
) -> Path | None:
    """The livekit-server to run: the configured path, else PATH, else the pinned build in ``cache``."""
    folder = pinned_binary(cache).parent if cache is not None else None
    return find_program(BINARY_NAME, configured, folder, search_path, also=(GO_BINARY_NAME,))


def find_program(
    name: str,
    configured: str = "",
    folder: Path | None = None,
    search_path: str | None = None,
    *,
    also: tuple[str, ...] = (),
) -> Path | None:
    """``configured`` when set (runnable or None), else ``name`` on PATH, else ``name`` (or one of
    ``also``, the names a build leaves) in ``folder``."""
    if configured:
        path = Path(configured).expanduser()
        return path if _runnable(path) else None
    found = shutil.which(name, path=search_path)
    if found:
        return Path(found)
    if folder is None:
        return None
    for candidate in (name, *also):
        if _runnable(folder / candidate):
            return folder / candidate
    return None


def _runnable(path: Path) -> bool:
    return path.is_file() and os.access(path, os.X_OK)

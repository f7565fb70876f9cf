"""Where voicemode keeps things. Standard library only: the front doors import this too.

State lives under ``~/.voicemode`` (``VOICEMODE_BASE_DIR``); the socket lives under
``$XDG_RUNTIME_DIR/voicemode/`` when there is one, else under the base dir. Nothing here creates a folder:
creating is the daemon's job, so ``--help`` or a read-only command never writes to the home folder.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

SOCKET_NAME = "voicemoded.sock"
USER_FILE_NAME = "voicemode.env"
PROJECT_FILE_NAME = ".voicemode.env"


def base_dir(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    configured = env.get("VOICEMODE_BASE_DIR", "").strip()
    return Path(configured).expanduser() if configured else Path.home() / ".voicemode"


def default_socket(env: Mapping[str, str] | None = None) -> Path:
    """``VOICEMODE_SOCKET``, else ``$XDG_RUNTIME_DIR/voicemode/voicemoded.sock``, else ``<base>/run/...``."""
    env = os.environ if env is None else env
    configured = env.get("VOICEMODE_SOCKET", "").strip()
    if configured:
        return Path(configured).expanduser()
    runtime = env.get("XDG_RUNTIME_DIR", "").strip()
    if runtime and Path(runtime).is_dir():
        return Path(runtime) / "voicemode" / SOCKET_NAME
    return base_dir(env) / "run" / SOCKET_NAME


def lock_path(socket: Path) -> Path:
    """The single-instance lock beside the socket; it holds the daemon's pid."""
    return socket.with_name(socket.name + ".lock")


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

    def ensure(self) -> None:
        """Create the state folders, private to the user."""
        for folder in (self.base, self.logs, self.services, self.audio, self.conversations, self.run):
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)

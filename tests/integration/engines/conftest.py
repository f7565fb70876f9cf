"""One real server per engine for the whole folder: model loads are the slow part of these tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from voicemoded.audio.format import AudioFormat
from voicemoded.audio.resample import resample
from voicemoded.testing.engines import EngineProcess, running_engine
from voicemoded.testing.person import Voice

pytestmark = pytest.mark.engines


@pytest.fixture(scope="package")
def engines_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("engines")


@pytest.fixture(scope="package")
def whisper(engines_tmp: Path) -> Iterator[EngineProcess]:
    yield from running_engine("whisper", engines_tmp)


@pytest.fixture(scope="package")
def whisper_base(engines_tmp: Path) -> Iterator[EngineProcess]:
    """The multilingual Whisper base model (assembled from its two part packages on first use)."""
    yield from running_engine("whisper", engines_tmp / "base-model", "--model", "base")


@pytest.fixture(scope="package")
def piper(engines_tmp: Path) -> Iterator[EngineProcess]:
    yield from running_engine("piper", engines_tmp)


@pytest.fixture(scope="package")
def kokoro(engines_tmp: Path) -> Iterator[EngineProcess]:
    yield from running_engine("kokoro", engines_tmp)


def speak(engine: EngineProcess, text: str, fmt: str = "pcm", **extra: object) -> httpx.Response:
    body = {"input": text, "response_format": fmt, **extra}
    return httpx.post(f"{engine.url}/v1/audio/speech", json=body, timeout=120)


def transcribe(
    engine: EngineProcess, data: bytes, filename: str, content_type: str, **fields: str
) -> httpx.Response:
    return httpx.post(
        f"{engine.url}/v1/audio/transcriptions",
        files={"file": (filename, data, content_type)},
        data=fields,
        timeout=120,
    )


@pytest.fixture(scope="package")
def piper_sentence(voice: Voice) -> tuple[str, bytes]:
    """A spoken sentence (24 kHz mono s16le, as the Piper server sends it) and its text.

    Piper's voice without its randomness, the same audio in every run: one random draw of it was heard
    as "but whether today ..." and failed every Whisper test at once.
    """
    text = "The weather today is sunny with 23 degrees, and the meeting starts at 4 o'clock."
    speech = voice.say(text)
    return text, resample(speech.pcm, speech.format, AudioFormat(24_000))

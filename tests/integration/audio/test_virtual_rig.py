"""The scripted person: what is played into the virtual microphone is what the microphone hears."""

from __future__ import annotations

import asyncio
import signal
import time

import numpy as np
import psutil
import pytest

from voicemoded.audio.format import SPEECH_FORMAT, AudioFormat
from voicemoded.testing.rig import VirtualAudioRig

pytestmark = pytest.mark.audio

RATE = 24000


def tone(seconds: float) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    return (np.sin(2 * np.pi * 220 * t) * 8000).astype(np.int16)


def longest_gap(pcm: bytes, rate: int) -> float:
    loud = np.flatnonzero(np.abs(np.frombuffer(pcm, dtype="<i2")) > 1000)
    return float(np.diff(loud).max()) / rate


async def player_pid(timeout: float = 5.0) -> int:
    """The ``pacat`` this process started to play into the microphone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for child in psutil.Process().children(recursive=True):
            if child.name() == "pacat":
                return child.pid
        await asyncio.sleep(0.005)
    raise AssertionError("the player did not start")


async def test_a_stalled_player_does_not_lengthen_a_pause(rig: VirtualAudioRig) -> None:
    # On a busy machine the player may not run for a while. A person's voice does not stop then, so the
    # 0.8 s pause the tests play must reach the microphone as 0.8 s, not 0.8 s plus the stall.
    answer = np.concatenate([tone(1.0), np.zeros(int(RATE * 0.8), np.int16), tone(0.5)]).tobytes()
    with rig.record_mic() as recording:
        started = time.monotonic()
        person = asyncio.create_task(rig.play_into_mic(answer, AudioFormat(RATE)))
        pid = await player_pid()
        await asyncio.sleep(max(0.0, started + 1.3 - time.monotonic()))  # inside the pause
        psutil.Process(pid).send_signal(signal.SIGSTOP)
        await asyncio.sleep(0.25)
        psutil.Process(pid).send_signal(signal.SIGCONT)
        await person
        await asyncio.sleep(0.2)
        heard = recording.stop()
    assert longest_gap(heard, SPEECH_FORMAT.rate) == pytest.approx(0.8, abs=0.02)

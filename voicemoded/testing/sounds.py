"""WAV bytes built by hand: any header a test needs, including ones no encoder would write."""

from __future__ import annotations

import math
import struct


def riff(pcm: bytes, rate: int, channels: int = 1, width: int = 2) -> bytes:
    """``pcm`` behind a RIFF/WAVE header claiming ``rate``, ``channels`` and ``width``, whatever they are.

    Out-of-range claims are cut to their field's size rather than refused, so a fuzzer can send them.
    """
    fmt = struct.pack(
        "<HHIIHH",
        1,
        channels & 0xFFFF,
        rate & 0xFFFFFFFF,
        (rate * channels * width) & 0xFFFFFFFF,
        (channels * width) & 0xFFFF,
        (width * 8) & 0xFFFF,
    )
    return (
        b"RIFF"
        + struct.pack("<I", 36 + len(pcm))
        + b"WAVEfmt "
        + struct.pack("<I", 16)
        + fmt
        + (b"data" + struct.pack("<I", len(pcm)) + pcm)
    )


def wav(rate: int, channels: int, width: int, frames: int) -> bytes:
    """A RIFF/WAVE header claiming any format, followed by ``frames`` of silence (at most 200 kB)."""
    return riff(b"\0" * min(200_000, max(0, frames * channels * width)), rate, channels, width)


def tone(seconds: float, rate: int = 24_000, hz: float = 440.0) -> bytes:
    """``seconds`` of a sine at ``hz``, 16-bit mono PCM at ``rate``."""
    return b"".join(
        struct.pack("<h", int(8000 * math.sin(2 * math.pi * hz * i / rate)))
        for i in range(int(rate * seconds))
    )

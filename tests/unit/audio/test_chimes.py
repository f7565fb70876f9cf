"""Chimes are short, click-free, and mixed over audio instead of added to it."""

from __future__ import annotations

import numpy as np
import pytest

from voicemoded.audio.chimes import Overlay, end_chime, mix, start_chime, tone
from voicemoded.audio.format import AudioFormat


@pytest.mark.parametrize("fmt", [AudioFormat(rate=16_000), AudioFormat(rate=24_000, channels=2)])
def test_chimes_are_at_most_100_ms_and_start_and_end_near_zero(fmt: AudioFormat) -> None:
    for chime in (start_chime(fmt), end_chime(fmt)):
        assert 0 < fmt.seconds_for(len(chime)) <= 0.1
        samples = np.frombuffer(chime, dtype="<i2")
        assert abs(int(samples[0])) < 200 and abs(int(samples[-1])) < 200
    with pytest.raises(ValueError):
        tone(fmt, (440.0,), seconds=0.2)


def test_overlay_mixes_across_blocks_without_lengthening_the_stream() -> None:
    fmt = AudioFormat()
    chime = start_chime(fmt)
    speech = (np.ones(8000, dtype="<i2") * 1000).tobytes()
    overlay = Overlay(chime)
    out = b"".join(overlay.apply(speech[i : i + 300]) for i in range(0, len(speech), 300))
    assert len(out) == len(speech)
    assert out == mix(speech, chime)
    assert overlay.pending == 0 and overlay.remainder() == b""


def test_mix_clips_instead_of_wrapping() -> None:
    loud = (np.ones(10, dtype="<i2") * 30000).tobytes()
    assert set(np.frombuffer(mix(loud, loud), dtype="<i2")) == {32767}
    assert len(mix(b"\0\0", loud, offset=2)) == 22

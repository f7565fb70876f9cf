"""How much of Whisper's 30 s window the encoder hears, and when a short-window decode is redone."""

from __future__ import annotations

import zlib

from voicemoded.engines.transcript import Segment
from voicemoded.engines.whisper import context_frames, degenerate


def segment(text: str) -> Segment:
    data = text.encode()
    ratio = len(data) / len(zlib.compress(data)) if data else 0.0  # faster-whisper's own measure
    return Segment(
        id=0, start=0.0, end=1.0, text=text, avg_logprob=-0.2, no_speech_prob=0.01,
        compression_ratio=ratio, temperature=0.0, tokens=(),
    )  # fmt: skip


def test_the_window_covers_the_speech_plus_a_margin_and_never_less_than_ten_seconds() -> None:
    assert context_frames(1.4) is None, "a word or two keeps the full window (a short one mishears them)"
    assert context_frames(1.5) == 1000
    assert context_frames(4.1) == 1000
    assert context_frames(12.3) == 1400
    assert context_frames(27.5) == 2900
    assert context_frames(29.0) is None, "a clip that (with the margin) fills the window gets all of it"


def test_a_looping_or_overlong_decode_is_degenerate() -> None:
    fine = segment(" Let's write the release notes for version 2 and then fix the failing login test.")
    assert not degenerate((fine,), 4.1)
    looping = segment(" No thanks..." * 30)
    assert degenerate((looping,), 0.7)
    # Not repetitive, yet far more text than 1 s of speech holds.
    assert degenerate((fine, segment(" The quick brown fox jumps over the lazy dog today.")), 1.0)
    assert not degenerate((), 1.0)

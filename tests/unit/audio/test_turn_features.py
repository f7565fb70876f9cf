"""The end-of-turn model's input: Whisper-style log-mel features, checked against faster-whisper's own."""

from __future__ import annotations

import numpy as np
import pytest

from voicemoded.audio.turn import WINDOW_S, last_window, log_mel

RATE = 16_000


def test_log_mel_matches_whisper_feature_extraction() -> None:
    from faster_whisper.feature_extractor import FeatureExtractor

    rng = np.random.default_rng(3)
    t = np.arange(WINDOW_S * RATE) / RATE
    audio = (0.2 * np.sin(2 * np.pi * 180 * t) * (t > 5.0) + rng.normal(0, 0.01, t.size)).astype(np.float32)
    ours = log_mel(audio)
    normalised = (audio - audio.mean()) / np.sqrt(audio.var() + 1e-7)
    reference = FeatureExtractor(feature_size=80, chunk_length=WINDOW_S)(normalised, padding=0)
    assert ours.shape == reference.shape == (80, 800)
    assert np.abs(ours - reference).max() < 2e-3


def test_the_window_is_the_last_eight_seconds_padded_in_front() -> None:
    short = (np.ones(RATE, dtype="<i2") * 1000).tobytes()
    window = last_window(short)
    assert window.shape == (WINDOW_S * RATE,)
    assert not window[:-RATE].any() and window[-RATE:] == pytest.approx(1000 / 32768)
    long = np.zeros(10 * RATE, dtype="<i2")
    long[2 * RATE - 1], long[2 * RATE] = 5000, 2000  # the first two seconds are dropped
    assert last_window(long.tobytes())[0] == pytest.approx(2000 / 32768)


def test_log_mel_refuses_the_wrong_length() -> None:
    with pytest.raises(ValueError, match="expected 128000 samples"):
        log_mel(np.zeros(RATE, dtype=np.float32))

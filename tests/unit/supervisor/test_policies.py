"""Backoff and flap policies on their own, with a seeded random source."""

from __future__ import annotations

import random

import pytest

from voicemoded.supervisor.backoff import Backoff
from voicemoded.supervisor.flapping import FlapDetector
from voicemoded.supervisor.spec import BackoffSettings, FlapSettings


def test_backoff_grows_exponentially_within_jitter_and_stops_at_the_cap() -> None:
    settings = BackoffSettings(initial=0.5, multiplier=2.0, maximum=8.0, jitter=0.2)
    backoff = Backoff(settings, random.Random(7))
    delays = [backoff.next_delay() for _ in range(10)]
    for attempt, delay in enumerate(delays):
        base = min(8.0, 0.5 * 2**attempt)
        assert base * 0.8 <= delay <= min(8.0, base * 1.2)
    assert all(d <= 8.0 for d in delays)
    assert delays[-1] >= 8.0 * 0.8  # capped, not collapsed


def test_jitter_spreads_delays_of_services_that_failed_together() -> None:
    settings = BackoffSettings(initial=1.0, jitter=0.3)
    firsts = {round(Backoff(settings, random.Random(seed)).next_delay(), 6) for seed in range(20)}
    assert len(firsts) == 20
    assert min(firsts) >= 0.7 and max(firsts) <= 1.3


def test_backoff_without_jitter_is_exact_and_a_long_run_resets_it() -> None:
    backoff = Backoff(BackoffSettings(initial=0.1, multiplier=3.0, maximum=10.0, jitter=0.0, reset_after=5.0))
    assert [backoff.next_delay() for _ in range(3)] == pytest.approx([0.1, 0.3, 0.9])
    backoff.observe_run(4.9)
    assert backoff.next_delay() == pytest.approx(2.7)
    backoff.observe_run(5.0)
    assert backoff.next_delay() == pytest.approx(0.1)


def test_flap_detector_trips_after_n_restarts_within_the_window_only() -> None:
    flap = FlapDetector(FlapSettings(max_restarts=3, window=10.0))
    assert [flap.record_restart(t) for t in (0.0, 1.0, 2.0)] == [False, False, False]
    assert flap.record_restart(3.0) is True
    assert "3 times within 10 s" in flap.reason()
    # Once the early restarts leave the window, restarting is allowed again.
    assert flap.record_restart(10.5) is False
    assert flap.recent(10.5) == 3
    flap.reset()
    assert flap.recent(10.5) == 0

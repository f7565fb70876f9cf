"""Circuit breaker transitions, driven by an explicit clock (the cool-down is time, not a state to await)."""

from __future__ import annotations

import pytest

from voicemoded.providers.breaker import Breaker, BreakerPolicy, BreakerState


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def make(threshold: int = 3, cooldown: float = 10.0, max_cooldown: float = 40.0) -> tuple[Breaker, Clock]:
    clock = Clock()
    policy = BreakerPolicy(failure_threshold=threshold, cooldown=cooldown, max_cooldown=max_cooldown)
    return Breaker(policy, clock), clock


def test_soft_failures_open_after_threshold_and_success_resets_count() -> None:
    breaker, _ = make(threshold=3)
    assert breaker.record_failure(hard=False) is None
    assert breaker.record_failure(hard=False) is None
    breaker.record_success()
    assert breaker.record_failure(hard=False) is None
    assert breaker.record_failure(hard=False) is None
    assert breaker.state is BreakerState.CLOSED
    assert breaker.record_failure(hard=False) == (BreakerState.CLOSED, BreakerState.OPEN)
    assert breaker.allow() == (False, None)


def test_hard_failure_opens_at_once() -> None:
    breaker, _ = make(threshold=3)
    assert breaker.record_failure(hard=True) == (BreakerState.CLOSED, BreakerState.OPEN)
    assert not breaker.ready()


def test_hard_failure_counts_as_soft_when_policy_says_so() -> None:
    clock = Clock()
    breaker = Breaker(BreakerPolicy(failure_threshold=2, open_on_timeout=False), clock)
    assert breaker.record_failure(hard=True) is None
    assert breaker.record_failure(hard=True) == (BreakerState.CLOSED, BreakerState.OPEN)


def test_half_open_admits_exactly_one_trial_then_closes_on_success() -> None:
    breaker, clock = make(cooldown=10.0)
    breaker.record_failure(hard=True)
    clock.now += 9.9
    assert breaker.allow() == (False, None)
    assert breaker.retry_in() == pytest.approx(0.1)
    clock.now += 0.1
    assert breaker.ready()
    assert breaker.allow() == (True, (BreakerState.OPEN, BreakerState.HALF_OPEN))
    assert breaker.allow() == (False, None), "a second request while the trial runs must be refused"
    assert breaker.record_success() == (BreakerState.HALF_OPEN, BreakerState.CLOSED)
    assert breaker.allow() == (True, None)


def test_a_forced_trial_skips_the_cool_down_but_stays_one_at_a_time() -> None:
    breaker, _ = make(cooldown=10.0)
    assert breaker.force_trial() == (True, None), "a closed breaker lets anything through"
    breaker.record_failure(hard=True)
    assert breaker.force_trial() == (True, (BreakerState.OPEN, BreakerState.HALF_OPEN))
    assert breaker.force_trial() == (False, None) and breaker.allow() == (False, None)
    breaker.record_failure(hard=True)
    assert breaker.state is BreakerState.OPEN and breaker.cooldown == 20.0
    assert breaker.force_trial()[0]
    assert breaker.record_success() == (BreakerState.HALF_OPEN, BreakerState.CLOSED)


def test_failed_trial_reopens_with_doubled_cooldown_up_to_cap() -> None:
    breaker, clock = make(cooldown=10.0, max_cooldown=25.0)
    breaker.record_failure(hard=True)
    for expected in (20.0, 25.0, 25.0):
        clock.now += breaker.cooldown
        assert breaker.allow()[0]
        assert breaker.record_failure(hard=False) == (BreakerState.HALF_OPEN, BreakerState.OPEN)
        assert breaker.cooldown == expected
        assert breaker.retry_in() == pytest.approx(expected)
    clock.now += 25.0
    assert breaker.allow()[0]
    breaker.record_success()
    assert breaker.cooldown == 10.0, "a success restores the base cool-down"


def test_released_trial_can_be_taken_again() -> None:
    breaker, clock = make(cooldown=1.0)
    breaker.record_failure(hard=True)
    clock.now += 1.0
    assert breaker.allow()[0]
    breaker.release()
    assert breaker.state is BreakerState.HALF_OPEN
    assert breaker.allow()[0]


def test_policy_validates() -> None:
    with pytest.raises(ValueError, match="failure_threshold"):
        BreakerPolicy(failure_threshold=0)
    with pytest.raises(ValueError, match="cooldown"):
        BreakerPolicy(cooldown=10, max_cooldown=5)

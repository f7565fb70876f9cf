"""A circuit breaker per endpoint, with its policy as a separate value.

Why a breaker and not just health flags: a hung endpoint costs a full timeout every time it is tried, so
after it has failed it must be skipped for free until there is reason to believe it is back. The breaker
opens after failures, and after a cool-down lets exactly one trial (a real request or an active probe)
through; the trial's outcome closes it or re-opens it with a longer cool-down.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum


class BreakerState(StrEnum):
    CLOSED = "closed"
    OPEN = "open"
    HALF_OPEN = "half_open"


@dataclass(frozen=True, slots=True)
class BreakerPolicy:
    """When an endpoint stops being tried and when it gets another chance."""

    failure_threshold: int = 3
    """Consecutive soft failures (HTTP 5xx, broken stream, bad content) that open the circuit."""
    open_on_timeout: bool = True
    """Open at once on a hard failure (refused, timed out): a second try would cost the same again."""
    cooldown: float = 15.0
    """Seconds an open circuit waits before it lets one trial request (or probe) through."""
    max_cooldown: float = 120.0
    """A failed trial doubles the cool-down up to this cap, so a dead endpoint is retried less and less."""

    def __post_init__(self) -> None:
        if self.failure_threshold < 1:
            raise ValueError(f"failure_threshold must be at least 1, got {self.failure_threshold}")
        if self.cooldown <= 0 or self.max_cooldown < self.cooldown:
            raise ValueError("cooldown must be positive and max_cooldown at least cooldown")


Transition = tuple[BreakerState, BreakerState]


class Breaker:
    """State machine: CLOSED -(failures)-> OPEN -(cool-down)-> HALF_OPEN -(trial ok)-> CLOSED.

    Methods return the transition they caused (or None) so the owner can log and publish it; the breaker
    itself knows nothing of events.
    """

    def __init__(self, policy: BreakerPolicy, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy = policy
        self._clock = clock
        self.state = BreakerState.CLOSED
        self.failures = 0
        self.opened_at = 0.0
        self.cooldown = policy.cooldown
        self._trial_taken = False

    def retry_in(self) -> float:
        """Seconds until an open circuit lets a trial through (0 when it would now)."""
        if self.state is not BreakerState.OPEN:
            return 0.0
        return max(0.0, self.opened_at + self.cooldown - self._clock())

    def ready(self) -> bool:
        """Would :meth:`allow` let a request through now? Does not take the trial slot."""
        if self.state is BreakerState.CLOSED:
            return True
        if self.state is BreakerState.HALF_OPEN:
            return not self._trial_taken
        return self.retry_in() == 0.0

    def allow(self) -> tuple[bool, Transition | None]:
        """Take permission for one request; an elapsed cool-down turns OPEN into HALF_OPEN (the trial)."""
        if self.state is BreakerState.CLOSED:
            return True, None
        change: Transition | None = None
        if self.state is BreakerState.OPEN:
            if self.retry_in() > 0.0:
                return False, None
            change = self._move(BreakerState.HALF_OPEN)
        if self._trial_taken:
            return False, change
        self._trial_taken = True
        return True, change

    def force_trial(self) -> tuple[bool, Transition | None]:
        """Take the trial slot before the cool-down has ended (the owner has nothing else left to try)."""
        if self.state is BreakerState.CLOSED:
            return True, None
        if self._trial_taken:
            return False, None
        change = self._move(BreakerState.HALF_OPEN)
        self._trial_taken = True
        return True, change

    def release(self) -> None:
        """Give back a trial slot when the request ended without a verdict (cancelled by the caller)."""
        self._trial_taken = False

    def record_success(self) -> Transition | None:
        self.failures = 0
        self._trial_taken = False
        if self.state is BreakerState.CLOSED:
            return None
        self.cooldown = self.policy.cooldown
        return self._move(BreakerState.CLOSED)

    def record_failure(self, *, hard: bool) -> Transition | None:
        self.failures += 1
        self._trial_taken = False
        if self.state is BreakerState.HALF_OPEN:
            self.cooldown = min(self.cooldown * 2, self.policy.max_cooldown)
            return self._open()
        if self.state is BreakerState.OPEN:
            self.opened_at = self._clock()
            return None
        if (hard and self.policy.open_on_timeout) or self.failures >= self.policy.failure_threshold:
            return self._open()
        return None

    def reset(self) -> Transition | None:
        """Forget the past (an explicit probe that succeeded, or the child was restarted)."""
        self.failures = 0
        self.cooldown = self.policy.cooldown
        self._trial_taken = False
        return self._move(BreakerState.CLOSED) if self.state is not BreakerState.CLOSED else None

    def _open(self) -> Transition | None:
        self.opened_at = self._clock()
        return self._move(BreakerState.OPEN)

    def _move(self, new: BreakerState) -> Transition | None:
        old, self.state = self.state, new
        return (old, new) if old is not new else None

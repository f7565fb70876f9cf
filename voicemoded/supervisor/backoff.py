"""Capped exponential backoff with jitter, as a policy object the process loop asks for delays.

Jitter keeps several children that died together (a shared GPU, the network) from restarting in step;
the cap keeps a long outage retried at a steady pace rather than effectively never.
"""

from __future__ import annotations

import random

from voicemoded.supervisor.spec import BackoffSettings


class Backoff:
    """Delay before the n-th consecutive restart; a healthy run resets the count."""

    def __init__(self, settings: BackoffSettings, rng: random.Random | None = None) -> None:
        self.settings = settings
        self._rng = rng or random.Random()
        self.attempt = 0

    def bounds(self, attempt: int) -> tuple[float, float]:
        """The interval the delay for ``attempt`` (0-based) is drawn from (tests assert against it)."""
        s = self.settings
        base = min(s.maximum, s.initial * s.multiplier**attempt)
        return base * (1 - s.jitter), min(s.maximum, base * (1 + s.jitter))

    def next_delay(self) -> float:
        low, high = self.bounds(self.attempt)
        self.attempt += 1
        return self._rng.uniform(low, high)

    def observe_run(self, seconds_running: float) -> None:
        """Forget past failures once a run proved the service can stay up."""
        if seconds_running >= self.settings.reset_after:
            self.attempt = 0

    def reset(self) -> None:
        self.attempt = 0

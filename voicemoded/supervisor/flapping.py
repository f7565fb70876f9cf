"""Flap detection as a policy object: too many restarts in a window means broken, not unlucky.

Kept apart from the process loop (as circus does with its flapping plugin) so the rule can change
without touching how processes are spawned and reaped.
"""

from __future__ import annotations

from collections import deque

from voicemoded.supervisor.spec import FlapSettings


class FlapDetector:
    """Counts automatic restarts in a sliding window of monotonic time."""

    def __init__(self, settings: FlapSettings) -> None:
        self.settings = settings
        self._restarts: deque[float] = deque()

    def record_restart(self, now: float) -> bool:
        """Note one more automatic restart; True when it should not happen (the service is flapping)."""
        self._forget_before(now - self.settings.window)
        if len(self._restarts) >= self.settings.max_restarts:
            return True
        self._restarts.append(now)
        return False

    def recent(self, now: float) -> int:
        self._forget_before(now - self.settings.window)
        return len(self._restarts)

    def reason(self) -> str:
        s = self.settings
        return f"restarted {s.max_restarts} times within {s.window:g} s: giving up"

    def reset(self) -> None:
        self._restarts.clear()

    def _forget_before(self, cutoff: float) -> None:
        while self._restarts and self._restarts[0] < cutoff:
            self._restarts.popleft()

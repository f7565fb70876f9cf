"""The daemon's event bus: subsystems publish, WatchEvents subscribers follow.

Publishing never blocks the publisher: each subscriber has a bounded queue and a slow subscriber loses its
oldest events (and is told how many) rather than stalling the supervisor or the audio path.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Literal

Level = Literal["debug", "info", "warning", "error"]


@dataclass(frozen=True, slots=True)
class Event:
    """One thing that happened in the daemon, named like a log event (``service.state``)."""

    kind: str
    subsystem: str
    message: str = ""
    level: Level = "info"
    fields: Mapping[str, str] = field(default_factory=dict)
    time: float = field(default_factory=time.time)
    seq: int = 0


class _Subscription:
    def __init__(self, maxsize: int, subsystems: frozenset[str]) -> None:
        self.queue: deque[Event] = deque(maxlen=maxsize)
        self.wakeup = asyncio.Event()
        self.subsystems = subsystems
        self.dropped = 0

    def offer(self, event: Event) -> None:
        if self.subsystems and event.subsystem not in self.subsystems:
            return
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(event)
        self.wakeup.set()


class EventBus:
    """Fan-out of :class:`Event` to any number of async subscribers, plus a short history."""

    def __init__(self, *, history: int = 200, subscriber_queue: int = 1000) -> None:
        self._seq = itertools.count(1)
        self._history: deque[Event] = deque(maxlen=history)
        self._subs: set[_Subscription] = set()
        self._subscriber_queue = subscriber_queue

    def publish(
        self,
        kind: str,
        subsystem: str,
        message: str = "",
        /,
        *,
        level: str = "info",
        **fields: object,
    ) -> Event:
        """Record and fan out an event; field values are stringified (they cross the API as a string map)."""
        event = Event(
            kind=kind,
            subsystem=subsystem,
            message=message,
            level=level if level in ("debug", "info", "warning", "error") else "info",  # type: ignore[arg-type]
            fields={k: "" if v is None else str(v) for k, v in fields.items()},
            seq=next(self._seq),
        )
        self._history.append(event)
        for sub in list(self._subs):
            sub.offer(event)
        return event

    def recent(self, limit: int | None = None) -> list[Event]:
        events = list(self._history)
        return events if limit is None else events[-limit:]

    async def subscribe(
        self, *, replay: int = 0, subsystems: frozenset[str] = frozenset()
    ) -> AsyncGenerator[Event, None]:
        """Yield events as they are published (after replaying up to ``replay`` recent ones).

        A subscriber that falls behind gets an ``events.dropped`` event saying how many it missed.
        """
        sub = _Subscription(self._subscriber_queue, subsystems)
        for event in self.recent(replay) if replay else []:
            sub.offer(event)
        self._subs.add(sub)
        try:
            while True:
                while not sub.queue:
                    sub.wakeup.clear()
                    await sub.wakeup.wait()
                if sub.dropped:
                    dropped, sub.dropped = sub.dropped, 0
                    yield Event(
                        kind="events.dropped",
                        subsystem="daemon",
                        message=f"{dropped} events dropped: this watcher fell behind",
                        level="warning",
                        fields={"dropped": str(dropped)},
                    )
                yield sub.queue.popleft()
        finally:
            self._subs.discard(sub)

"""One voice at a time: fair, bounded access to the microphone and the speaker.

``asyncio.Lock`` is not documented as FIFO and offers no "don't wait" mode with a useful error, so the
owner keeps an explicit queue of waiters. Callers are served in arrival order; a waiter that gives up
(timeout, cancellation, client gone) leaves the queue without disturbing the others; a caller that asks
not to wait gets :class:`Busy` naming who holds the device.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import structlog

from voicemoded.api.errors import Busy, Timeout
from voicemoded.events import EventBus

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Holder:
    who: str
    since: float


class AudioOwner:
    """FIFO lock over the audio devices with a wait bound."""

    def __init__(self, *, default_wait: float = 60.0, events: EventBus | None = None) -> None:
        self.default_wait = default_wait
        self._events = events
        self._holder: Holder | None = None
        self._waiters: deque[tuple[str, asyncio.Future[None]]] = deque()

    @property
    def holder(self) -> Holder | None:
        return self._holder

    @property
    def queue_length(self) -> int:
        return len(self._waiters)

    @asynccontextmanager
    async def hold(
        self, who: str, *, wait: bool = True, timeout: float | None = None
    ) -> AsyncIterator[Holder]:
        """Own the devices for the duration of the block.

        ``wait=False`` raises :class:`Busy` at once if someone else has them; otherwise wait up to
        ``timeout`` (default ``default_wait``) and raise :class:`Timeout` naming the holder.
        """
        holder = await self.acquire(who, wait=wait, timeout=timeout)
        try:
            yield holder
        finally:
            self.release(holder)

    async def acquire(self, who: str, *, wait: bool = True, timeout: float | None = None) -> Holder:
        if self._holder is None and not self._waiters:
            return self._grant(who)
        current = self._holder.who if self._holder else "a queued caller"
        if not wait:
            raise Busy(
                f"audio is in use by {current}",
                hint="try again when it finishes, or call with waiting allowed",
                fields={"holder": current},
            )
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (who, fut)
        self._waiters.append(entry)
        log.info("audio.owner_waiting", who=who, holder=current, position=len(self._waiters))
        bound = self.default_wait if timeout is None else timeout
        try:
            async with asyncio.timeout(bound):
                await asyncio.shield(fut)
        except (TimeoutError, asyncio.CancelledError) as exc:
            if fut.done() and not fut.cancelled():
                # Granted at the same moment we gave up: pass the turn on instead of leaking it.
                self.release(self._holder)  # type: ignore[arg-type]
            else:
                fut.cancel()
                self._waiters.remove(entry)
            if isinstance(exc, TimeoutError):
                raise Timeout(
                    f"audio stayed in use by {current} for {bound:.0f} s",
                    hint="try again later, or raise the wait bound",
                    fields={"holder": current},
                ) from None
            raise
        assert self._holder is not None and self._holder.who == who
        return self._holder

    def release(self, holder: Holder) -> None:
        if self._holder is not holder:
            return
        self._holder = None
        while self._waiters:
            who, fut = self._waiters.popleft()
            if not fut.done():
                self._grant(who)
                fut.set_result(None)
                return

    def _grant(self, who: str) -> Holder:
        self._holder = Holder(who, time.monotonic())
        log.debug("audio.owner_granted", who=who)
        if self._events is not None:
            self._events.publish("audio.owner", "audio", f"audio held by {who}", holder=who)
        return self._holder

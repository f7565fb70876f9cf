"""The daemon's gRPC streams as server-sent events.

The typed client is synchronous, so one thread per stream reads it and hands each item to the event
loop through a small bounded queue (a slow page slows the stream down; the daemon drops the oldest
events of a watcher that falls behind, not this door). When the page hangs up, the gRPC call is
cancelled: the daemon stops the turn or the log tail at once and the thread ends with it.
"""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterable
from typing import Any, TypeVar

from voicemode_web import errors
from voicemoded.api.client import ClientError, Stream

T = TypeVar("T")

PING_SECONDS = 15.0
QUEUE_ITEMS = 64
HEADERS = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}


def frame(event: str, data: Any) -> bytes:
    """One SSE message: ``event: X`` and its data as one line of JSON."""
    return f"event: {event}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()


PING = b": ping\n\n"


class _End:
    def __init__(self, error: BaseException | None = None) -> None:
        self.error = error


async def relay(
    stream: Stream[T], frames: Callable[[T], Iterable[bytes]], ping: float = PING_SECONDS
) -> AsyncIterator[bytes]:
    """``stream`` as SSE bytes: ``frames`` turns each item into messages, a comment is sent every
    ``ping`` seconds of quiet, and a failure mid-stream is an ``error`` event in words."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[T | _End] = asyncio.Queue(QUEUE_ITEMS)
    closed = threading.Event()

    def put(item: T | _End) -> None:
        if closed.is_set():
            return
        try:
            asyncio.run_coroutine_threadsafe(queue.put(item), loop).result()
        except (RuntimeError, asyncio.CancelledError):
            closed.set()  # the loop is gone: nobody is reading

    def pump() -> None:
        try:
            for item in stream:
                put(item)
                if closed.is_set():
                    return
        except BaseException as exc:
            put(_End(exc))
            return
        put(_End())

    threading.Thread(target=pump, name="sse-relay", daemon=True).start()
    waiting: asyncio.Future[T | _End] | None = None
    try:
        while True:
            waiting = waiting or asyncio.ensure_future(queue.get())
            done, _ = await asyncio.wait({waiting}, timeout=ping)
            if not done:
                yield PING  # the same get goes on waiting: nothing is lost to the timeout
                continue
            item, waiting = waiting.result(), None
            if isinstance(item, _End):
                if item.error is not None:
                    yield frame("error", failure(item.error).body()["error"])
                return
            for message in frames(item):
                yield message
    finally:
        closed.set()
        stream.cancel()
        if waiting is not None:
            waiting.cancel()
        while not queue.empty():  # a pump waiting to put is let go
            queue.get_nowait()


def failure(exc: BaseException) -> errors.WebError:
    return errors.from_client(exc) if isinstance(exc, ClientError) else errors.unexpected(exc)

"""SSE relay of a blocking gRPC stream: items in order, pings in quiet, errors in words, hang-up cancels."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from voicemode_web import streams
from voicemoded.api.client import ClientError, DaemonNotRunning, Stream


class Blocking:
    """A server stream as the client gives it: ``next`` blocks until an item comes or the call is cancelled."""

    def __init__(self, items: list[Any], then: BaseException | None = None, hang: bool = False) -> None:
        self.items, self.then, self.hang = list(items), then, hang
        self.cancelled = threading.Event()

    def __iter__(self) -> Iterator[Any]:
        return self

    def __next__(self) -> Any:
        if self.items:
            return self.items.pop(0)
        if self.then is not None:
            raise self.then
        if self.hang:
            self.cancelled.wait(10)
        raise StopIteration

    def cancel(self) -> None:
        self.cancelled.set()


def frames(item: Any) -> Iterator[bytes]:
    yield streams.frame("x", {"n": item})


async def collect(stream: Blocking, ping: float = 15.0, limit: int = 100) -> list[bytes]:
    out = []
    relay = streams.relay(cast(Stream[Any], stream), frames, ping=ping)
    async for chunk in relay:
        out.append(chunk)
        if len(out) >= limit:
            await relay.aclose()
            break
    return out


def test_items_arrive_in_order_as_one_line_json_messages() -> None:
    out = asyncio.run(collect(Blocking([1, "two", {"three": 3}])))
    assert out == [
        b'event: x\ndata: {"n":1}\n\n',
        b'event: x\ndata: {"n":"two"}\n\n',
        b'event: x\ndata: {"n":{"three":3}}\n\n',
    ]


def test_a_failure_mid_stream_is_an_error_event_in_words() -> None:
    out = asyncio.run(
        collect(Blocking([1], then=ClientError("NOT_FOUND", "no service named 'x'", "list them")))
    )
    name, data = out[-1].decode().strip().split("\n")
    assert name == "event: error"
    assert json.loads(data.removeprefix("data: ")) == {
        "code": "not_found",
        "message": "no service named 'x'",
        "hint": "list them",
    }
    gone = asyncio.run(collect(Blocking([], then=DaemonNotRunning(Path("/x")))))
    assert b'"code":"daemon_not_running"' in gone[0]


def test_quiet_is_filled_with_pings_and_hanging_up_cancels_the_call() -> None:
    stream = Blocking([], hang=True)
    out = asyncio.run(collect(stream, ping=0.05, limit=2))
    assert out == [streams.PING, streams.PING]
    assert stream.cancelled.is_set(), "the page hung up: the daemon's call is cancelled"

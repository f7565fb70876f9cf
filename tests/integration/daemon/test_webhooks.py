"""Webhooks against real loopback HTTP receivers: signed, retried, bounded, never in the publisher's way."""

from __future__ import annotations

import asyncio
import json
import socket
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from voicemoded.events import EventBus
from voicemoded.webhooks import Webhooks, WebhookSettings, verify

SECRET = "a-webhook-secret-for-tests"


class Receiver:
    """A real HTTP server on 127.0.0.1 that records each POST and answers with the next scripted code."""

    def __init__(self, codes: list[int] | None = None) -> None:
        self.codes = list(codes or [])
        self.requests: list[tuple[dict[str, str], bytes]] = []
        self._cond = threading.Condition()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                data = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with outer._cond:
                    outer.requests.append((dict(self.headers.items()), data))
                    code = outer.codes.pop(0) if outer.codes else 200
                    outer._cond.notify_all()
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/hook"
        threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True).start()

    def wait(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self.requests) >= count, timeout):
                raise AssertionError(f"{len(self.requests)} of {count} requests within {timeout} s")
            return list(self.requests)

    async def wait_for(self, count: int, timeout: float = 10.0) -> list[tuple[dict[str, str], bytes]]:
        """The requests so far, once there are ``count`` (waiting in a thread: the loop keeps sending)."""
        return await asyncio.to_thread(self.wait, count, timeout)

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def silent_url() -> Iterator[str]:
    """A port that accepts connections and never answers: every attempt runs into its timeout."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(2048)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/hook"
    sock.close()


def quick(url: str, **extra: object) -> WebhookSettings:
    options: dict[str, object] = {"urls": (url,), "timeout": 2.0, "retry_initial": 0.05, "retry_maximum": 0.2}
    return WebhookSettings(**{**options, **extra})  # type: ignore[arg-type]


async def until(check: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        await asyncio.sleep(0.01)


@pytest.fixture
async def running() -> AsyncIterator[Callable[[WebhookSettings], Webhooks]]:
    bus = EventBus()
    tasks: list[asyncio.Task[None]] = []
    made: list[Webhooks] = []

    def start(settings: WebhookSettings) -> Webhooks:
        hooks = Webhooks(settings, bus)
        tasks.append(asyncio.create_task(hooks.run()))
        made.append(hooks)
        return hooks

    start.bus = bus  # type: ignore[attr-defined]
    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


def bus_of(start: Callable[[WebhookSettings], Webhooks]) -> EventBus:
    return start.bus  # type: ignore[attr-defined,no-any-return]


async def test_selected_events_arrive_signed_and_others_do_not(
    running: Callable[[WebhookSettings], Webhooks], receiver: Receiver
) -> None:
    hooks = running(quick(receiver.url, secret=SECRET, events=("service.state", "provider.*")))
    await hooks.subscribed.wait()
    bus = bus_of(running)
    bus.publish("conversation.turn", "conversation", "not selected")
    bus.publish("service.state", "supervisor", "piper: starting -> running", name="piper", state="running")
    bus.publish("provider.health", "providers", "TTS piper is healthy", level="info", name="piper")

    requests = await receiver.wait_for(2)
    kinds = []
    for headers, data in requests:
        assert verify(SECRET, headers, data), headers
        document = json.loads(data)
        kinds.append(document["kind"])
        assert headers["X-Voicemode-Delivery"] == document["id"]
        assert headers["X-Voicemode-Event"] == document["kind"]
        assert headers["Content-Type"] == "application/json"
        assert headers["User-Agent"].startswith("voicemoded/")
    assert kinds == ["service.state", "provider.health"]
    assert json.loads(requests[0][1])["fields"] == {"name": "piper", "state": "running"}

    await until(lambda: hooks.status()[0].delivered == 2)
    [status] = hooks.status()
    assert status.signed and status.last_status_code == 200 and status.failed == 0
    assert status.last_delivered_at > 0 and status.queue_length == 0
    assert status.events == ("service.state", "provider.*")
    assert hooks.health().state == "ok"


async def test_without_a_secret_nothing_is_signed(
    running: Callable[[WebhookSettings], Webhooks], receiver: Receiver
) -> None:
    hooks = running(quick(receiver.url))
    await hooks.subscribed.wait()
    bus_of(running).publish("service.state", "supervisor", "x")
    [(headers, _data)] = await receiver.wait_for(1)
    assert "X-Voicemode-Signature" not in headers and "X-Voicemode-Timestamp" not in headers
    assert not hooks.status()[0].signed


async def test_a_receiver_that_fails_twice_gets_the_event_on_the_third_attempt(
    running: Callable[[WebhookSettings], Webhooks], receiver: Receiver
) -> None:
    receiver.codes = [500, 503]
    hooks = running(quick(receiver.url, secret=SECRET, attempts=5))
    await hooks.subscribed.wait()
    bus_of(running).publish("conversation.turn", "conversation", "speak turn 1: done", turn_id="1")

    requests = await receiver.wait_for(3)
    ids = {headers["X-Voicemode-Delivery"] for headers, _ in requests}
    assert len(ids) == 1, "every attempt of one event carries the same delivery id"
    assert all(verify(SECRET, headers, data) for headers, data in requests)
    await until(lambda: hooks.status()[0].delivered == 1)
    [status] = hooks.status()
    assert (status.retries, status.failed, status.last_status_code) == (2, 0, 200)
    assert len(receiver.requests) == 3


async def test_a_refusal_is_final_is_shown_and_recovery_is_announced(
    running: Callable[[WebhookSettings], Webhooks], receiver: Receiver
) -> None:
    receiver.codes = [404]
    hooks = running(quick(receiver.url, attempts=5))
    await hooks.subscribed.wait()
    bus = bus_of(running)
    bus.publish("service.state", "supervisor", "one")
    await until(lambda: hooks.status()[0].failed == 1)
    [status] = hooks.status()
    assert (status.retries, status.last_status_code, status.last_error) == (0, 404, "HTTP 404")
    assert hooks.health().state == "degraded" and "HTTP 404" in hooks.health().detail
    assert [e.kind for e in bus.recent() if e.subsystem == "webhooks"] == ["webhook.failing"]

    bus.publish("service.state", "supervisor", "two")
    await until(lambda: hooks.status()[0].delivered == 1)
    assert [e.kind for e in bus.recent() if e.subsystem == "webhooks"] == [
        "webhook.failing",
        "webhook.recovered",
    ]
    assert hooks.health().state == "ok"
    assert len(await receiver.wait_for(2)) == 2, "the webhook's own events are not delivered"


async def test_a_dead_receiver_neither_blocks_publishing_nor_grows_memory(
    running: Callable[[WebhookSettings], Webhooks], silent_url: str
) -> None:
    bus = bus_of(running)

    def publish_1000() -> float:
        started = time.perf_counter()
        for i in range(1000):
            bus.publish("service.state", "supervisor", f"event {i}", name="x", state="running")
        return time.perf_counter() - started

    # The same bus with one idle follower, before any webhook: what publishing costs anyway.
    follower = bus.subscribe()
    idle = asyncio.ensure_future(anext(follower))
    await asyncio.sleep(0)
    baseline = min(publish_1000() for _ in range(3))
    idle.cancel()
    await asyncio.wait([idle])
    await follower.aclose()

    hooks = running(quick(silent_url, timeout=0.2, attempts=2, queue_size=50))
    await hooks.subscribed.wait()
    with_webhook = min(publish_1000() for _ in range(3))
    assert with_webhook < 3 * baseline + 0.005, (baseline, with_webhook)

    # The loop stays free while every delivery times out: a timer fires on time.
    loop = asyncio.get_running_loop()
    asked = loop.time()
    await asyncio.sleep(0.05)
    assert loop.time() - asked < 0.5

    await until(lambda: hooks.status()[0].failed >= 1, timeout=15)
    [status] = hooks.status()
    assert status.queue_length <= 50
    assert status.dropped >= 3000 - 50 - status.failed - 2
    assert status.delivered == 0 and status.retries >= 1
    assert "Timeout" in status.last_error and status.last_status_code == 0
    assert hooks.health().state == "degraded"


@pytest.fixture
def dripping_url() -> Iterator[str]:
    """A server that answers one byte every 50 ms: each read is quick, the whole answer is not."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    stop = threading.Event()

    def drip(conn: socket.socket) -> None:
        with conn:
            for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n":
                if stop.wait(0.05):
                    return
                try:
                    conn.sendall(bytes([byte]))
                except OSError:
                    return

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = server.accept()
            except OSError:
                return
            threading.Thread(target=drip, args=(conn,), daemon=True).start()

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{server.getsockname()[1]}/hook"
    stop.set()
    server.close()


async def test_an_attempt_has_one_deadline_however_slowly_the_answer_drips(
    running: Callable[[WebhookSettings], Webhooks], dripping_url: str
) -> None:
    hooks = running(quick(dripping_url, timeout=0.3, attempts=1))
    await hooks.subscribed.wait()
    started = time.monotonic()
    bus_of(running).publish("service.state", "supervisor", "x")
    await until(lambda: hooks.status()[0].failed == 1)
    assert time.monotonic() - started < 1.5, "the answer takes 2 s to drip; the deadline is 0.3 s"
    assert hooks.status()[0].last_error == "Timeout: no answer within 0.3 s"


async def test_reconfigure_keeps_a_kept_urls_counts_and_adds_a_new_one(
    running: Callable[[WebhookSettings], Webhooks], receiver: Receiver
) -> None:
    other = Receiver()
    try:
        hooks = running(quick(receiver.url))
        await hooks.subscribed.wait()
        bus = bus_of(running)
        bus.publish("service.state", "supervisor", "first")
        await until(lambda: hooks.status()[0].delivered == 1)

        hooks.reconfigure(quick(receiver.url, urls=(receiver.url, other.url)))
        bus.publish("service.state", "supervisor", "second")
        await other.wait_for(1)
        await until(lambda: [s.delivered for s in hooks.status()] == [2, 1])

        hooks.reconfigure(quick(other.url, urls=(other.url,)))
        assert [s.url for s in hooks.status()] == [other.url]
        bus.publish("service.state", "supervisor", "third")
        await other.wait_for(2)
        assert len(receiver.requests) == 2
    finally:
        other.close()


async def test_stopping_at_once_ends_cleanly(receiver: Receiver) -> None:
    hooks = Webhooks(quick(receiver.url), EventBus())
    for steps in range(3):  # cancelled before, while and after it subscribes
        task = asyncio.create_task(hooks.run())
        for _ in range(steps):
            await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert not hooks.subscribed.is_set()

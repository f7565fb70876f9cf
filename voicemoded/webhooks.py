"""Webhooks: selected daemon events POSTed as JSON to the URLs the person configured.

Each event is one ``POST`` with ``Content-Type: application/json`` and this body::

    {"id": "<delivery id>", "kind": "conversation.turn", "subsystem": "conversation", "level": "info",
     "time": "2025-06-01T12:00:00.123Z", "message": "speak turn 7: done", "fields": {"turn_id": "7"}}

Signature: with ``VOICEMODE_WEBHOOK_SECRET`` set, every attempt carries ``X-Voicemode-Timestamp`` (the
attempt's Unix time, whole seconds) and ``X-Voicemode-Signature: sha256=<hex>``, the HMAC-SHA256 under
the secret of the timestamp, a ``.`` and the exact body bytes. A receiver computes the same over what it
received, compares in constant time (:func:`verify` does it), and refuses a timestamp more than five
minutes from its own clock, so a recorded delivery cannot be replayed later. ``X-Voicemode-Delivery``
repeats the body's ``id`` and is the same on every attempt of one event: a receiver drops the duplicate
when an answer it sent was lost and the event came again. Without a secret nothing is signed.

Delivery: each URL has its own bounded queue (a full one drops its oldest event and counts it) and one
task that sends in order. An attempt that gets no answer, a timeout, 408, 429 or a 5xx is retried with
capped exponential backoff and jitter, up to a bounded number of attempts; any other answer is final.
The publisher never waits: the event bus hands events over without blocking and only these tasks do
network I/O, so a slow or dead receiver costs neither the audio path nor anyone else on the bus.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import json
import re
import time
import uuid
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qsl, urlsplit, urlunsplit

import structlog

from voicemoded import __version__
from voicemoded.api.errors import clip
from voicemoded.events import Event, EventBus
from voicemoded.health import Health

if TYPE_CHECKING:
    import httpx

    from voicemoded.api.v1 import daemon_pb2

log = structlog.get_logger(__name__)

SUBSYSTEM = "webhooks"
DEFAULT_EVENTS = ("conversation.turn", "service.state", "provider.health")
SIGNATURE_HEADER = "X-Voicemode-Signature"
TIMESTAMP_HEADER = "X-Voicemode-Timestamp"
DELIVERY_HEADER = "X-Voicemode-Delivery"
EVENT_HEADER = "X-Voicemode-Event"
TOLERANCE = 300.0
"""Seconds a signed timestamp may differ from the receiver's clock."""
_RETRIED = {408, 429}
_PATTERN = re.compile(r"^(\*|[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*(\.\*)?)$")


def describe(exc: BaseException) -> str:
    """An error as ``status`` shows it: its type (some network errors have no message) and message."""
    text = str(exc).strip()
    return clip(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, 300)


def parse_events(text: str) -> tuple[str, ...]:
    """Event kinds (``service.state``), a subsystem's (``service.*``) or all (``*``); empty: none."""
    patterns = tuple(dict.fromkeys(p.strip().lower() for p in text.split(",") if p.strip()))
    for pattern in patterns:
        if not _PATTERN.match(pattern):
            raise ValueError(f"{clip(pattern, 40)!r} is not an event kind like service.state, service.* or *")
    return patterns


parse_events.__name__ = "event list"


def selected(patterns: tuple[str, ...], event: Event) -> bool:
    # Our own events never go out: a failing receiver would otherwise be sent news of its failures.
    if event.subsystem == SUBSYSTEM:
        return False
    return any(
        p == "*" or p == event.kind or (p.endswith(".*") and event.kind.startswith(p[:-1])) for p in patterns
    )


def mask_url(url: str) -> str:
    """The URL with its user info and query values hidden: fit for status and logs."""
    parts = urlsplit(url)
    userinfo, _, hostport = parts.netloc.rpartition("@")
    netloc = f"****@{hostport}" if userinfo else hostport
    query = "&".join(f"{k}=****" for k, _ in parse_qsl(parts.query, keep_blank_values=True))
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The ``X-Voicemode-Signature`` value for one attempt."""
    mac = hmac.new(secret.encode(), str(timestamp).encode() + b"." + body, hashlib.sha256)
    return f"sha256={mac.hexdigest()}"


def verify(
    secret: str,
    headers: Mapping[str, str],
    body: bytes,
    *,
    now: float | None = None,
    tolerance: float = TOLERANCE,
) -> bool:
    """What a receiver checks: the signature over timestamp and body, and a timestamp close to now."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        timestamp = int(lowered.get(TIMESTAMP_HEADER.lower(), ""))
    except ValueError:
        return False
    if abs((time.time() if now is None else now) - timestamp) > tolerance:
        return False
    return hmac.compare_digest(lowered.get(SIGNATURE_HEADER.lower(), ""), sign(secret, timestamp, body))


def body(event: Event, delivery_id: str) -> bytes:
    when = datetime.fromtimestamp(event.time, UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    document = {
        "id": delivery_id,
        "kind": event.kind,
        "subsystem": event.subsystem,
        "level": event.level,
        "time": when,
        "message": event.message,
        "fields": dict(event.fields),
    }
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class WebhookSettings:
    urls: tuple[str, ...] = ()
    secret: str = field(default="", repr=False)
    events: tuple[str, ...] = DEFAULT_EVENTS
    timeout: float = 5.0
    """Seconds one attempt may take, from connecting to the answer's status line."""
    attempts: int = 5
    """Tries per event, the first included."""
    retry_initial: float = 0.5
    """Seconds before the first retry; each next one waits twice as long (with jitter)."""
    retry_maximum: float = 30.0
    queue_size: int = 1000
    """Events held per URL while it is slow or down; beyond it the oldest is dropped and counted."""


@dataclass(frozen=True, slots=True)
class WebhookStatus:
    url: str
    """Masked (:func:`mask_url`)."""
    events: tuple[str, ...]
    delivered: int
    failed: int
    dropped: int
    retries: int
    last_error: str
    last_status_code: int
    queue_length: int
    last_delivered_at: float
    """Unix time; 0 when nothing was delivered yet."""
    signed: bool

    def to_proto(self) -> daemon_pb2.WebhookInfo:
        from voicemoded.api.v1 import daemon_pb2

        info = daemon_pb2.WebhookInfo(
            url=self.url,
            events=self.events,
            delivered=self.delivered,
            failed=self.failed,
            dropped=self.dropped,
            retries=self.retries,
            last_error=self.last_error,
            last_status_code=self.last_status_code,
            queue_length=self.queue_length,
            signed=self.signed,
        )
        if self.last_delivered_at:
            info.last_delivered_at.FromNanoseconds(int(self.last_delivered_at * 1e9))
        return info

    def as_dict(self) -> dict[str, Any]:
        """The MCP ``statistics`` form."""
        return {**dataclasses.asdict(self), "events": list(self.events)}


Outcome = Literal["delivered", "retry", "final"]


@dataclass(slots=True)
class _Delivery:
    id: str
    kind: str
    body: bytes


class _Target:
    """One URL: its queue and what happened to its deliveries."""

    def __init__(self, url: str, queue_size: int) -> None:
        self.url = url
        self.shown = mask_url(url)
        self.queue: deque[_Delivery] = deque(maxlen=queue_size)
        self.wakeup = asyncio.Event()
        self.delivered = self.failed = self.dropped = self.retries = 0
        self.last_error = ""
        self.last_status = 0
        self.last_delivered_at = 0.0
        self.failing = False

    def offer(self, delivery: _Delivery) -> None:
        if len(self.queue) == self.queue.maxlen:
            self.dropped += 1
        self.queue.append(delivery)
        self.wakeup.set()

    def resize(self, queue_size: int) -> None:
        if self.queue.maxlen != queue_size:
            kept = list(self.queue)[-queue_size:]
            self.dropped += len(self.queue) - len(kept)
            self.queue = deque(kept, maxlen=queue_size)


class Webhooks:
    """Follows the event bus and delivers the selected events to every configured URL."""

    def __init__(self, settings: WebhookSettings, events: EventBus) -> None:
        self._events = events
        self._settings = settings
        self._targets: dict[str, _Target] = {}
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._client: httpx.AsyncClient | None = None
        """Made on the first attempt: a daemon without webhooks never builds its TLS context."""
        self._running = False
        self.subscribed = asyncio.Event()
        """Set once ``run`` follows the bus: events published from then on are delivered."""
        self.reconfigure(settings)

    def reconfigure(self, settings: WebhookSettings) -> None:
        """Apply new settings (a config reload): a URL kept keeps its queue and counts."""
        self._settings = settings
        for url in [u for u in self._targets if u not in settings.urls]:
            del self._targets[url]
            task = self._tasks.pop(url, None)
            if task is not None:
                task.cancel()
        for url in settings.urls:
            target = self._targets.setdefault(url, _Target(url, settings.queue_size))
            target.resize(settings.queue_size)
        self._start_senders()

    def status(self) -> list[WebhookStatus]:
        s = self._settings
        return [
            WebhookStatus(
                url=t.shown,
                events=s.events,
                delivered=t.delivered,
                failed=t.failed,
                dropped=t.dropped,
                retries=t.retries,
                last_error=t.last_error,
                last_status_code=t.last_status,
                queue_length=len(t.queue),
                last_delivered_at=t.last_delivered_at,
                signed=bool(s.secret),
            )
            for t in self._targets.values()
        ]

    def health(self) -> Health:
        targets = list(self._targets.values())
        if not targets:
            return Health(SUBSYSTEM, "disabled", "no VOICEMODE_WEBHOOK_URLS")
        failing = [t for t in targets if t.failing]
        if failing:
            detail = "; ".join(f"{t.shown}: {t.last_error}" for t in failing)
            return Health(SUBSYSTEM, "degraded", f"failing: {detail}")
        delivered = sum(t.delivered for t in targets)
        return Health(SUBSYSTEM, "ok", f"{len(targets)} URL(s), {delivered} events delivered")

    def offer(self, event: Event) -> None:
        """Queue one event for every URL when it is selected; never waits."""
        if event.kind == "events.dropped" and event.subsystem == "daemon":
            # The bus dropped events for us before we saw them: they are lost for every URL.
            missed = int(event.fields.get("dropped", "0") or 0)
            for target in self._targets.values():
                target.dropped += missed
            return
        if not self._targets or not selected(self._settings.events, event):
            return
        delivery_id = uuid.uuid4().hex
        delivery = _Delivery(delivery_id, event.kind, body(event, delivery_id))
        for target in self._targets.values():
            target.offer(delivery)

    async def run(self) -> None:
        """Follow the bus until cancelled; the senders and the HTTP client end with it."""
        self._running = True
        self._start_senders()
        stream = self._events.subscribe()
        # The generator's first step registers the subscription: run it now, so ``subscribed`` is true.
        first = asyncio.ensure_future(anext(stream))
        try:
            await asyncio.sleep(0)
            self.subscribed.set()
            self.offer(await first)
            async for event in stream:
                self.offer(event)
        finally:
            self._running = False
            self.subscribed.clear()
            first.cancel()
            tasks = [first, *self._tasks.values()]
            self._tasks.clear()
            for task in tasks:
                task.cancel()
            await asyncio.wait(tasks)
            await stream.aclose()
            client, self._client = self._client, None
            if client is not None:
                await client.aclose()
            pending = sum(len(t.queue) for t in self._targets.values())
            if pending:
                log.info("webhook.unsent", events=pending)

    def _start_senders(self) -> None:
        if not self._running:
            return
        for url, target in self._targets.items():
            if url not in self._tasks or self._tasks[url].done():
                self._tasks[url] = asyncio.get_running_loop().create_task(
                    self._send_loop(target), name=f"webhook {target.shown}"
                )

    async def _send_loop(self, target: _Target) -> None:
        while True:
            while not target.queue:
                target.wakeup.clear()
                await target.wakeup.wait()
            await self._deliver(target, target.queue.popleft())

    async def _deliver(self, target: _Target, delivery: _Delivery) -> None:
        from voicemoded.supervisor.backoff import Backoff
        from voicemoded.supervisor.spec import BackoffSettings

        s = self._settings
        backoff = Backoff(
            BackoffSettings(initial=s.retry_initial, maximum=max(s.retry_initial, s.retry_maximum))
        )
        attempts = max(1, s.attempts)
        for attempt in range(1, attempts + 1):
            if attempt > 1:
                target.retries += 1
            outcome, retry_after = await self._attempt(target, delivery)
            if outcome == "delivered":
                target.delivered += 1
                target.last_delivered_at = time.time()
                if target.failing:
                    target.failing = False
                    self._announce(target, "webhook.recovered", f"{target.shown} receives events again")
                return
            if outcome == "final" or attempt == attempts:
                break
            delay = backoff.next_delay()
            if retry_after is not None:
                delay = max(delay, min(retry_after, backoff.settings.maximum))
            await asyncio.sleep(delay)
        target.failed += 1
        log.warning("webhook.failed", url=target.shown, kind=delivery.kind, error=target.last_error)
        if not target.failing:
            target.failing = True
            self._announce(target, "webhook.failing", f"{target.shown}: {target.last_error}", level="warning")

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            import httpx

            self._client = httpx.AsyncClient(
                follow_redirects=False, headers={"User-Agent": f"voicemoded/{__version__}"}
            )
        return self._client

    async def _attempt(self, target: _Target, delivery: _Delivery) -> tuple[Outcome, float | None]:
        import httpx

        client = self._http()
        headers = {
            "Content-Type": "application/json",
            DELIVERY_HEADER: delivery.id,
            EVENT_HEADER: delivery.kind,
        }
        secret = self._settings.secret
        if secret:
            now = int(time.time())
            headers[TIMESTAMP_HEADER] = str(now)
            headers[SIGNATURE_HEADER] = sign(secret, now, delivery.body)
        timeout = self._settings.timeout
        try:
            # One deadline for the whole attempt (a receiver that answers a byte at a time included);
            # streamed and never read, so a receiver's answer body cannot make us hold anything.
            async with (
                asyncio.timeout(timeout),
                client.stream(
                    "POST", target.url, content=delivery.body, headers=headers, timeout=timeout
                ) as response,
            ):
                code = response.status_code
                retry_after = response.headers.get("Retry-After", "")
        except TimeoutError:
            target.last_status, target.last_error = 0, f"Timeout: no answer within {timeout:g} s"
            return "retry", None
        except httpx.HTTPError as exc:
            target.last_status, target.last_error = 0, describe(exc)
            return "retry", None
        except Exception as exc:  # an unusable URL, say: no attempt will do better
            target.last_status, target.last_error = 0, describe(exc)
            return "final", None
        target.last_status = code
        if 200 <= code < 300:
            return "delivered", None
        target.last_error = f"HTTP {code}"
        if code in _RETRIED or code >= 500:
            return "retry", float(retry_after) if retry_after.isdigit() else None
        return "final", None

    def _announce(self, target: _Target, kind: str, message: str, level: str = "info") -> None:
        self._events.publish(kind, SUBSYSTEM, message, level=level, url=target.shown, error=target.last_error)

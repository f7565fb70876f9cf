"""The outermost layer of every engine server: the access policy and the request size bound.

It wraps the whole ASGI app (outside FastAPI's own error handling), so a refused request never
reaches a route, a form parser or a temporary file. A body is bounded by its ``Content-Length``
before a byte is read, and by counting as it streams when it has none; past the bound the request is
answered 413 and the rest of the body is read and dropped (not kept), so the client, still sending,
reads the answer instead of a reset connection.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import structlog

from voicemoded.engines.access import AccessPolicy, Refusal

log = structlog.get_logger(__name__)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

DRAIN_LIMIT = 1024 * 1024 * 1024
"""Most bytes of a refused body read and dropped so its sender sees the answer; then the connection
is closed (a client sending more than this learns of the refusal by the reset)."""


def mib(nbytes: int) -> str:
    return f"{nbytes / (1024 * 1024):g} MiB"


class TooLarge(Exception):
    """Raised into the app from its receive once the body passes the bound."""


class AccessGuard:
    """ASGI middleware: refuse by policy, bound the body, never add CORS headers."""

    def __init__(self, app: App, *, policy: AccessPolicy, max_body_bytes: int, engine: str) -> None:
        self.app = app
        self.policy = policy
        self.max_body_bytes = max_body_bytes
        self.engine = engine

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope.get("headers", ())}
        refusal = self.policy.refusal(scope.get("path", ""), headers)
        if refusal is None:
            refusal = self._declared_size(headers)
        if refusal is not None:
            log.warning(
                "engine.request_refused",
                engine=self.engine,
                status=refusal.status,
                reason=refusal.code,
                path=scope.get("path", "")[:200],
            )
            await _answer(send, refusal)
            await _drain(receive)
            return
        await self._bounded(scope, receive, send)

    def _declared_size(self, headers: dict[str, str]) -> Refusal | None:
        declared = headers.get("content-length", "").strip()
        if declared.isdigit() and int(declared) > self.max_body_bytes:
            return self._too_large(f" ({int(declared)} bytes)")
        return None

    def _too_large(self, size: str = "") -> Refusal:
        return Refusal(
            413,
            f"the request body{size} is over this server's limit of {mib(self.max_body_bytes)}; "
            "send a shorter or compressed recording",
            "request_too_large",
        )

    async def _bounded(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Run the app with a receive that counts; over the bound, answer 413 in the app's stead.

        The app sees the overrun as an error from its receive (FastAPI turns that into its own 400 or
        500); whatever it then tries to send is replaced by the 413.
        """
        received = 0
        over = False
        answered = False
        started = False

        async def counting_receive() -> Message:
            nonlocal received, over
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    over = True
                    raise TooLarge(f"request body over {self.max_body_bytes} bytes")
            return message

        async def refuse() -> None:
            nonlocal answered
            if answered or started:  # an answer already under way cannot be replaced
                return
            answered = True
            refusal = self._too_large()
            log.warning("engine.request_refused", engine=self.engine, status=413, reason=refusal.code)
            await _answer(send, refusal)

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if over:
                await refuse()
                return
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counting_receive, guarded_send)
        except Exception:
            if not over:
                raise
        if over:
            await refuse()
            await _drain(receive)


async def _answer(send: Send, refusal: Refusal) -> None:
    """An OpenAI-shaped JSON error; the connection closes after it (the body may be half read)."""
    body = json.dumps(
        {"error": {"message": refusal.message, "type": refusal.type, "param": None, "code": refusal.code}}
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    if refusal.status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": refusal.status, "headers": headers})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def _drain(receive: Receive) -> None:
    """Read what is left of the body and drop it, up to :data:`DRAIN_LIMIT`."""
    drained = 0
    while drained <= DRAIN_LIMIT:
        message = await receive()
        if message["type"] != "http.request":
            return
        drained += len(message.get("body", b""))
        if not message.get("more_body", False):
            return

"""Who may use the door, decided before any route runs.

A port on 127.0.0.1 is reachable from every page the person has open. DNS rebinding makes a foreign
page same-origin with the door, but its requests still say ``Host: attacker.example``: so, bound to
loopback, only loopback Host names are served. A request from another page carries its ``Origin``:
only the door's own is accepted, and no CORS header is ever sent, so no other page can read an
answer. Changes need the per-install token as ``Authorization: Bearer``, which no other page can know;
bound beyond loopback, where no Host check helps, every ``/api/`` request needs it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from starlette.types import ASGIApp, Receive, Scope, Send

from voicemode_web.errors import WebError
from voicemoded.api import webtoken
from voicemoded.api.loopback import is_loopback_address as is_loopback

#: Answered to anyone who may reach the port: the supervisor's readiness probe learns only "ok".
OPEN_PATHS = frozenset({"/healthz"})
SAFE_METHODS = frozenset({"GET", "HEAD"})
TOKEN_HINT = "open the address `voicemodectl web url` prints: it carries this install's token"


def host_name(header: str) -> str:
    """The name part of a ``Host`` header (``[::1]:8790`` -> ``::1``); "" when it does not parse."""
    try:
        return urlsplit("//" + header.strip()).hostname or ""
    except ValueError:
        return ""


@dataclass(frozen=True, slots=True)
class Policy:
    token: str
    loopback_only: bool = True
    """True when bound to a loopback address: then only loopback Host names are served."""

    def refusal(self, method: str, path: str, headers: Mapping[str, str]) -> WebError | None:
        """Why this request is refused, or None; ``headers`` have lower-case names."""
        host = headers.get("host", "")
        if self.loopback_only and not is_loopback(host_name(host)):
            return WebError(
                421,
                "host_not_allowed",
                f"Host {host[:100]!r} is not served here",
                "open the page at http://127.0.0.1 or http://localhost (this door answers loopback names only)",
            )
        origin = headers.get("origin")
        if origin is not None and origin != f"http://{host}":
            return WebError(
                403,
                "cross_origin",
                f"requests from another page are refused (Origin {origin[:100]!r})",
                "use the page this door serves",
            )
        if headers.get("sec-fetch-site") == "cross-site":
            return WebError(
                403, "cross_origin", "cross-site requests are refused", "use the page this door serves"
            )
        if path in OPEN_PATHS:
            return None
        given = headers.get("authorization")
        needs = method not in SAFE_METHODS or (not self.loopback_only and path.startswith("/api/"))
        if given is None:
            if needs:
                return WebError(401, "token_missing", "this needs the web door's token", TOKEN_HINT)
            return None
        scheme, _, value = given.strip().partition(" ")
        if scheme.lower() != "bearer" or not webtoken.matches(value.strip(), self.token):
            return WebError(403, "token_wrong", "the web door's token is wrong", TOKEN_HINT)
        return None


class Guard:
    """ASGI middleware applying :class:`Policy` to every HTTP request."""

    def __init__(self, app: ASGIApp, policy: Policy) -> None:
        self.app = app
        self.policy = policy

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            refused = self.policy.refusal(scope["method"], scope["path"], headers)
            if refused is not None:
                await refused.response()(scope, receive, send)
                return
        elif scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1008})
            return
        await self.app(scope, receive, send)

"""Who may talk to an engine's port: loopback names only, no browser pages, a token beyond loopback.

A port on 127.0.0.1 is reachable from every web page the person has open: the page cannot read a
cross-origin answer, but DNS rebinding (``attacker.example`` re-resolving to 127.0.0.1) makes the
page same-origin with the engine, and then it could transcribe or speak at will. Such a request still
says ``Host: attacker.example`` and, from a page, carries an ``Origin``; so an engine answers only
requests whose Host is a loopback name and whose Origin (when there is one) is a loopback origin, and
it never sends CORS headers. An engine bound beyond loopback is reachable from other machines, where
no Host check helps: it takes a per-install token (``Authorization: Bearer``) instead, which a web
page cannot know. The daemon creates the token once and hands its file to the children it starts.

Standard library only: the daemon imports the token helpers without loading any engine.
"""

from __future__ import annotations

import hmac
import ipaddress
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from voicemoded.api import webtoken
from voicemoded.api.errors import VoicemodeError
from voicemoded.api.loopback import is_loopback_address

TOKEN_FILE_NAME = "engine-token"
"""The per-install token's file under the base dir (0600)."""


class TokenFileError(Exception):
    """The token file exists but cannot serve as one (empty, unreadable, not a regular file)."""


def host_name(header: str) -> str:
    """The name part of a ``Host`` header: ``[::1]:2022`` -> ``[::1]``, ``localhost:80`` -> ``localhost``."""
    value = header.strip()
    if value.startswith("["):
        end = value.find("]")
        return value[: end + 1] if end > 0 else value
    if value.count(":") == 1:
        name, _, port = value.partition(":")
        return name if port.isdigit() or not port else value
    # An IPv6 literal without brackets (``::1:8881``, as some probes write it): the port is the last part.
    name, _, port = value.rpartition(":")
    if port.isdigit() and _is_ip(name):
        return name
    return value


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def is_loopback_origin(origin: str) -> bool:
    """``http://localhost:3000`` is the person's own tool; ``null`` and every other origin is not."""
    parts = urlsplit(origin.strip())
    return parts.scheme in ("http", "https") and is_loopback_address(parts.hostname or "")


@dataclass(frozen=True, slots=True)
class Refusal:
    status: int
    message: str
    code: str
    type: str = "invalid_request_error"


@dataclass(frozen=True, slots=True)
class AccessPolicy:
    """The checks one engine applies to every HTTP request, before any route sees it."""

    token: str | None = None
    """Required as ``Authorization: Bearer <token>`` when set; then any Host name is accepted."""
    open_paths: tuple[str, ...] = ("/health",)
    """Answered without the token: the supervisor's readiness probe, which learns only "ok"."""

    def refusal(self, path: str, headers: dict[str, str]) -> Refusal | None:
        """Why this request is refused, or None; ``headers`` have lower-case names."""
        origin = headers.get("origin")
        if origin is not None and not is_loopback_origin(origin):
            return Refusal(
                403,
                f"cross-origin requests are refused (Origin {origin[:100]!r}); "
                "call this server from a local program, not a web page",
                "cross_origin",
                "permission_error",
            )
        if headers.get("sec-fetch-site") == "cross-site":
            return Refusal(403, "cross-site requests are refused", "cross_origin", "permission_error")
        if self.token is not None:
            if path in self.open_paths or self._authorized(headers.get("authorization", "")):
                return None
            return Refusal(
                401,
                "this server needs its token: send 'Authorization: Bearer <token>' "
                f"(the daemon keeps it in {TOKEN_FILE_NAME} in the voicemode base folder)",
                "token_required",
                "authentication_error",
            )
        host = headers.get("host", "")
        if not is_loopback_address(host_name(host)):
            return Refusal(
                421,
                f"Host {host[:100]!r} is not served here; use http://127.0.0.1 or http://localhost "
                "(this server answers loopback names only)",
                "host_not_allowed",
            )
        return None

    def _authorized(self, header: str) -> bool:
        scheme, _, given = header.strip().partition(" ")
        assert self.token is not None
        return scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), self.token.encode())


ENGINE_TOKEN = "the engines' token"


def read_token(path: Path) -> str:
    """The token in ``path`` (FileNotFoundError when there is none); a file others can read is narrowed
    to 0600 on the way."""
    try:
        found = webtoken.read_token(path, ENGINE_TOKEN)
    except VoicemodeError as exc:
        raise TokenFileError(exc.message) from exc
    if found is None:
        raise FileNotFoundError(path)
    return found


def ensure_token(path: Path) -> str:
    """The per-install token, created on first use (0600, written whole before it is visible)."""
    try:
        return webtoken.ensure_token(path, ENGINE_TOKEN, base=path.parent)
    except VoicemodeError as exc:
        raise TokenFileError(exc.message) from exc

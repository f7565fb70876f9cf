"""Rooms on a LiveKit server: create, list, delete, who is in one, and join tokens for a person.

A thin async layer over ``livekit.api``: each call opens the server's API with the credentials it is
given, makes its request and closes it, and every way that can fail becomes a typed error that says
what to do (start the server, fix the key pair, name an existing room). The SDK is imported on first
use, never when the daemon starts. Names and identities are checked here, before anything is sent.
"""

from __future__ import annotations

import builtins
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from voicemoded.api.errors import (
    FailedPrecondition,
    InvalidArgument,
    NotFound,
    PermissionDenied,
    Unavailable,
    VoicemodeError,
    quote,
)
from voicemoded.livekit.credentials import LiveKitAccess

if TYPE_CHECKING:
    from livekit import api

#: Room names and identities: letters, digits and ``. _ - @ : +``, starting with a letter or a digit
#: (a leading ``-`` reads as an option on a command line), at most this long.
MAX_NAME_CHARS = 128
NAME_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@:+-]*")
#: A participant's display name is free text, without control characters, at most this long.
MAX_DISPLAY_NAME_CHARS = 128
#: How long one request to the server may take before it counts as not answering.
REQUEST_TIMEOUT = 5.0

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Room:
    name: str
    sid: str
    participants: int
    max_participants: int
    """0: no limit."""
    empty_timeout: int
    """Seconds the server keeps the room once nobody is in it."""
    created_at: float
    """Wall-clock seconds since the epoch."""


@dataclass(frozen=True, slots=True)
class Participant:
    identity: str
    name: str
    sid: str
    state: str
    """``joining``, ``joined``, ``active`` or ``disconnected``."""
    joined_at: float
    tracks: int
    """Tracks it publishes."""


@dataclass(frozen=True, slots=True)
class JoinToken:
    token: str
    url: str
    """Where the person connects with it."""
    identity: str
    room: str
    name: str
    expires_at: float
    """Wall-clock seconds since the epoch, as the token's ``exp`` claim says."""


def check_name(value: str, what: str = "room") -> str:
    """A room name or an identity as LiveKit and a command line both take it, else the caller's error."""
    label = "room name" if what == "room" else what
    if not value:
        raise InvalidArgument(f"no {label} given", hint=f"give the {label}", fields={"field": what})
    if len(value) > MAX_NAME_CHARS or not NAME_PATTERN.fullmatch(value):
        raise InvalidArgument(
            f"invalid {label} {quote(value)}",
            hint=f"use up to {MAX_NAME_CHARS} letters, digits and . _ - @ : +, starting with a letter or digit",
            fields={"field": what},
        )
    return value


def check_display_name(value: str) -> str:
    if len(value) > MAX_DISPLAY_NAME_CHARS or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise InvalidArgument(
            f"invalid display name {quote(value)}",
            hint=f"use up to {MAX_DISPLAY_NAME_CHARS} characters of plain text",
            fields={"field": "name"},
        )
    return value


def check_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss", "http", "https") or not parts.hostname:
        raise FailedPrecondition(
            f"LIVEKIT_URL {quote(url)} is not a LiveKit server URL",
            hint="set LIVEKIT_URL to ws://HOST:PORT (or wss://…), or unset it to use the local server",
            fields={"key": "LIVEKIT_URL"},
        )
    return url


class RoomClient:
    """The rooms of the server ``access`` names; cheap to build, nothing is opened until a call."""

    def __init__(self, access: LiveKitAccess, *, timeout: float = REQUEST_TIMEOUT) -> None:
        self._access = access
        self._timeout = timeout

    @property
    def url(self) -> str:
        return self._access.url

    async def create(self, name: str, *, empty_timeout: int = 0, max_participants: int = 0) -> Room:
        """Create ``name`` (an existing room of that name is returned as it is: LiveKit's own rule)."""
        from livekit import api

        check_name(name)
        request = api.CreateRoomRequest(
            name=name, empty_timeout=empty_timeout, max_participants=max_participants
        )
        return _room(await self._call(lambda lk: lk.room.create_room(request)))

    async def list(self) -> list[Room]:
        from livekit import api

        response = await self._call(lambda lk: lk.room.list_rooms(api.ListRoomsRequest()))
        return [_room(r) for r in response.rooms]

    async def get(self, name: str) -> Room:
        from livekit import api

        check_name(name)
        response = await self._call(lambda lk: lk.room.list_rooms(api.ListRoomsRequest(names=[name])))
        for room in response.rooms:
            if room.name == name:
                return _room(room)
        raise self._no_room(name)

    async def delete(self, name: str) -> None:
        """Delete ``name``, disconnecting whoever is in it; an unknown room is ``NotFound``."""
        from livekit import api

        check_name(name)
        await self._call(lambda lk: lk.room.delete_room(api.DeleteRoomRequest(room=name)), room=name)

    async def participants(self, room: str) -> builtins.list[Participant]:
        from livekit import api

        await self.get(room)  # the server lists nobody in a room that does not exist: say so instead
        request = api.ListParticipantsRequest(room=room)
        response = await self._call(lambda lk: lk.room.list_participants(request), room=room)
        return [_participant(p) for p in response.participants]

    def token(self, room: str, identity: str, *, name: str = "", ttl: float) -> JoinToken:
        """A token that lets ``identity`` join ``room`` for ``ttl`` seconds; signed here, nothing is sent."""
        from livekit import api

        check_name(room)
        check_name(identity, "identity")
        check_display_name(name)
        if not ttl > 0:
            raise InvalidArgument(f"ttl must be positive, not {ttl:g}", fields={"field": "ttl"})
        access = self._checked()
        grant = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
        builder = api.AccessToken(access.api_key, access.api_secret).with_identity(identity)
        if name:
            builder = builder.with_name(name)
        token = builder.with_grants(grant).with_ttl(timedelta(seconds=ttl)).to_jwt()
        return JoinToken(token, access.url, identity, room, name, _expiry(token))

    # -- the one place a request is made and its failures are named -------------------------------------

    def _checked(self) -> LiveKitAccess:
        access = self._access
        check_url(access.url)
        if not access.api_key or not access.api_secret:
            raise FailedPrecondition(
                "no LiveKit API key and secret are configured",
                hint=self._credentials_hint(),
                fields={"key": "LIVEKIT_API_KEY"},
            )
        return access

    async def _call(self, request: Callable[[api.LiveKitAPI], Awaitable[T]], *, room: str = "") -> T:
        import aiohttp
        from livekit import api

        access = self._checked()
        lk = api.LiveKitAPI(
            access.url,
            access.api_key,
            access.api_secret,
            timeout=aiohttp.ClientTimeout(total=self._timeout),
        )
        try:
            return await request(lk)
        except api.ServerError as exc:
            raise self._refused(exc, room) from None
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise self._unreachable(exc) from None
        finally:
            await lk.aclose()

    def _refused(self, exc: Any, room: str) -> VoicemodeError:
        """The server answered, and said no."""
        code, message = str(exc.code), str(exc.message) or f"HTTP {exc.status}"
        fields = {"url": self._access.url, "livekit_code": code, "http_status": str(exc.status)}
        if exc.status == 401 or code in ("unauthenticated", "permission_denied"):
            return PermissionDenied(
                f"the LiveKit server at {self._access.url} refused the API key and secret "
                f"({exc.message or f'HTTP {exc.status}'})",
                hint=self._credentials_hint(),
                fields=fields,
            )
        if code == "not_found" and room:
            return self._no_room(room)
        if code == "not_found":
            return NotFound(f"LiveKit: {message}", fields=fields)
        if code in ("invalid_argument", "malformed", "out_of_range"):
            return InvalidArgument(f"LiveKit refused the request: {message}", fields=fields)
        return Unavailable(
            f"the LiveKit server at {self._access.url} failed the request: {message}",
            hint="its log says why (`voicemodectl service logs livekit` for the local one)",
            fields=fields,
        )

    def _unreachable(self, exc: BaseException) -> Unavailable:
        reason = str(exc) or type(exc).__name__
        if self._access.managed:
            hint = "start it with `voicemodectl service start livekit`, or set LIVEKIT_URL to a remote server"
        else:
            hint = "check that LIVEKIT_URL names a running LiveKit server this machine can reach"
        return Unavailable(
            f"no LiveKit server answers at {self._access.url}: {reason}",
            hint=hint,
            fields={"url": self._access.url},
        )

    def _no_room(self, name: str) -> NotFound:
        return NotFound(
            f"no room named {quote(name)} on {self._access.url}",
            hint="`voicemodectl room list` shows the rooms; `voicemodectl room create NAME` makes one",
            fields={"room": name},
        )

    def _credentials_hint(self) -> str:
        if self._access.managed:
            return (
                "the local server's key pair is generated by the daemon; set LIVEKIT_API_KEY and "
                "LIVEKIT_API_SECRET only together with LIVEKIT_URL"
            )
        return "set LIVEKIT_API_KEY and LIVEKIT_API_SECRET to a key pair of the server LIVEKIT_URL names"


def _room(r: Any) -> Room:
    created = r.creation_time_ms / 1000 if r.creation_time_ms else float(r.creation_time)
    return Room(r.name, r.sid, r.num_participants, r.max_participants, r.empty_timeout, created)


STATES = {0: "joining", 1: "joined", 2: "active", 3: "disconnected"}


def _participant(p: Any) -> Participant:
    joined = p.joined_at_ms / 1000 if p.joined_at_ms else float(p.joined_at)
    return Participant(p.identity, p.name, p.sid, STATES.get(p.state, "unknown"), joined, len(p.tracks))


def _expiry(token: str) -> float:
    """The ``exp`` claim of a token just signed (read back, so it is exactly what the server will see)."""
    import jwt

    claims = jwt.decode(token, options={"verify_signature": False})
    return float(claims.get("exp", time.time()))

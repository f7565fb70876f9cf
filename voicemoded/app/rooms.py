"""LiveKit rooms: create, list, delete, who is in one, and join tokens for a person.

The server and its key are read at each call (``LIVEKIT_URL`` may be set or unset by a reload), so a
change applies to the next request. The rules live here, the same for every door: a token lives an
hour unless asked otherwise and never more than a day; a room's idle timeout and size are bounded.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable

import structlog

from voicemoded.api.errors import InvalidArgument
from voicemoded.app.doors import Door
from voicemoded.livekit.credentials import LiveKitAccess
from voicemoded.livekit.rooms import JoinToken, Participant, Room, RoomClient

log = structlog.get_logger(__name__)

#: A join token's time to live when the caller names none, and the longest one given out.
DEFAULT_TTL = 3600.0
MAX_TTL = 24 * 3600.0
#: The longest a room may stay open with nobody in it (0 leaves it to the server), and its largest size.
MAX_EMPTY_TIMEOUT = 7 * 24 * 3600
MAX_PARTICIPANTS = 1000

AccessSource = Callable[[], LiveKitAccess]
"""The LiveKit server and key for the current settings (a remote deployment, or the supervised one)."""


class Rooms:
    def __init__(self, access: AccessSource) -> None:
        self._access = access

    def _client(self) -> RoomClient:
        return RoomClient(self._access())

    async def create(self, name: str, *, empty_timeout: int = 0, max_participants: int = 0) -> Room:
        _bounded("empty_timeout", empty_timeout, MAX_EMPTY_TIMEOUT, "seconds")
        _bounded("max_participants", max_participants, MAX_PARTICIPANTS, "participants")
        room = await self._client().create(
            name, empty_timeout=empty_timeout, max_participants=max_participants
        )
        log.info("rooms.created", room=room.name, sid=room.sid)
        return room

    async def list(self) -> builtins.list[Room]:
        return await self._client().list()

    async def delete(self, name: str) -> None:
        await self._client().delete(name)
        log.info("rooms.deleted", room=name)

    async def participants(self, room: str) -> builtins.list[Participant]:
        return await self._client().participants(room)

    def token(
        self, room: str, identity: str, door: Door, *, name: str = "", ttl: float | None = None
    ) -> JoinToken:
        """A token for a person to join ``room`` as ``identity``; ``ttl`` in seconds (default an hour)."""
        seconds = DEFAULT_TTL if ttl is None or ttl == 0 else ttl
        if not 0 < seconds <= MAX_TTL:
            raise InvalidArgument(
                f"ttl {seconds:g} s is out of range",
                hint=f"give a time to live above 0 and at most {MAX_TTL / 3600:g} hours",
                fields={"field": "ttl"},
            )
        token = self._client().token(room, identity, name=name, ttl=seconds)
        # Who was let into which room, never the token itself.
        log.info("rooms.token_issued", room=room, identity=identity, ttl=seconds, door=door.name)
        return token


def _bounded(field: str, value: int, limit: int, unit: str) -> None:
    if not 0 <= value <= limit:
        raise InvalidArgument(
            f"{field} {value} is out of range",
            hint=f"give 0 (the server's default) up to {limit} {unit}",
            fields={"field": field},
        )

"""Which way a turn's audio goes: the local devices, or a LiveKit room.

``local`` is the machine's own speaker and microphone; ``livekit`` joins the named room as the assistant;
``auto`` takes the room when a person is in it and the local devices otherwise. A room is never created
here: a turn for an unknown room is ``NotFound`` (a typo would otherwise talk into an empty room).

The assistant connects for each turn and leaves at its end: a turn is seconds long, a connection to a
nearby server a fraction of one, and nothing stays half-open between turns. One voice at a time holds
per room (one :class:`AudioOwner` each), as it does for the local devices.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import timedelta
from typing import TYPE_CHECKING

import structlog

from voicemoded.api.errors import InvalidArgument
from voicemoded.audio.owner import AudioOwner
from voicemoded.conversation.loop import Devices
from voicemoded.livekit.rooms import RoomClient
from voicemoded.livekit.session import ASSISTANT, RoomSession

if TYPE_CHECKING:
    from voicemoded.conversation.params import TurnParams
    from voicemoded.events import EventBus
    from voicemoded.livekit.credentials import LiveKitAccess

log = structlog.get_logger(__name__)

JOIN_WAIT_S = 10.0
"""How long a turn that only speaks waits for a person to join (a listening turn waits its listen time)."""


def choose(transport: str, room: str, person_present: bool | None) -> str:
    """The room a turn uses, or "" for the local devices.

    ``person_present`` is only asked for ``auto`` with a room (None: not known, so the local devices).
    """
    if transport == "livekit":
        if not room:
            raise InvalidArgument(
                "transport livekit needs a room",
                hint="give the room (--room NAME); `voicemodectl room list` shows them",
                fields={"param": "room"},
            )
        return room
    if transport == "auto":
        return room if room and person_present else ""
    return ""


class RoomTransport:
    """Opens a room for a turn: checks it exists, joins as the assistant, waits for the person."""

    def __init__(self, access: Callable[[], LiveKitAccess], *, events: EventBus | None = None) -> None:
        self._access = access
        self._events = events
        self._owners: dict[str, AudioOwner] = {}

    async def room_for(self, params: TurnParams) -> str:
        """The room this turn goes through ("" for the local devices)."""
        if params.transport != "auto" or not params.room:
            return choose(params.transport, params.room, None)
        try:
            people = await RoomClient(self._access()).participants(params.room)
        except Exception as exc:  # auto falls back to the local devices whatever the room's trouble
            log.info("livekit.auto_local", room=params.room, reason=str(exc))
            return ""
        return choose("auto", params.room, any(p.identity != ASSISTANT for p in people))

    def owner(self, room: str) -> AudioOwner:
        """The one-voice-at-a-time lock of ``room``."""
        if room not in self._owners:
            self._owners[room] = AudioOwner(events=self._events)
        return self._owners[room]

    @contextlib.asynccontextmanager
    async def open(self, room: str, params: TurnParams) -> AsyncIterator[Devices]:
        """Joined to ``room`` with a person in it; left again on exit."""
        from livekit import api

        access = self._access()
        client = RoomClient(access)
        await client.get(room)  # no server, refused credentials, no such room: each its own error
        grant = api.VideoGrants(room_join=True, room=room, can_publish=True, can_subscribe=True)
        token = (
            api.AccessToken(access.api_key, access.api_secret)
            .with_identity(ASSISTANT)
            .with_name("voicemode")
            .with_grants(grant)
            .with_ttl(timedelta(hours=1))
            .to_jwt()
        )
        session = RoomSession(room)
        try:
            await session.connect(access.url, token)
            await session.wait_person(params.listen_duration_max if params.listens else JOIN_WAIT_S)
            yield Devices(session.speaker, session.microphone, room, session.gone)
        finally:
            await session.aclose()
            log.info("livekit.left", room=room)

"""Which transport a turn takes, how its parameters are checked, and the room microphone's clock."""

from __future__ import annotations

import asyncio
import time

import pytest

from voicemoded.api.errors import InvalidArgument, Unavailable
from voicemoded.audio.format import SPEECH_FORMAT
from voicemoded.config import Settings
from voicemoded.conversation.params import resolve
from voicemoded.livekit.session import GAP_S, RoomMicrophone, room_lost
from voicemoded.livekit.transport import choose


@pytest.mark.parametrize(
    ("transport", "room", "present", "chosen"),
    [
        ("local", "kitchen", True, ""),
        ("livekit", "kitchen", None, "kitchen"),
        ("livekit", "kitchen", False, "kitchen"),
        ("auto", "kitchen", True, "kitchen"),
        ("auto", "kitchen", False, ""),
        ("auto", "kitchen", None, ""),
        ("auto", "", True, ""),
    ],
)
def test_the_room_a_turn_goes_through(transport: str, room: str, present: bool | None, chosen: str) -> None:
    assert choose(transport, room, present) == chosen


def test_livekit_without_a_room_is_refused() -> None:
    with pytest.raises(InvalidArgument, match="needs a room"):
        choose("livekit", "", True)


def test_a_turn_is_local_unless_asked_and_its_transport_is_checked() -> None:
    settings = Settings()
    assert resolve(settings, {"message": "hi"}).transport == "local"
    params = resolve(settings, {"message": "hi", "transport": "LiveKit", "room": "kitchen"})
    assert (params.transport, params.room) == ("livekit", "kitchen")
    with pytest.raises(InvalidArgument, match="transport: must be one of local, livekit, auto"):
        resolve(settings, {"message": "hi", "transport": "carrier-pigeon"})
    with pytest.raises(InvalidArgument, match="room: transport livekit needs a room"):
        resolve(settings, {"message": "hi", "transport": "livekit"})
    with pytest.raises(InvalidArgument, match=r"room: .* longer than 128"):
        resolve(settings, {"message": "hi", "transport": "livekit", "room": "r" * 129})


async def test_the_room_microphone_hears_the_person_and_fills_silence_between() -> None:
    mic = RoomMicrophone("kitchen")
    sub = await mic.subscribe()
    voice = b"\x10\x00" * 160
    mic.offer(voice)
    chunk = await sub.read()
    assert (chunk.audio, chunk.format) == (voice, SPEECH_FORMAT)
    assert chunk.timestamp <= time.monotonic()
    await asyncio.sleep(GAP_S * 1.5)
    mic.fill()
    silence = await sub.read()
    assert silence.audio == bytes(len(silence.audio)) and silence.seconds >= GAP_S
    assert silence.timestamp >= chunk.timestamp + chunk.seconds - 1e-6
    await sub.close()
    assert not mic._subs


async def test_a_lost_connection_fails_every_listener_and_later_ones() -> None:
    mic = RoomMicrophone("kitchen")
    sub = await mic.subscribe()
    mic.offer(b"\x00\x00" * 160)
    mic.fail(room_lost("kitchen", "server gone"))
    await sub.read()  # what was heard before still comes
    with pytest.raises(Unavailable, match="room 'kitchen' was lost: server gone"):
        await sub.read()
    late = await mic.subscribe()
    with pytest.raises(Unavailable):
        await late.read()


async def test_no_silence_is_made_up_while_the_connection_is_down() -> None:
    mic = RoomMicrophone("kitchen")
    sub = await mic.subscribe()
    mic.paused = True
    await asyncio.sleep(GAP_S * 1.5)
    mic.fill()
    assert sub.drain() == []
    mic.paused = False
    mic.fill()
    assert len(sub.drain()) == 1


async def test_auto_uses_the_local_devices_when_the_room_cannot_be_asked() -> None:
    from voicemoded.livekit.credentials import LiveKitAccess
    from voicemoded.livekit.transport import RoomTransport
    from voicemoded.testing.ports import free_port

    dead = LiveKitAccess(url=f"ws://127.0.0.1:{free_port()}", api_key="k", api_secret="s" * 32, managed=False)
    rooms = RoomTransport(lambda: dead)
    settings = Settings()
    auto = resolve(settings, {"message": "hi", "transport": "auto", "room": "kitchen"})
    assert await rooms.room_for(auto) == ""
    livekit = resolve(settings, {"message": "hi", "transport": "livekit", "room": "kitchen"})
    assert await rooms.room_for(livekit) == "kitchen"  # its errors come when the room is opened
    assert rooms.owner("kitchen") is rooms.owner("kitchen") is not rooms.owner("hall")

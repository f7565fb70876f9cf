"""Turns through a LiveKit room: the real server, a real daemon, and a person who is a Python participant.

The daemon's only speech endpoint is the test endpoint (its speech a 440 Hz tone, every transcript the
same sentence), so these tests are about the transport: audio reaches the person, the person's answer
reaches the endpointer and STT, and every failure is a clear error with the daemon still answering.
The person answers with Piper's voice, so the endpointer hears real speech. Where what matters is which
part of the message the person heard, the speech is a chirp (:class:`ChirpEndpoint`).
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from voicemoded.livekit.rooms import RoomClient
from voicemoded.livekit.session import RECONNECT_S, SUBSCRIBE_WAIT_S
from voicemoded.testing.daemon import DaemonHandle, daemon_handle, engines_daemon, speech_daemon
from voicemoded.testing.endpoint import SpeechEndpoint
from voicemoded.testing.livekit import (
    ROOM_RATE,
    ChirpEndpoint,
    LiveKitServer,
    Person,
    absent_reason,
    running_livekit,
    server_binary,
    where_in_chirp,
)
from voicemoded.testing.ports import free_port

pytestmark = pytest.mark.skipif(server_binary() is None, reason=absent_reason())

NOT_FOUND, INVALID, UNAVAILABLE, BUSY, NO_PERMISSION = 4, 5, 6, 7, 10
TONE_S = 1.0
MISSED_S = 0.03
"""At most this much of either end of a message may be missing on the person's side."""


@pytest.fixture(scope="module")
def livekit() -> Iterator[LiveKitServer]:
    with tempfile.TemporaryDirectory(prefix="vm-lk-") as folder, running_livekit(Path(folder)) as server:
        yield server


@pytest.fixture(scope="module")
def room_daemon(livekit: LiveKitServer) -> Iterator[tuple[DaemonHandle, SpeechEndpoint]]:
    yield from speech_daemon(room_env(livekit), tone_seconds=TONE_S)


@pytest.fixture(scope="module")
def chirp_daemon(livekit: LiveKitServer) -> Iterator[DaemonHandle]:
    """A daemon whose speech is a chirp, so the person's copy shows which part of the message it holds."""
    endpoint = ChirpEndpoint(tone_seconds=TONE_S)
    try:
        for handle in daemon_handle():
            handle.start({**endpoint.env(), **room_env(livekit)})
            yield handle
    finally:
        endpoint.close()


def room_env(livekit: LiveKitServer) -> dict[str, str]:
    return {
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
    }


async def ctl(handle: DaemonHandle, *args: str) -> tuple[int, Any, str]:
    done = await asyncio.to_thread(handle.ctl, *args, "--json")
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None, done.stderr


async def test_the_daemon_speaks_in_a_room_and_the_person_hears_the_message(
    room_daemon: tuple[DaemonHandle, SpeechEndpoint], livekit: LiveKitServer
) -> None:
    handle, _ = room_daemon
    async with Person.joining(livekit, "speak-room") as person:
        code, result, err = await ctl(
            handle, "speak", "hello there", "--transport", "livekit", "--room", "speak-room"
        )
        assert code == 0, (result, err)
        await person.message_heard()
    assert TONE_S - 0.2 < person.voiced_seconds() < TONE_S + 0.2, person.voiced_seconds()
    [journal] = (handle.base / "conversations").glob("*.jsonl")
    turn = json.loads(journal.read_text().splitlines()[-1])
    assert (turn["mode"], turn["room"]) == ("speak", "speak-room"), "the journal says which room"


async def test_the_person_hears_the_whole_message_from_its_first_sample_to_its_last(
    chirp_daemon: DaemonHandle, livekit: LiveKitServer
) -> None:
    """Each turn publishes a new track: its first frame waits until the person subscribed to it, and
    the assistant leaves only once its last frame had the time to reach them."""
    async with Person.joining(livekit, "whole-room") as person:
        for turn in range(2):
            code, result, err = await ctl(
                chirp_daemon, "speak", "all of it", "--transport", "livekit", "--room", "whole-room"
            )
            assert code == 0, (result, err)
            await person.message_heard()
            start, end = where_in_chirp(person.last_track(), TONE_S)
            # Without the waits 60-160 ms of the start and 40-80 ms of the end go missing; the person's own
            # client, attaching its stream as the track arrives, may miss a frame or two when loaded.
            assert start < MISSED_S and end > TONE_S - MISSED_S, f"turn {turn} heard {start:.3f}-{end:.3f} s"


async def test_a_person_who_never_subscribes_costs_the_turn_one_bounded_wait(
    chirp_daemon: DaemonHandle, livekit: LiveKitServer
) -> None:
    async with Person.joining(livekit, "deaf-room", subscribe=False) as person:
        started = time.monotonic()
        code, result, err = await ctl(
            chirp_daemon, "speak", "anyone", "--transport", "livekit", "--room", "deaf-room"
        )
        took = time.monotonic() - started
    assert code == 0, (result, err)
    assert took < TONE_S + SUBSCRIBE_WAIT_S + 3.0, took
    (logged,) = [e for e in chirp_daemon.log_events("livekit.not_subscribed") if e["room"] == "deaf-room"]
    assert logged["waited_s"] == SUBSCRIBE_WAIT_S
    assert not person.frames()


async def test_a_conversation_through_a_room_hears_the_persons_answer(
    room_daemon: tuple[DaemonHandle, SpeechEndpoint], livekit: LiveKitServer
) -> None:
    from voicemoded.testing.person import Voice

    handle, endpoint = room_daemon
    answer = await asyncio.to_thread(lambda: Voice().say("I would like a cup of tea please"))
    async with Person.joining(livekit, "converse-room") as person:
        turn = asyncio.create_task(
            ctl(
                handle, "converse", "what would you like", "--transport", "livekit", "--room", "converse-room"
            )
        )
        await person.message_heard()
        await person.say(answer.pcm, answer.format.rate, silence_s=10, hush=turn.done)
        code, result, err = await asyncio.wait_for(turn, 30)
    assert code == 0, (result, err)
    assert result["text"] == "hello from the test endpoint", result
    assert any("transcriptions" in r for r in endpoint.requests), endpoint.requests


async def test_the_person_leaving_mid_turn_ends_it_with_what_they_said(
    room_daemon: tuple[DaemonHandle, SpeechEndpoint], livekit: LiveKitServer
) -> None:
    from voicemoded.testing.person import Voice

    handle, _ = room_daemon
    answer = await asyncio.to_thread(lambda: Voice().say("I have to go now"))
    turns = []
    for room, says in (("leave-room", b""), ("leave-talking", answer.pcm)):
        async with Person.joining(livekit, room) as person:
            turn = asyncio.create_task(
                ctl(handle, "converse", "are you there", "--transport", "livekit", "--room", room)
            )
            await person.message_heard()
            await person.say(says, answer.format.rate, silence_s=0.2)
        turns.append(await asyncio.wait_for(turn, 20))
    (silent, silent_result, err), (talking, talking_result, err2) = turns
    assert silent == 0 and silent_result["end_reason"] == "person_left", (silent_result, err)
    assert not silent_result["text"]
    assert talking == 0 and talking_result["end_reason"] == "person_left", (talking_result, err2)
    assert talking_result["text"] == "hello from the test endpoint"
    code, status, _ = await ctl(handle, "status")
    assert code == 0, status


async def test_auto_takes_the_room_when_a_person_is_in_it_and_the_local_devices_otherwise(
    room_daemon: tuple[DaemonHandle, SpeechEndpoint], livekit: LiveKitServer
) -> None:
    handle, _ = room_daemon
    async with Person.joining(livekit, "auto-room") as person:
        code, result, err = await ctl(handle, "speak", "hello", "--transport", "auto", "--room", "auto-room")
        assert code == 0, (result, err)
        await person.message_heard()
    assert person.voiced_seconds() > TONE_S - 0.2
    await RoomClient(livekit.access).create("auto-empty")
    code, result, err = await ctl(handle, "speak", "hello", "--transport", "auto", "--room", "auto-empty")
    assert code == 0, (result, err)  # played on this machine's (virtual) speaker
    assert result["timings"]["playback"] > TONE_S - 0.2, result


async def test_one_voice_at_a_time_holds_per_room_not_across_rooms_and_local(
    room_daemon: tuple[DaemonHandle, SpeechEndpoint], livekit: LiveKitServer
) -> None:
    handle, _ = room_daemon
    async with Person.joining(livekit, "busy-room") as person:
        first = asyncio.create_task(
            ctl(handle, "speak", "one", "--transport", "livekit", "--room", "busy-room")
        )
        while not person.voiced_seconds():
            await asyncio.sleep(0.02)
        second = await ctl(
            handle, "speak", "two", "--transport", "livekit", "--room", "busy-room", "--no-wait"
        )
        local = await ctl(handle, "speak", "three", "--no-wait")
        assert (await first)[0] == 0
    assert second[0] == BUSY, second
    assert local[0] == 0, local


async def test_an_unknown_room_is_not_found_and_creates_nothing(
    room_daemon: tuple[DaemonHandle, SpeechEndpoint], livekit: LiveKitServer
) -> None:
    handle, _ = room_daemon
    code, result, err = await ctl(handle, "speak", "hello", "--transport", "livekit", "--room", "nowhere")
    assert code == NOT_FOUND, (result, err)
    assert "no room named 'nowhere'" in json.dumps(result)
    assert "nowhere" not in [r.name for r in await RoomClient(livekit.access).list()]
    assert (await ctl(handle, "status"))[0] == 0


async def test_nobody_joining_within_the_listen_time_is_a_clear_error(
    room_daemon: tuple[DaemonHandle, SpeechEndpoint], livekit: LiveKitServer
) -> None:
    handle, _ = room_daemon
    await RoomClient(livekit.access).create("empty-room")
    started = time.monotonic()
    code, result, err = await ctl(
        handle, "listen", "--transport", "livekit", "--room", "empty-room", "--max", "1"
    )
    assert code == UNAVAILABLE, (result, err)
    assert "nobody joined" in json.dumps(result)
    assert time.monotonic() - started < 10


async def test_livekit_without_a_room_is_refused_before_anything_moves(
    room_daemon: tuple[DaemonHandle, SpeechEndpoint],
) -> None:
    handle, _ = room_daemon
    code, result, err = await ctl(handle, "speak", "hello", "--transport", "livekit")
    assert code == INVALID, (result, err)
    assert "transport livekit needs a room" in json.dumps(result)


def test_no_server_and_a_wrong_secret_are_each_a_clear_error(livekit: LiveKitServer) -> None:
    env = {"LIVEKIT_URL": f"ws://127.0.0.1:{free_port()}", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"}
    speak = ("speak", "hello", "--transport", "livekit", "--room", "kitchen", "--json")
    for handle, _ in speech_daemon(env):
        done = handle.ctl(*speak)
        assert done.returncode == UNAVAILABLE, (done.stdout, done.stderr)
        assert "no LiveKit server answers" in done.stdout
        assert handle.ctl("status").returncode == 0
        handle.stop()
        handle.start(
            {"LIVEKIT_URL": livekit.url, "LIVEKIT_API_KEY": livekit.api_key, "LIVEKIT_API_SECRET": "wrong"}
        )
        done = handle.ctl(*speak)
        assert done.returncode == NO_PERMISSION, (done.stdout, done.stderr)
        assert "refused the API key and secret" in done.stdout
        assert handle.ctl("status").returncode == 0


async def test_a_server_killed_mid_turn_is_a_clear_error_and_the_next_turn_works(tmp_path: Path) -> None:
    """An external server (``LIVEKIT_URL``) that dies and stays away past the reconnect time; the daemon's
    own supervised server, back sooner, is test_server.py's."""
    port = free_port()
    with running_livekit(tmp_path, port=port) as first:
        env = {
            "LIVEKIT_URL": first.url,
            "LIVEKIT_API_KEY": first.api_key,
            "LIVEKIT_API_SECRET": first.api_secret,
        }
        for handle, _ in speech_daemon(env, tone_seconds=TONE_S):
            async with Person.joining(first, "fragile") as person:
                turn = asyncio.create_task(
                    ctl(handle, "converse", "still there", "--transport", "livekit", "--room", "fragile")
                )
                await person.message_heard()
                os.killpg(first.process.pid, signal.SIGKILL)
                started = time.monotonic()
                code, result, err = await asyncio.wait_for(turn, 30)
            assert code == UNAVAILABLE, (result, err)
            assert "was lost" in json.dumps(result), result
            assert time.monotonic() - started < RECONNECT_S + 8
            with running_livekit(tmp_path, port=port) as second:
                async with Person.joining(second, "fragile") as again:
                    code, result, err = await ctl(
                        handle, "speak", "back", "--transport", "livekit", "--room", "fragile"
                    )
                    assert code == 0, (result, err)
                    await again.message_heard()


async def test_the_assistants_door_takes_the_transport_and_the_room(
    room_daemon: tuple[DaemonHandle, SpeechEndpoint], livekit: LiveKitServer
) -> None:
    from tests.integration.daemon.test_doors_agree import Failure, over_mcp
    from tests.integration.mcp.conftest import mcp_session

    handle, _ = room_daemon
    room = {"transport": "livekit", "room": "mcp-room", "wait_for_response": False}
    async with Person.joining(livekit, "mcp-room") as person, mcp_session(handle) as session:
        await session.initialize()
        _, error = await over_mcp(session, "converse", {"message": "hello", **room}, dict)
        assert error is None, error
        await person.message_heard()
        _, unknown = await over_mcp(session, "converse", {"message": "hi", **room, "room": "nowhere"}, dict)
    assert person.voiced_seconds() > TONE_S - 0.2
    assert isinstance(unknown, Failure) and unknown.code == "NOT_FOUND", unknown


async def test_real_voices_through_a_room_transcribe_both_ways(
    livekit: LiveKitServer, tmp_path: Path
) -> None:
    """Piper speaks the message into the room, the person's copy transcribes to it; the person answers
    with Piper's voice and whisper hears it in the converse result."""
    import wave

    from voicemoded.testing.person import Voice

    answer = await asyncio.to_thread(lambda: Voice().say("I would like a cup of tea please"))
    room = {
        "LIVEKIT_URL": livekit.url,
        "LIVEKIT_API_KEY": livekit.api_key,
        "LIVEKIT_API_SECRET": livekit.api_secret,
    }
    for handle, _audio, _client in engines_daemon(("whisper", "piper"), room):
        async with Person.joining(livekit, "real-room") as person:
            turn = asyncio.create_task(
                ctl(handle, "converse", "What would you like to drink?", "--transport", "livekit",
                    "--room", "real-room")
            )  # fmt: skip
            await person.message_heard(timeout=30)
            await person.say(answer.pcm, answer.format.rate, silence_s=20, hush=turn.done)
            code, result, err = await asyncio.wait_for(turn, 60)
        assert code == 0, (result, err)
        assert "tea" in result["text"].lower(), result
        heard = tmp_path / "heard.wav"
        with wave.open(str(heard), "wb") as out:
            out.setnchannels(1)
            out.setsampwidth(2)
            out.setframerate(ROOM_RATE)
            out.writeframes(b"".join(f.samples.tobytes() for f in person.frames()))
        code, said, err = await ctl(handle, "transcribe", str(heard))
        assert code == 0, (said, err)
        assert "what would you like to drink" in said["text"].lower(), said

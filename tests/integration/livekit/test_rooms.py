"""Rooms through the real daemon on a real livekit-server: voicemodectl and the MCP door, end to end.

One server and one daemon for the module (its environment names the server with LIVEKIT_URL and the key
pair); a second daemon, set up by its user file, meets the faults: a wrong secret, a server that is not
there, a URL that is none. Each fault is a clear error with its exit code, and the daemon still answers.
"""

from __future__ import annotations

import asyncio
import json
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from livekit import rtc
from livekit.api import TokenVerifier

from tests.integration.daemon.test_doors_agree import Failure, over_grpc, over_mcp
from voicemoded.testing.daemon import DaemonHandle, daemon_handle
from voicemoded.testing.livekit import LiveKitServer, absent_reason, running_livekit, server_binary
from voicemoded.testing.ports import free_port

pytestmark = pytest.mark.skipif(server_binary() is None, reason=absent_reason())

NOT_FOUND, INVALID, UNAVAILABLE, NO_PERMISSION = 4, 5, 6, 10


@pytest.fixture(scope="module")
def livekit() -> Iterator[LiveKitServer]:
    with tempfile.TemporaryDirectory(prefix="vm-lk-") as folder, running_livekit(Path(folder)) as server:
        yield server


@pytest.fixture(scope="module")
def rooms_daemon(livekit: LiveKitServer) -> Iterator[DaemonHandle]:
    for handle in daemon_handle():
        handle.start(
            {
                "LIVEKIT_URL": livekit.url,
                "LIVEKIT_API_KEY": livekit.api_key,
                "LIVEKIT_API_SECRET": livekit.api_secret,
            }
        )
        yield handle


def ctl_json(handle: DaemonHandle, *args: str) -> tuple[int, Any]:
    done = handle.ctl(*args, "--json")
    return done.returncode, json.loads(done.stdout) if done.stdout.strip() else None


def room_names(handle: DaemonHandle) -> list[str]:
    code, listed = ctl_json(handle, "room", "list")
    assert code == 0, listed
    return [r["name"] for r in listed["rooms"]]


async def participants_until(
    handle: DaemonHandle, room: str, done: Callable[[list[Any]], bool], timeout: float = 10.0
) -> Any:
    """``room participants`` asked until ``done`` holds for the list (the server's view lags a join)."""
    deadline = time.monotonic() + timeout
    while True:
        code, answer = await asyncio.to_thread(ctl_json, handle, "room", "participants", room)
        assert code == 0, answer
        if done(answer["participants"]) or time.monotonic() > deadline:
            return answer
        await asyncio.sleep(0.1)


async def test_a_room_from_creation_to_a_person_in_it_to_deletion(
    rooms_daemon: DaemonHandle, livekit: LiveKitServer
) -> None:
    code, room = ctl_json(
        rooms_daemon, "room", "create", "standup", "--empty-timeout", "300", "--max-participants", "4"
    )
    assert code == 0, room
    assert (room["name"], room["max_participants"], room["empty_timeout_seconds"]) == ("standup", 4, 300)
    assert "standup" in room_names(rooms_daemon)
    assert ctl_json(rooms_daemon, "room", "participants", "standup") == (
        0,
        {"room": "standup", "participants": []},
    )

    before = time.time()
    code, token = ctl_json(
        rooms_daemon, "room", "token", "standup", "--identity", "alice", "--name", "Alice", "--ttl", "10m"
    )
    assert code == 0, token
    assert (token["url"], token["room"], token["identity"]) == (livekit.url, "standup", "alice")
    claims = TokenVerifier(livekit.api_key, livekit.api_secret).verify(token["token"])
    assert (claims.identity, claims.name) == ("alice", "Alice")
    assert claims.video is not None and (claims.video.room, claims.video.room_join) == ("standup", True)
    assert before + 600 - 2 <= _seconds(token["expires_at"]) <= time.time() + 600 + 2

    person = rtc.Room()
    await person.connect(token["url"], token["token"])  # the token really lets a person in
    try:
        present = await participants_until(rooms_daemon, "standup", lambda found: bool(found))
        assert [(p["identity"], p["name"]) for p in present["participants"]] == [("alice", "Alice")]
        assert present["participants"][0]["state"] in ("joined", "active")
        table = await asyncio.to_thread(rooms_daemon.ctl, "room", "participants", "standup")
        assert table.returncode == 0 and "alice" in table.stdout and "Alice" in table.stdout
    finally:
        await person.disconnect()

    done = rooms_daemon.ctl("room", "delete", "standup")
    assert done.returncode == 0 and "standup: deleted" in done.stdout, done.stderr
    assert "standup" not in room_names(rooms_daemon)


def test_the_token_printed_for_a_person_comes_with_the_url_and_a_join_hint(
    rooms_daemon: DaemonHandle, livekit: LiveKitServer
) -> None:
    done = rooms_daemon.ctl("room", "token", "any-room", "--identity", "bob")
    assert done.returncode == 0, done.stderr
    first, *rest = done.stdout.splitlines()
    claims = TokenVerifier(livekit.api_key, livekit.api_secret).verify(first)
    assert claims.identity == "bob"
    assert f"url:     {livekit.url}" in rest and any(line.startswith("join:") for line in rest)


@pytest.mark.parametrize(
    ("args", "exit_code", "code", "says"),
    [
        (("room", "delete", "no-such-room"), NOT_FOUND, "NOT_FOUND", "no room named 'no-such-room'"),
        (("room", "participants", "no-such-room"), NOT_FOUND, "NOT_FOUND", "no room named 'no-such-room'"),
        (("room", "create", "two words"), INVALID, "INVALID_ARGUMENT", "invalid room name"),
        (("room", "token", "lobby"), INVALID, "INVALID_ARGUMENT", "no identity given"),
        (("room", "token", "lobby", "--identity", "bob", "--ttl", "25h"), INVALID, "INVALID_ARGUMENT", "ttl"),
    ],
)
def test_a_mistake_is_named_with_its_exit_code_and_the_daemon_carries_on(
    rooms_daemon: DaemonHandle, args: tuple[str, ...], exit_code: int, code: str, says: str
) -> None:
    done = rooms_daemon.ctl(*args)
    assert done.returncode == exit_code, done.stderr
    assert says in done.stderr and done.stdout == ""
    returned, error = ctl_json(rooms_daemon, *args)
    assert returned == exit_code and error["error"]["code"] == code and error["error"]["hint"]
    assert rooms_daemon.ctl("status").returncode == 0


async def test_both_doors_list_the_rooms_and_refuse_an_unknown_one_alike(rooms_daemon: DaemonHandle) -> None:
    from tests.integration.mcp.conftest import mcp_session

    with rooms_daemon.client() as client:
        client.create_room("doors")
        async with mcp_session(rooms_daemon) as session:
            await session.initialize()
            listed = (
                await over_grpc(client, lambda c: c.list_rooms(), lambda r: sorted(x.name for x in r.rooms)),
                await over_mcp(
                    session, "rooms", {"action": "list"}, lambda a: sorted(x["name"] for x in a["rooms"])
                ),
            )
            unknown = (
                await over_grpc(client, lambda c: c.delete_room("gone"), str),
                await over_mcp(session, "rooms", {"action": "delete", "room": "gone"}, str),
            )
            unnamed = (
                await over_grpc(client, lambda c: c.create_room(""), str),
                await over_mcp(session, "rooms", {"action": "create"}, str),
            )
            token = await over_mcp(
                session, "rooms", {"action": "token", "room": "doors", "identity": "eve"}, dict
            )
        client.delete_room("doors")
    assert listed[0] == listed[1] and "doors" in (listed[0][0] or [])
    assert (
        unknown[0] == unknown[1] and isinstance(unknown[0][1], Failure) and unknown[0][1].code == "NOT_FOUND"
    )
    assert unnamed[0] == unnamed[1] and unnamed[0][1] == Failure(
        "INVALID_ARGUMENT", "no room name given", "give the room name"
    )
    answer, error = token
    assert error is None and answer["identity"] == "eve" and answer["token"]


# -- faults: a second daemon, pointed by its user file at what is wrong ---------------------------------


@pytest.fixture(scope="module")
def faults_daemon() -> Iterator[DaemonHandle]:
    for handle in daemon_handle():
        handle.start()
        yield handle


def point_at(handle: DaemonHandle, settings: dict[str, str]) -> None:
    """The daemon's user file says ``settings`` (and nothing else about LiveKit), read at once."""
    handle.user_file.write_text("".join(f"{k}={v}\n" for k, v in settings.items()))
    with handle.client() as client:
        client.reload_config()


def test_a_wrong_secret_is_refused_naming_the_key_pair(
    faults_daemon: DaemonHandle, livekit: LiveKitServer
) -> None:
    point_at(
        faults_daemon,
        {
            "LIVEKIT_URL": livekit.url,
            "LIVEKIT_API_KEY": livekit.api_key,
            "LIVEKIT_API_SECRET": "not-the-secret-0123456789abcdef",
        },
    )
    done = faults_daemon.ctl("room", "list")
    assert done.returncode == NO_PERMISSION, done.stderr
    assert f"the LiveKit server at {livekit.url} refused the API key and secret" in done.stderr
    assert "LIVEKIT_API_KEY and LIVEKIT_API_SECRET" in done.stderr
    assert faults_daemon.ctl("status").returncode == 0


def test_no_server_is_unavailable_saying_how_to_start_one(faults_daemon: DaemonHandle) -> None:
    closed = free_port()
    point_at(faults_daemon, {"VOICEMODE_LIVEKIT_PORT": str(closed)})  # the supervised server, not running
    done = faults_daemon.ctl("room", "create", "lobby")
    assert done.returncode == UNAVAILABLE, done.stderr
    assert f"no LiveKit server answers at ws://127.0.0.1:{closed}" in done.stderr
    assert "voicemodectl service start livekit" in done.stderr

    point_at(
        faults_daemon,
        {"LIVEKIT_URL": f"ws://127.0.0.1:{closed}", "LIVEKIT_API_KEY": "k", "LIVEKIT_API_SECRET": "s"},
    )
    code, error = ctl_json(faults_daemon, "room", "list")
    assert code == UNAVAILABLE and error["error"]["code"] == "UNAVAILABLE"
    assert "LIVEKIT_URL" in error["error"]["hint"]
    assert faults_daemon.ctl("status").returncode == 0


def _seconds(iso: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()

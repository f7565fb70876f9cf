"""Rooms without a server: names and identities checked, the token rules, what a closed port or a
missing key says, and that the daemon loads no LiveKit SDK until a room is used."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from livekit.api import TokenVerifier

from voicemoded.api.errors import FailedPrecondition, InvalidArgument, Unavailable, VoicemodeError
from voicemoded.app.doors import GRPC, MCP
from voicemoded.app.rooms import DEFAULT_TTL, MAX_TTL, Rooms
from voicemoded.livekit.credentials import LiveKitAccess
from voicemoded.livekit.rooms import MAX_NAME_CHARS, RoomClient, check_display_name, check_name
from voicemoded.testing.ports import free_port

KEY, SECRET = "APIunittestkey", "a-secret-only-these-tests-know-0123456789"


def access(url: str = "ws://127.0.0.1:7880", *, managed: bool = True, key: str = KEY) -> LiveKitAccess:
    return LiveKitAccess(url=url, api_key=key, api_secret=SECRET, managed=managed)


def rooms(url: str = "ws://127.0.0.1:7880", *, managed: bool = True) -> Rooms:
    return Rooms(lambda: access(url, managed=managed))


@pytest.mark.parametrize(
    "name", ["lobby", "a", "Room-1", "team.standup_2", "alice@example.com", "x:y+z", "9" * MAX_NAME_CHARS]
)
def test_names_livekit_and_a_command_line_both_take_pass(name: str) -> None:
    assert check_name(name) == name
    assert check_name(name, "identity") == name


@pytest.mark.parametrize(
    ("name", "says"),
    [
        ("", "no room name given"),
        ("-rm", "invalid room name"),
        (".hidden", "invalid room name"),
        ("two words", "invalid room name"),
        ("room/../x", "invalid room name"),
        ("tab\there", "invalid room name"),
        ("é", "invalid room name"),
        ("x" * (MAX_NAME_CHARS + 1), "invalid room name"),
    ],
)
def test_other_names_are_the_callers_error_naming_the_field(name: str, says: str) -> None:
    with pytest.raises(InvalidArgument, match=says) as caught:
        check_name(name)
    assert caught.value.fields == {"field": "room"} and caught.value.hint
    with pytest.raises(InvalidArgument, match="identity") as caught:
        check_name(name, "identity")
    assert caught.value.fields == {"field": "identity"}


def test_a_display_name_is_plain_text_of_bounded_length() -> None:
    assert check_display_name("Ada Lovelace — éé") == "Ada Lovelace — éé"
    assert check_display_name("") == ""
    for bad in ("line\nbreak", "bell\x07", "x" * 129):
        with pytest.raises(InvalidArgument, match="display name"):
            check_display_name(bad)


def test_a_token_carries_the_identity_the_room_the_join_grant_and_its_expiry() -> None:
    before = time.time()
    token = rooms().token("lobby", "alice", GRPC, name="Alice", ttl=600)
    claims = TokenVerifier(KEY, SECRET).verify(token.token)
    assert (claims.identity, claims.name) == ("alice", "Alice")
    assert claims.video is not None
    assert (claims.video.room, claims.video.room_join) == ("lobby", True)
    assert before + 600 - 2 <= token.expires_at <= time.time() + 600 + 1
    assert (token.url, token.room, token.identity, token.name) == (
        "ws://127.0.0.1:7880",
        "lobby",
        "alice",
        "Alice",
    )
    with pytest.raises(Exception, match=r"[Ss]ignature"):
        TokenVerifier(KEY, "another-secret-entirely-0123456789").verify(token.token)


def test_a_token_lives_an_hour_unless_asked_and_never_more_than_a_day() -> None:
    for ttl in (None, 0):
        token = rooms().token("lobby", "bob", MCP, ttl=ttl)
        assert abs(token.expires_at - (time.time() + DEFAULT_TTL)) <= 2
    assert abs(rooms().token("lobby", "bob", MCP, ttl=MAX_TTL).expires_at - (time.time() + MAX_TTL)) <= 2
    for ttl in (MAX_TTL + 1, -5, 1e12):
        with pytest.raises(InvalidArgument, match="ttl") as caught:
            rooms().token("lobby", "bob", MCP, ttl=ttl)
        assert "24 hours" in caught.value.hint


def test_a_token_checks_its_names_before_signing() -> None:
    with pytest.raises(InvalidArgument, match="no identity given"):
        rooms().token("lobby", "", GRPC)
    with pytest.raises(InvalidArgument, match="invalid room name"):
        rooms().token("bad room", "bob", GRPC)
    with pytest.raises(InvalidArgument, match="display name"):
        rooms().token("lobby", "bob", GRPC, name="\x1b[31mred")


async def test_room_limits_are_checked_before_the_server_is_asked() -> None:
    # The URL is a closed port: reaching it would be UNAVAILABLE, so INVALID_ARGUMENT proves nothing was sent.
    closed = rooms(f"ws://127.0.0.1:{free_port()}")
    with pytest.raises(InvalidArgument, match="empty_timeout"):
        await closed.create("lobby", empty_timeout=-1)
    with pytest.raises(InvalidArgument, match="max_participants"):
        await closed.create("lobby", max_participants=10**6)
    with pytest.raises(InvalidArgument, match="invalid room name"):
        await closed.delete("no such/room")


@pytest.mark.parametrize("managed", [True, False])
async def test_a_closed_port_is_unavailable_with_what_to_do(managed: bool) -> None:
    url = f"ws://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(Unavailable, match=f"no LiveKit server answers at {url}") as caught:
        await rooms(url, managed=managed).list()
    assert time.monotonic() - started < 3, "a refused connection is not retried"
    hint = caught.value.hint
    assert ("voicemodectl service start livekit" in hint) if managed else ("LIVEKIT_URL" in hint)
    for call in (lambda r: r.create("lobby"), lambda r: r.delete("lobby"), lambda r: r.participants("lobby")):
        with pytest.raises(Unavailable):
            await call(rooms(url, managed=managed))


async def test_a_url_that_is_no_livekit_url_or_a_missing_key_is_a_setting_to_fix() -> None:
    with pytest.raises(FailedPrecondition, match="LIVEKIT_URL") as caught:
        await Rooms(lambda: access("localhost:7880", managed=False)).list()
    assert caught.value.fields == {"key": "LIVEKIT_URL"}
    with pytest.raises(FailedPrecondition, match="no LiveKit API key"):
        RoomClient(access(key="")).token("lobby", "bob", ttl=60)


async def test_the_credentials_are_read_at_each_call() -> None:
    seen: list[str] = []
    urls = iter([f"ws://127.0.0.1:{free_port()}", "ws://example.invalid:1"])

    def current() -> LiveKitAccess:
        seen.append(next(urls))
        return access(seen[-1])

    source = Rooms(current)
    with pytest.raises(VoicemodeError):
        await source.list()
    assert source.token("lobby", "bob", GRPC).url == "ws://example.invalid:1"
    assert len(seen) == 2


def test_the_daemon_loads_no_livekit_sdk_until_a_room_is_used(tmp_path: Path) -> None:
    code = f"""
import asyncio, sys, time
from pathlib import Path
from voicemoded.__main__ import build_app
from voicemoded.api.paths import Paths
from voicemoded.app.daemon import DaemonProcess
from voicemoded.config import ConfigManager
from voicemoded.conversation.journal import Journal
from voicemoded.events import EventBus
from voicemoded.health import HealthRegistry
import voicemoded.rpc.rooms_service, voicemoded.mcp.names
paths = Paths.from_env({{"VOICEMODE_BASE_DIR": {str(tmp_path)!r}}}, socket=Path({str(tmp_path)!r}) / "s")
events = EventBus()
config = ConfigManager(paths, {{}}, events)
config.load()
process = DaemonProcess(paths.socket, paths.base, time.time(), HealthRegistry(), lambda g: None, asyncio.Event())
app = build_app(paths, config, events, Journal(paths.conversations), process)
before = sorted(m for m in sys.modules if m.split(".")[0] in ("livekit", "aiohttp", "jwt"))
from voicemoded.app.doors import GRPC
app.rooms.token("lobby", "bob", GRPC)  # a room is used: now the SDK loads
after = "livekit.api" in sys.modules
print(before, after)
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines()[-1] == "[] True"

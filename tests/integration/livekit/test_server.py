"""The daemon supervises the real livekit-server: started from its generated config, on loopback only,
its secret in no command line, environment or log, the generated key accepted and a wrong one refused,
media flowing between two participants, and a killed server brought back by the supervisor, soon enough
for a turn in one of its rooms to go on."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import psutil
import pytest
from livekit import api

from voicemoded.api.paths import Paths
from voicemoded.config import Settings
from voicemoded.livekit.credentials import LiveKitAccess, livekit_access, read_keys
from voicemoded.testing.daemon import DaemonHandle, daemon_handle
from voicemoded.testing.endpoint import SpeechEndpoint
from voicemoded.testing.livekit import Person, absent_reason, free_udp_range, running_livekit, server_binary
from voicemoded.testing.ports import free_port
from voicemoded.testing.sounds import tone

BINARY = server_binary()
TONE_S = 1.0
pytestmark = pytest.mark.skipif(BINARY is None, reason=absent_reason())


def ctl_json(daemon: DaemonHandle, *args: str) -> dict:
    result = daemon.ctl("--json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonHandle]:
    """One daemon for the module, its livekit-server on free ports, started through the CLI; its
    speech (for turns in a room) is the test endpoint's tone."""
    first, last = free_udp_range()
    endpoint = SpeechEndpoint(tone_seconds=TONE_S)
    for handle in daemon_handle():
        handle.start(
            {
                **endpoint.env(),
                "VOICEMODE_LIVEKIT_SERVER_PATH": str(BINARY),
                "VOICEMODE_LIVEKIT_PORT": str(free_port()),
                "VOICEMODE_LIVEKIT_RTC_PORTS": f"{first}-{last}",
                "VOICEMODE_PIPER_PORT": str(free_port()),
                "VOICEMODE_WHISPER_PORT": str(free_port()),
                # livekit-server would take these over its config file: the daemon keeps them from it.
                "LIVEKIT_KEYS": "devkey: secret",
                "NODE_IP": "203.0.113.9",
            }
        )
        started = ctl_json(handle, "service", "start", "livekit")
        assert started["state"] == "RUNNING", started
        yield handle
    endpoint.close()


def status(daemon: DaemonHandle) -> dict:
    return ctl_json(daemon, "service", "status", "livekit")


def access(daemon: DaemonHandle) -> LiveKitAccess:
    """What the daemon's own room calls use: the key it generated, the URL of its server."""
    port = int(status(daemon)["port"])
    settings = replace(Settings(), livekit_port=port)
    return livekit_access(settings, Paths(base=daemon.base, socket=daemon.socket))


def http_url(lk: LiveKitAccess) -> str:
    return lk.url.replace("ws://", "http://")


async def list_rooms(url: str, key: str, secret: str) -> list[str]:
    client = api.LiveKitAPI(url, key, secret)
    try:
        return [room.name for room in (await client.room.list_rooms(api.ListRoomsRequest())).rooms]
    finally:
        await client.aclose()


def test_the_supervised_server_runs_from_its_config_on_loopback(daemon: DaemonHandle) -> None:
    info = status(daemon)
    assert info["state"] == "RUNNING" and info["backend"] == "livekit-server"
    assert info["url"] == f"ws://127.0.0.1:{info['port']}"
    assert httpx.get(f"http://127.0.0.1:{info['port']}/").text == "OK"
    proc = psutil.Process(int(info["pid"]))
    config = daemon.base / "livekit" / "livekit.yaml"
    assert proc.cmdline() == [str(BINARY), "--config", str(config)]
    assert oct(config.stat().st_mode & 0o777) == "0o600"
    sockets = [c for c in proc.net_connections(kind="inet") if not c.raddr]
    assert sockets, "the server listens somewhere"
    assert {c.laddr.ip for c in sockets} == {"127.0.0.1"}, sockets


def test_the_secret_is_in_no_argv_environment_or_log(daemon: DaemonHandle) -> None:
    _key, secret = read_keys(daemon.base / "livekit" / "keys.yaml")
    proc = psutil.Process(int(status(daemon)["pid"]))
    assert not any(secret in arg for arg in proc.cmdline())
    environment = proc.environ()
    assert not any(secret in value for value in environment.values())
    assert "LIVEKIT_KEYS" not in environment and "NODE_IP" not in environment
    assert secret not in (daemon.base / "livekit" / "livekit.yaml").read_text()
    shown = daemon.ctl("service", "logs", "livekit", "-n", "50")
    assert shown.returncode == 0 and "starting LiveKit server" in shown.stdout
    service_log = (daemon.base / "logs" / "livekit.log").read_text(errors="replace")
    assert secret not in shown.stdout
    assert secret not in service_log and secret not in daemon.log_text()


@pytest.mark.filterwarnings("ignore:The HMAC key is:jwt.warnings.InsecureKeyLengthWarning")
async def test_the_generated_key_works_and_a_wrong_secret_is_refused(daemon: DaemonHandle) -> None:
    lk = access(daemon)
    assert lk.managed
    client = api.LiveKitAPI(http_url(lk), lk.api_key, lk.api_secret)
    try:
        await client.room.create_room(api.CreateRoomRequest(name="kitchen"))
    finally:
        await client.aclose()
    assert "kitchen" in await list_rooms(http_url(lk), lk.api_key, lk.api_secret)
    for key, secret in ((lk.api_key, "w" * len(lk.api_secret)), ("devkey", "secret")):
        with pytest.raises(api.TwirpError) as info:
            await list_rooms(http_url(lk), key, secret)
        assert info.value.status == 401


async def test_audio_flows_between_two_participants(daemon: DaemonHandle) -> None:
    lk = access(daemon)

    def token(identity: str) -> str:
        grants = api.VideoGrants(room_join=True, room="media")
        return api.AccessToken(lk.api_key, lk.api_secret).with_identity(identity).with_grants(grants).to_jwt()

    async with (
        Person(lk.url, token("listener")) as listener,
        Person(lk.url, token("speaker")) as speaker,
        speaker.sounding(),
    ):
        await until(lambda: listener.heard_from("speaker"), "the listener hears the speaker")


async def restarted(daemon: DaemonHandle, before: dict, timeout: float = 20.0) -> dict:
    """The server's status once the supervisor has it running again under a new pid."""
    deadline = time.monotonic() + timeout
    after = before
    while time.monotonic() < deadline:
        after = status(daemon)
        if after["state"] == "RUNNING" and after["pid"] != before["pid"]:
            return after
        await asyncio.sleep(0.1)
    raise AssertionError(f"not running again within {timeout:g} s: {after}")


async def test_a_killed_server_is_restarted_and_keeps_its_key(daemon: DaemonHandle) -> None:
    before = status(daemon)
    os.kill(int(before["pid"]), signal.SIGKILL)
    await restarted(daemon, before)
    lk = access(daemon)
    assert isinstance(await list_rooms(http_url(lk), lk.api_key, lk.api_secret), list)


async def test_the_supervised_server_killed_mid_turn_is_back_before_the_turn_gives_up(
    daemon: DaemonHandle,
) -> None:
    """The daemon's own server dies while a turn listens in its room. The supervisor starts it again
    (same config, same key) within the time the room connection waits for a reconnect, so the turn goes
    on: both sides rejoin the restarted server, the person's answer reaches the turn, and the next
    turn in the room is heard. (A server that stays away longer ends the turn Unavailable: see
    test_transport.py's killed external server.)"""
    before = status(daemon)
    ctl_json(daemon, "room", "create", "fragile")
    minted = ctl_json(daemon, "room", "token", "fragile", "--identity", "person")
    converse = ("--json", "converse", "still there", "--transport", "livekit", "--room", "fragile")
    async with Person(minted["url"], minted["token"]) as person:
        turn = asyncio.create_task(asyncio.to_thread(daemon.ctl, *converse))
        await person.message_heard()
        os.kill(int(before["pid"]), signal.SIGKILL)
        after = await restarted(daemon, before)
        assert after["port"] == before["port"]
        await until(lambda: person.reconnects > 0 and person.connected, "the person is back in the room")
        await until(lambda: daemon.log_events("livekit.reconnected"), "the assistant is back in the room")
        await person.say(tone(1.5, 24_000), 24_000, silence_s=10, hush=turn.done)
        done = await asyncio.wait_for(turn, 30)
    assert done.returncode == 0, (done.stdout, done.stderr)
    result = json.loads(done.stdout)
    assert result["text"] == "hello from the test endpoint", result
    assert result["end_reason"] != "person_left", result
    async with Person(minted["url"], minted["token"]) as again:
        back = await asyncio.to_thread(
            daemon.ctl, "--json", "speak", "back", "--transport", "livekit", "--room", "fragile"
        )
        assert back.returncode == 0, (back.stdout, back.stderr)
        await again.message_heard()
    assert TONE_S - 0.2 < again.voiced_seconds() < TONE_S + 0.2, again.voiced_seconds()


async def until(check: Callable[[], object], what: str, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, f"not within {timeout:g} s: {what}"
        await asyncio.sleep(0.05)


def test_the_key_file_is_private_and_the_one_the_config_names(daemon: DaemonHandle) -> None:
    keys = daemon.base / "livekit" / "keys.yaml"
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    assert oct(keys.parent.stat().st_mode & 0o777) == "0o700"
    assert Path(json.loads((daemon.base / "livekit" / "livekit.yaml").read_text())["key_file"]) == keys


async def test_the_test_server_answers_shares_its_folders_key_and_stops(tmp_path: Path) -> None:
    with running_livekit(tmp_path / "lk") as one, running_livekit(tmp_path / "lk") as two:
        assert (one.api_key, one.api_secret) == (two.api_key, two.api_secret) and one.port != two.port
        assert one.url == f"ws://127.0.0.1:{one.port}" and one.config != two.config
        assert one.access == LiveKitAccess(one.url, one.api_key, one.api_secret, managed=True)
        assert one.api_secret not in repr(one)
        assert await list_rooms(one.http_url, one.api_key, one.api_secret) == []
        first, last = one.rtc_ports
        assert json.loads(one.config.read_text())["rtc"]["port_range_start"] == first < last
    assert one.process.poll() is not None and two.process.poll() is not None

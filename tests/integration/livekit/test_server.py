"""The daemon supervises the real livekit-server: started from its generated config, on loopback only,
its secret in no command line, environment or log, the generated key accepted and a wrong one refused,
media flowing between two participants, and a killed server brought back by the supervisor."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
from collections.abc import Iterator
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
from voicemoded.testing.livekit import absent_reason, free_udp_range, running_livekit, server_binary
from voicemoded.testing.ports import free_port

BINARY = server_binary()
pytestmark = pytest.mark.skipif(BINARY is None, reason=absent_reason())


def ctl_json(daemon: DaemonHandle, *args: str) -> dict:
    result = daemon.ctl("--json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def daemon() -> Iterator[DaemonHandle]:
    """One daemon for the module, its livekit-server on free ports, started through the CLI."""
    first, last = free_udp_range()
    for handle in daemon_handle():
        handle.start(
            {
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
    import numpy as np
    from livekit import rtc

    lk = access(daemon)

    def token(identity: str) -> str:
        grants = api.VideoGrants(room_join=True, room="media")
        return api.AccessToken(lk.api_key, lk.api_secret).with_identity(identity).with_grants(grants).to_jwt()

    speaker, listener = rtc.Room(), rtc.Room()
    heard = asyncio.Event()

    async def listen(track: rtc.Track) -> None:
        async for event in rtc.AudioStream(track, sample_rate=48000, num_channels=1):
            if np.abs(np.frombuffer(event.frame.data, dtype=np.int16)).max() > 1000:
                heard.set()
                return

    tasks: list[asyncio.Task[None]] = []
    listener.on("track_subscribed", lambda track, *_: tasks.append(asyncio.create_task(listen(track))))
    await listener.connect(lk.url, token("listener"))
    await speaker.connect(lk.url, token("speaker"))
    try:
        source = rtc.AudioSource(48000, 1)
        track = rtc.LocalAudioTrack.create_audio_track("voice", source)
        await speaker.local_participant.publish_track(track)
        tone = (np.sin(np.arange(480) * 2 * np.pi * 440 / 48000) * 10000).astype(np.int16)
        deadline = time.monotonic() + 10
        while not heard.is_set() and time.monotonic() < deadline:
            frame = rtc.AudioFrame.create(48000, 1, 480)
            np.frombuffer(frame.data, dtype=np.int16)[:] = tone
            await source.capture_frame(frame)
        assert heard.is_set(), "the listener received no audio through the server"
    finally:
        for task in tasks:
            task.cancel()
        await speaker.disconnect()
        await listener.disconnect()


async def test_a_killed_server_is_restarted_and_keeps_its_key(daemon: DaemonHandle) -> None:
    before = status(daemon)
    os.kill(int(before["pid"]), signal.SIGKILL)
    deadline = time.monotonic() + 20
    after = before
    while time.monotonic() < deadline:
        after = status(daemon)
        if after["state"] == "RUNNING" and after["pid"] != before["pid"]:
            break
        await asyncio.sleep(0.1)
    assert after["state"] == "RUNNING" and after["pid"] != before["pid"], after
    lk = access(daemon)
    assert isinstance(await list_rooms(http_url(lk), lk.api_key, lk.api_secret), list)


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

"""The web door's JSON API over HTTP: a real voicemode-web process in front of a real daemon.

One daemon serves the module: its only speech endpoint is the test endpoint (a tone for speech, one
fixed sentence for every transcript) on virtual audio devices, so a turn costs no models; the scripted
person answers into the virtual microphone with Piper's voice, so the endpointer hears real speech.
httpx is the client, as a page's fetch would be.
"""

from __future__ import annotations

import asyncio
import base64
import json
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.integration.web.conftest import WebDoor, running_door, web_token
from voicemoded.audio.format import AudioFormat
from voicemoded.livekit.rooms import RoomClient
from voicemoded.testing.daemon import DaemonHandle, daemon_handle
from voicemoded.testing.endpoint import SpeechEndpoint
from voicemoded.testing.livekit import LiveKitServer, absent_reason, running_livekit, server_binary
from voicemoded.testing.person import Voice
from voicemoded.testing.ports import free_port
from voicemoded.testing.rig import VirtualAudioRig

pytestmark = pytest.mark.audio

ANSWER = "Yes, please open the settings file."
TRANSCRIPT = "yes please open the settings file"
"""What the test endpoint transcribes every answer as."""
USER_FILE = "VOICEMODE_TTS_SPEED=1.25\n"
STAGES = [
    "speaking",
    "spoken",
    "listening",
    "speech_start",
    "speech_end",
    "transcribing",
    "transcript",
    "done",
]


@dataclass(frozen=True)
class Web:
    daemon: DaemonHandle
    audio: VirtualAudioRig
    endpoint: SpeechEndpoint
    door: WebDoor
    web_port: int
    """Where the daemon's own ``web`` service listens when started."""

    def auth(self, token: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.door.token if token is None else token}"}

    def get(self, path: str, **kw: Any) -> httpx.Response:
        return httpx.get(self.door.url + path, timeout=30, **kw)

    def post(
        self, path: str, token: str | None = None, headers: dict[str, str] | None = None, **kw: Any
    ) -> httpx.Response:
        return httpx.post(
            self.door.url + path, headers={**self.auth(token), **(headers or {})}, timeout=60, **kw
        )


@pytest.fixture(scope="module")
def web() -> Iterator[Web]:
    web_port = free_port()
    audio = VirtualAudioRig().start()
    endpoint = SpeechEndpoint(text=TRANSCRIPT)
    env = {
        **endpoint.env(),
        "VOICEMODE_SAVE_AUDIO": "true",
        "VOICEMODE_WEB_PORT": str(web_port),
        "VOICEMODE_LIVEKIT_PORT": str(free_port()),  # the supervised server, never started: no LiveKit
    }
    try:
        for handle in daemon_handle():
            handle.env.update(audio.env)
            handle.base.mkdir(mode=0o700)
            handle.user_file.write_text(USER_FILE)
            handle.start(env)
            with running_door(handle) as door:
                yield Web(handle, audio, endpoint, door, web_port)
    finally:
        endpoint.close()
        audio.stop()


def events_of(response: httpx.Response) -> Iterator[tuple[str, Any]]:
    """The (event, data) pairs of an SSE response, as they arrive."""
    name = ""
    for line in response.iter_lines():
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: "):
            yield name, json.loads(line.removeprefix("data: "))


def error_of(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert set(body) == {"error"} and body["error"]["message"], body
    return dict(body["error"])


def test_overview_lists_services_providers_and_devices(web: Web) -> None:
    answer = web.get("/api/overview")
    assert answer.status_code == 200, answer.text
    overview = answer.json()
    services = {s["name"]: s for s in overview["services"]}
    assert {"whisper", "piper", "kokoro", "livekit", "web"} <= set(services)
    assert services["web"]["state"] == "stopped" and services["web"]["autostart"] is False
    assert services["web"]["pid"] is None and services["web"]["port"] == web.web_port
    assert overview["daemon"]["pid"] == web.daemon.process.pid  # type: ignore[union-attr]
    providers = {(p["kind"], p["url"]) for p in overview["providers"]}
    assert {("tts", web.endpoint.url), ("stt", web.endpoint.url)} <= providers, overview["providers"]
    assert {"inputs", "outputs", "input_error", "output_error"} <= set(overview["devices"])
    assert overview["devices"]["inputs"] or overview["devices"]["input_error"]
    assert overview["livekit"]["running"] is False and "voicemodectl service" in overview["livekit"]["hint"]


def test_config_says_where_each_value_came_from(web: Web) -> None:
    settings = {s["key"]: s for s in web.get("/api/config").json()["settings"]}
    assert settings["VOICEMODE_SAVE_AUDIO"]["value"] == "true"
    assert settings["VOICEMODE_SAVE_AUDIO"]["origin"] == "daemon-environment"
    assert settings["VOICEMODE_TTS_SPEED"]["value"] == "1.25"
    assert settings["VOICEMODE_TTS_SPEED"]["origin"] == f"user: {web.daemon.user_file}:1"
    assert settings["VOICEMODE_KOKORO_PORT"]["origin"] == "default"
    assert settings["OPENAI_API_KEY"]["secret"] is True


def test_state_changing_requests_need_the_token(web: Web) -> None:
    missing = httpx.post(f"{web.door.url}/api/services/web/start", timeout=10)
    assert missing.status_code == 401 and error_of(missing)["code"] == "token_missing"
    assert "voicemodectl web url" in error_of(missing)["hint"]
    wrong = web.post("/api/services/web/start", token=web.door.token[:-2] + "xx")
    assert wrong.status_code == 403 and error_of(wrong)["code"] == "token_wrong"
    for path in ("/api/talk", "/api/converse", "/api/services/web/stop"):
        assert httpx.post(web.door.url + path, timeout=10).status_code == 401, path
    assert web.get("/api/overview").status_code == 200, "reading on loopback needs no token"
    services = {s["name"]: s for s in web.get("/api/overview").json()["services"]}
    assert services["web"]["state"] == "stopped", "a refused start started nothing"


def test_a_foreign_host_or_origin_is_refused(web: Web) -> None:
    rebound = web.get("/api/overview", headers={"Host": "attacker.example"})
    assert rebound.status_code == 421 and error_of(rebound)["code"] == "host_not_allowed"
    other = web.get("/api/overview", headers={"Origin": "http://attacker.example"})
    assert other.status_code == 403 and error_of(other)["code"] == "cross_origin"
    other_port = web.post("/api/talk", headers={"Origin": "http://127.0.0.1:1"}, json={})
    assert other_port.status_code == 403
    own = web.get("/api/history", headers={"Origin": web.door.url})
    assert own.status_code == 200 and "access-control-allow-origin" not in own.headers
    assert web.get("/healthz", headers={"Host": "localhost:1"}).json() == {"ok": True}


def test_an_oversize_body_is_refused(web: Web) -> None:
    big = b"{" + b" " * (64 * 1024) + b"}"
    refused = web.post("/api/talk", content=big, headers={"Content-Type": "application/json"})
    assert refused.status_code == 413 and error_of(refused)["code"] == "too_large"

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds while reading
        yield b'{"message": "'
        for _ in range(80):
            yield b"x" * 1024

    streamed = httpx.post(
        web.door.url + "/api/converse",
        content=chunks(),
        headers={**web.auth(), "Content-Type": "application/json"},
        timeout=10,
    )
    assert streamed.status_code == 413
    not_json = web.post("/api/talk", content=b"room=x", headers={"Content-Type": "text/plain"})
    assert not_json.status_code == 415


def test_unknown_things_are_json_errors_in_words(web: Web) -> None:
    for path in ("/api/nothing", "/api/services/nothing/logs", "/api/recordings/20990101-000000-beef"):
        answer = web.get(path)
        assert answer.status_code == 404 and error_of(answer)["code"] == "not_found", path
    assert "known:" in error_of(web.get("/api/services/nothing/logs"))["message"]
    bad = web.get("/api/history?recent=lots")
    assert bad.status_code == 400 and error_of(bad)["code"] == "invalid_argument"


def test_a_turn_streams_its_stages_and_lands_in_history_with_its_recording(web: Web, voice: Voice) -> None:
    speech = voice.say(ANSWER)
    stages: list[dict[str, Any]] = []
    finished: list[str] = []
    watching = threading.Event()

    def watch() -> None:
        with httpx.stream("GET", web.door.url + "/api/events", timeout=60) as response:
            assert response.headers["content-type"].startswith("text/event-stream")
            watching.set()
            for name, data in events_of(response):
                assert name == "daemon"
                if data["kind"] == "conversation.stage":
                    stages.append(data["fields"])
                if data["kind"] == "conversation.turn":
                    finished.append(data["fields"]["turn_id"])
                if finished and stages and stages[-1]["stage"] in ("done", "error"):
                    return  # the page hangs up: the door cancels its watch

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    assert watching.wait(10)
    turn: list[str] = []
    result: dict[str, Any] = {}
    players: list[threading.Thread] = []
    request = {"message": "Shall I open it?", "transport": "local"}
    with httpx.stream(
        "POST", web.door.url + "/api/converse", json=request, headers=web.auth(), timeout=60
    ) as response:
        assert response.status_code == 200
        for name, data in events_of(response):
            if name == "turn":
                turn.append(data["kind"])
                if data["kind"] == "listening":
                    players.append(_say(web.audio, speech.pcm, speech.format))
            elif name == "result":
                result = data
            else:
                pytest.fail(f"the turn failed: {data}")
    watcher.join(10)
    assert turn[-1] == "done" and "listening" in turn and "transcript" in turn
    assert result["text"] == TRANSCRIPT and result["end_reason"] == "silence", result
    assert result["recording"] is True and result["timings"]["total"] > 0

    assert finished == [result["turn_id"]]
    ours = [s for s in stages if s["turn_id"] == result["turn_id"]]
    assert [s["stage"] for s in ours] == STAGES, stages
    assert ours[-2]["text"] == ours[-1]["text"] == result["text"]

    turns = web.get("/api/history?recent=5").json()["turns"]
    newest = turns[0]
    assert newest["turn_id"] == result["turn_id"] and newest["recording"] is True
    assert newest["message"] == "Shall I open it?" and newest["text"] == result["text"]
    assert newest["timings"]["time_to_first_audio"] > 0 and newest["timings"]["last_voiced_to_text"] > 0
    audio = web.get(f"/api/recordings/{newest['turn_id']}")
    assert audio.status_code == 200 and audio.headers["content-type"] == "audio/wav"
    assert audio.content[:4] == b"RIFF" and len(audio.content) > 16_000  # about a second of speech
    for player in players:
        player.join(10)


def test_a_page_that_hangs_up_cancels_its_turn(web: Web) -> None:
    request = {"message": "This one is cut short.", "transport": "local"}
    with httpx.stream(
        "POST", web.door.url + "/api/converse", json=request, headers=web.auth(), timeout=60
    ) as response:
        for name, data in events_of(response):
            if name == "turn" and data["kind"] == "listening":
                break  # the page closes: the door hangs up the daemon's call
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        newest = web.get("/api/history?recent=1").json()["turns"][0]
        if newest["message"] == request["message"]:
            break
        time.sleep(0.05)
    assert newest["message"] == request["message"] and newest["end_reason"] == "cancelled", newest
    overview = web.get("/api/overview")
    assert overview.status_code == 200, "the daemon goes on answering"


def _say(audio: VirtualAudioRig, pcm: bytes, fmt: AudioFormat) -> threading.Thread:
    thread = threading.Thread(target=lambda: asyncio.run(audio.play_into_mic(pcm, fmt)), daemon=True)
    thread.start()
    return thread


def test_the_daemon_runs_the_door_as_service_web_and_restarts_it(web: Web) -> None:
    started = web.post("/api/services/web/start")
    assert started.status_code == 200, started.text
    first = started.json()["service"]
    assert first["state"] == "running" and first["pid"] > 0
    probe = httpx.get(f"http://127.0.0.1:{web.web_port}/healthz", timeout=5)
    assert probe.json() == {"ok": True}
    with httpx.stream("GET", web.door.url + "/api/services/web/logs?lines=20", timeout=10) as response:
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = (data["line"] for name, data in events_of(response) if name == "log")
        assert any(f"serving http://127.0.0.1:{web.web_port}/" in line for line in lines)
    restarted = web.post("/api/services/web/restart").json()["service"]
    assert restarted["state"] == "running" and restarted["pid"] not in (None, first["pid"])
    # The supervised door reaches the same daemon and takes the same token.
    overview = httpx.get(f"http://127.0.0.1:{web.web_port}/api/overview", timeout=10).json()
    assert {s["name"]: s["pid"] for s in overview["services"]}["web"] == restarted["pid"]
    stopped = web.post("/api/services/web/stop").json()["service"]
    assert stopped["state"] == "stopped" and stopped["pid"] is None


def test_web_url_prints_an_address_whose_token_the_door_takes(web: Web) -> None:
    done = web.daemon.ctl("--json", "web", "url")
    assert done.returncode == 0, done.stderr
    printed = json.loads(done.stdout)
    assert printed["url"].startswith(f"http://127.0.0.1:{web.web_port}/#token=")
    token = printed["url"].partition("#token=")[2]
    assert token == web_token(web.daemon, web.web_port)
    token_file = Path(printed["token_file"])
    assert token_file.stat().st_mode & 0o777 == 0o600 and token_file.parent.stat().st_mode & 0o777 == 0o700
    answer = web.post("/api/services/nothing/start", token=token)
    assert answer.status_code == 404, "the token was taken: the request reached the daemon"


def test_talk_without_livekit_says_so(web: Web) -> None:
    answer = web.post("/api/talk", json={})
    assert answer.status_code == 503, answer.text
    error = error_of(answer)
    assert error["code"] == "livekit_unavailable" and error["message"] == "no LiveKit server is running"
    assert "voicemodectl service start livekit" in error["hint"]


@pytest.fixture(scope="module")
def livekit() -> Iterator[LiveKitServer]:
    if server_binary() is None:
        pytest.skip(absent_reason())
    with tempfile.TemporaryDirectory(prefix="vm-lk-") as folder, running_livekit(Path(folder)) as server:
        yield server


def test_talk_with_livekit_gives_a_join_token_for_the_room(web: Web, livekit: LiveKitServer) -> None:
    web.daemon.user_file.write_text(
        USER_FILE
        + f"LIVEKIT_URL={livekit.url}\nLIVEKIT_API_KEY={livekit.api_key}\nLIVEKIT_API_SECRET={livekit.api_secret}\n"
    )
    with web.daemon.client() as client:
        client.reload_config()
    answer = web.post("/api/talk", json={})
    assert answer.status_code == 200, answer.text
    access = answer.json()
    assert access["url"] == livekit.url and access["room"] == "voicemode-web"
    assert access["identity"].startswith("person-")
    payload = access["token"].split(".")[1]
    claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    assert claims["sub"] == access["identity"]
    assert claims["video"]["room"] == "voicemode-web" and claims["video"]["roomJoin"] is True

    rooms = asyncio.run(RoomClient(livekit.access).list())
    assert "voicemode-web" in {r.name for r in rooms}
    overview = web.get("/api/overview").json()
    assert overview["livekit"] == {"configured": True, "running": True, "url": livekit.url, "hint": ""}


def test_no_daemon_is_503_in_words() -> None:
    for handle in daemon_handle():  # never started: nothing answers on its socket
        with running_door(handle) as door:
            started = time.monotonic()
            for path in ("/api/overview", "/api/history", "/api/events", "/api/config"):
                answer = httpx.get(door.url + path, timeout=10)
                assert answer.status_code == 503, (path, answer.text)
                assert error_of(answer) == {
                    "code": "daemon_not_running",
                    "message": "the voicemode daemon is not running",
                    "hint": "voicemodectl daemon start",
                }
            assert time.monotonic() - started < 3, "no waiting for a daemon that is not there"
            assert httpx.get(door.url + "/healthz", timeout=5).json() == {"ok": True}

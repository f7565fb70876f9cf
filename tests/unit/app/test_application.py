"""The application layer's own rules, on an App built by the real composition root (nothing started).

Each door's agreement with the others is held by tests/integration/daemon/test_doors_agree.py; here are
the rules themselves: what the modes fix, one kind check, defaults resolved from the caller's settings,
what the assistant's door may change, what a settings change rebuilds, where the plugins' parts and
the webhooks reach, and that building the App loads no audio stack (nor the MCP SDK, nor an HTTP client).
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import pytest

from tests.unit.providers.faultserver import FaultServer
from voicemoded.__main__ import MoreServices, build_app
from voicemoded.api.errors import InvalidArgument, PermissionDenied
from voicemoded.api.paths import Paths
from voicemoded.app.application import App
from voicemoded.app.daemon import DaemonProcess
from voicemoded.app.doors import GRPC, MCP
from voicemoded.config import Caller, ConfigManager, Settings
from voicemoded.conversation.journal import Journal
from voicemoded.conversation.params import TurnParams
from voicemoded.conversation.results import TurnEvent, TurnResult
from voicemoded.events import EventBus
from voicemoded.health import HealthRegistry
from voicemoded.plugins.loaded import Plugins
from voicemoded.supervisor.spec import ServiceSpec


class RecordingTurns:
    """A converse loop that records what it was asked and answers at once."""

    def __init__(self) -> None:
        self.asked: list[tuple[TurnParams, str, str]] = []

    async def turn(
        self, params: TurnParams, emit: Any, *, mode: str, client: str = "", cwd: str = ""
    ) -> TurnResult:
        self.asked.append((params, mode, client))
        result = TurnResult("t1", text="ok")
        emit(TurnEvent("done", 0.0, time.time(), result=result))
        return result


Build = Callable[..., App]


@pytest.fixture
async def make_app(tmp_path: Path) -> AsyncIterator[Build]:
    apps: list[App] = []

    def build(
        env: Mapping[str, str] | None = None,
        *,
        turns: RecordingTurns | None = None,
        more_services: tuple[MoreServices, ...] = (),
        plugins: Plugins | None = None,
    ) -> App:
        paths = Paths.from_env({"VOICEMODE_BASE_DIR": str(tmp_path / "base")}, socket=tmp_path / "s.sock")
        paths.ensure()
        events = EventBus()
        config = ConfigManager(paths, dict(env or {}), events)
        config.load()
        process = DaemonProcess(
            paths.socket, paths.base, time.time(), HealthRegistry(), lambda grace: None, asyncio.Event()
        )
        recording = turns or RecordingTurns()
        app = build_app(
            paths, config, events, Journal(paths.conversations), process,
            plugins=plugins, more_services=more_services, turns=lambda: recording,
        )  # fmt: skip
        apps.append(app)
        return app

    yield build
    for app in apps:
        await app.aclose()


async def _run(app: App, given: dict[str, Any], mode: Any, caller: Caller | None = None) -> None:
    events = app.conversations.turn(given, caller or Caller(), MCP, mode)
    async with contextlib.aclosing(events):
        kinds = [e.kind async for e in events]
    assert kinds == ["done"]


async def test_speak_never_waits_and_listen_never_speaks(make_app: Build) -> None:
    turns = RecordingTurns()
    app = make_app(turns=turns)
    await _run(app, {"message": "hi", "wait_for_response": True}, "speak")
    await _run(app, {"message": "hi", "skip_tts": False, "wait_for_response": False}, "listen")
    await _run(app, {"message": "hi", "wait_for_response": False}, "converse")
    asked = [(p.wait_for_response, p.skip_tts, mode) for p, mode, _ in turns.asked]
    assert asked == [(False, False, "speak"), (True, True, "listen"), (False, False, "converse")]
    # A caller that names no client is logged under the door it came through.
    assert {client for _, _, client in turns.asked} == {"mcp"}


async def test_a_turn_takes_the_callers_settings_and_refuses_what_it_cannot_honour(make_app: Build) -> None:
    turns = RecordingTurns()
    app = make_app({"VOICEMODE_VOICES": "af_sky"}, turns=turns)
    project = Caller(env={"VOICEMODE_VOICES": "am_adam", "VOICEMODE_TTS_SPEED": "1.5"}, client="claude")
    await _run(app, {"message": "hi"}, "converse", project)
    params, _, client = turns.asked[0]
    assert (params.voice, params.speed, client) == ("am_adam", 1.5, "claude")
    with pytest.raises(InvalidArgument, match="speed"):
        await _run(app, {"message": "hi", "speed": 9.0}, "converse")
    assert len(turns.asked) == 1, "a refused turn never reaches the loop"


async def test_the_kind_is_checked_once_with_one_error(make_app: Build) -> None:
    app = make_app()
    with pytest.raises(InvalidArgument) as listed:
        app.providers.list("loud")
    with pytest.raises(InvalidArgument) as probed:
        await app.providers.probe("loud")
    with pytest.raises(InvalidArgument) as models:
        await app.services.models("loud")
    expected = ("unknown kind 'loud'", "use stt, tts or leave it empty")
    assert {(e.value.message, e.value.hint) for e in (listed, probed, models)} == {expected}


async def test_synthesis_takes_the_default_voice_and_speed_once(make_app: Build) -> None:
    async with FaultServer() as server:
        app = make_app({"VOICEMODE_TTS_BASE_URLS": server.url, "VOICEMODE_VOICES": "af_nova"})
        for caller, voice in ((Caller(), ""), (Caller(env={"VOICEMODE_TTS_SPEED": "1.5"}), "am_adam")):
            stream = app.providers.synthesize("hello there", caller, voice=voice)
            async with contextlib.aclosing(stream):
                chunks = [item async for item in stream]
            assert len(chunks) > 1
        sent = [r.json() for r in server.posts() if r.path.endswith("/audio/speech")]
    assert [(body["voice"], body.get("speed")) for body in sent] == [("af_nova", None), ("am_adam", 1.5)]


async def test_synthesis_is_refused_before_any_endpoint_is_asked(make_app: Build) -> None:
    async with FaultServer() as server:
        app = make_app({"VOICEMODE_TTS_BASE_URLS": server.url})
        with pytest.raises(InvalidArgument, match="not streamed"):
            app.providers.synthesize("hello", Caller(), stream_format="mp3")
        with pytest.raises(InvalidArgument, match="nothing to speak"):
            app.providers.synthesize("\u200b", Caller())
        with pytest.raises(InvalidArgument, match="speed"):
            app.providers.synthesize("hello", Caller(), speed=0.1)
        assert server.posts() == []


def test_the_assistants_door_may_not_redirect_audio_unless_the_person_allowed_it(make_app: Build) -> None:
    app = make_app()
    config = app.configuration
    url = "http://127.0.0.1:9/v1"
    for write in (
        lambda: config.set("VOICEMODE_TTS_BASE_URLS", url, "user", Caller(), MCP),
        lambda: config.unset("OPENAI_API_KEY", "user", Caller(), MCP),
    ):
        with pytest.raises(PermissionDenied, match="cannot be changed through the assistant"):
            write()
    assert config.set("VOICEMODE_VOICES", "nova", "user", Caller(), MCP).entry.value == "nova"
    written = config.set("VOICEMODE_TTS_BASE_URLS", url, "user", Caller(), GRPC)
    assert (written.entry.value, written.entry.layer) == (url, "user")
    config.set("VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS", "true", "user", Caller(), GRPC)
    assert config.unset("VOICEMODE_TTS_BASE_URLS", "user", Caller(), MCP).entry.layer == "default"


async def test_a_settings_change_rebuilds_the_registry_only_for_endpoint_changes(make_app: Build) -> None:
    extra = ServiceSpec(name="extra", command=(sys.executable, "-c", "pass"))
    app = make_app(more_services=(lambda settings: [extra],))
    old = Settings()
    before = app.providers.current()
    await app.settings_changed(old, replace(old, tts_base_urls=("http://127.0.0.1:9/v1",)))
    fresh = app.providers.current()
    assert fresh is not before and [s.url for s in fresh.list("tts")] == ["http://127.0.0.1:9/v1"]
    await app.settings_changed(old, replace(old, chime_enabled=False))
    assert app.providers.current() is fresh, "a change that moves no endpoint keeps the registry"
    assert [e.kind for e in app.events.recent()].count("providers.reconfigured") == 1
    assert "extra" in app.services.names, "a service another source adds survives the rebuilt specs"


def example_plugins() -> Plugins:
    """A service with an installer, a provider with a key, a tool: from the loader's samples."""
    from tests.unit.plugins.test_loader import load

    return load(
        services={"sample-service": "service"}, providers={"acme": "provider"}, tools={"echo": "tool"}
    )


async def test_plugins_reach_the_services_the_endpoints_the_tools_and_the_status(make_app: Build) -> None:
    from tests.unit.plugins import samples

    app = make_app(plugins=example_plugins())
    assert "sample" in app.services.names
    local = app.services.local_endpoints()
    assert local["tts"]["acme"] == "http://127.0.0.1:18001/v1" and local["stt"]["acme"]
    installs = len(samples.installs)
    lines: list[str] = []
    status = await app.services.install("sample", lines.append)
    assert (status.name, status.installed) == ("sample", True)
    assert len(samples.installs) == installs + 1 and lines == ["installing sample"]
    assert [t.name for t in app.tools.list()] == ["echo"]
    assert await app.tools.call("echo", {"text": "hi"}) == {"echo": "hi"}
    with pytest.raises(InvalidArgument, match="required property"):
        await app.tools.call("echo", {})
    daemon = app.daemon.status()
    assert [p.name for p in daemon.plugins] == ["sample-service", "acme", "echo"]
    assert daemon.webhooks == ()
    probes = app.health_probes()
    assert probes["plugins"]().state == "ok" and probes["webhooks"]().state == "disabled"


async def test_mcp_statistics_show_plugins_and_webhooks_only_when_there_are_some(make_app: Build) -> None:
    from voicemoded.mcp.backend import DaemonBackend

    plain = await DaemonBackend(make_app()).statistics(0)
    assert "plugins" not in plain and "webhooks" not in plain
    app = make_app({"VOICEMODE_WEBHOOK_URLS": "http://user:pw@127.0.0.1:9/hook"}, plugins=example_plugins())
    stats = await DaemonBackend(app).statistics(0)
    assert [p["name"] for p in stats["plugins"]] == ["sample-service", "acme", "echo"]
    [hook] = stats["webhooks"]
    assert hook["url"] == "http://****@127.0.0.1:9/hook" and hook["delivered"] == 0


async def test_a_settings_change_reaches_the_webhooks(make_app: Build) -> None:
    app = make_app()
    old = Settings()
    assert app.daemon.webhooks() == ()
    new = replace(old, webhook_urls=("http://127.0.0.1:9/hook",), webhook_secret="s3cret-value")
    await app.settings_changed(old, new)
    [hook] = app.daemon.webhooks()
    assert hook.url == "http://127.0.0.1:9/hook" and hook.signed
    await app.settings_changed(new, old)
    assert app.daemon.webhooks() == ()


def test_the_log_hides_every_secret_setting_and_the_plugins_keys() -> None:
    from voicemoded.__main__ import log_secrets

    settings = replace(Settings(), openai_api_key="sk-one", webhook_secret="hook-secret")
    secrets = log_secrets(settings, example_plugins())
    assert {"sk-one", "hook-secret", "acme-key-123", settings.livekit_api_secret} <= set(secrets)


async def test_the_daemon_starts_once_the_webhooks_follow_the_bus_or_their_task_ended() -> None:
    from voicemoded.__main__ import webhooks_following
    from voicemoded.webhooks import Webhooks, WebhookSettings

    bus = EventBus()
    hooks = Webhooks(WebhookSettings(), bus)
    app = cast(App, SimpleNamespace(webhooks=hooks))
    running = asyncio.create_task(hooks.run())
    await asyncio.wait_for(webhooks_following(app, running), 5)
    assert hooks.subscribed.is_set()
    running.cancel()
    await asyncio.gather(running, return_exceptions=True)

    async def broken() -> None:
        raise RuntimeError("no webhooks today")

    failed = asyncio.create_task(broken())
    await asyncio.wait_for(webhooks_following(app, failed), 5)  # returns instead of waiting forever
    assert not hooks.subscribed.is_set()


def test_building_the_app_loads_no_audio_stack(tmp_path: Path) -> None:
    code = f"""
import asyncio, sys, time
from pathlib import Path
from voicemoded.__main__ import build_app, load_installed_plugins, register_health
from voicemoded.api.paths import Paths
from voicemoded.app.daemon import DaemonProcess
from voicemoded.config import ConfigManager
from voicemoded.conversation.journal import Journal
from voicemoded.events import EventBus
from voicemoded.health import HealthRegistry
import voicemoded.rpc.conversation_service, voicemoded.rpc.daemon_service
import voicemoded.rpc.providers_service, voicemoded.rpc.supervisor_service, voicemoded.rpc.mcp_service
paths = Paths.from_env({{"VOICEMODE_BASE_DIR": {str(tmp_path)!r}}}, socket=Path({str(tmp_path)!r}) / "s")
events = EventBus()
config = ConfigManager(paths, {{}}, events)
config.load()
health = HealthRegistry()
process = DaemonProcess(paths.socket, paths.base, time.time(), health, lambda grace: None, asyncio.Event())
plugins = load_installed_plugins(config.settings, events)
app = build_app(paths, config, events, Journal(paths.conversations), process, plugins=plugins)
register_health(health, app)
health.report()
print(sorted(m for m in ("numpy", "pyaudio", "webrtcvad", "soxr", "mcp", "voicemoded.conversation.loop",
                         "mcp_types", "jsonschema", "httpcore") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"

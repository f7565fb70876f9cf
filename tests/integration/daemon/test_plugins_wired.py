"""Plugins and webhooks in a real daemon: the example plugin installed for real and on the daemon's
PYTHONPATH only, its service supervised, its tool called over the real MCP tunnel, its provider listed,
its broken entry point reported in ``status``; webhooks posting a finished turn and showing failures.
"""

from __future__ import annotations

import json
import os
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.fixtures.example_plugin import DISTRIBUTION, VERSION, install_example_plugin
from tests.integration.daemon.test_webhooks import Receiver
from tests.integration.mcp.conftest import mcp_session
from voicemoded.api.client import TurnOptions
from voicemoded.api.v1 import daemon_pb2, services_pb2
from voicemoded.testing.daemon import DaemonHandle, daemon_handle, speech_daemon
from voicemoded.testing.ports import free_port
from voicemoded.webhooks import verify

SECRET = "wired-webhook-secret"
TTS_URL = "http://127.0.0.1:18932/v1"


@pytest.fixture(scope="module")
def plugin_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return install_example_plugin(tmp_path_factory.mktemp("example-plugin"))


@pytest.fixture(scope="module")
def plugin_daemon(plugin_site: Path) -> Iterator[DaemonHandle]:
    """One daemon for the module, the example plugin on its PYTHONPATH (and nowhere else)."""
    gen = daemon_handle()
    handle = next(gen)
    handle.env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(plugin_site), handle.env.get("PYTHONPATH")) if p
    )
    handle.env.update(
        EXAMPLE_PLUGIN_PORT=str(free_port()),
        EXAMPLE_PLUGIN_STATE=str(handle.root / "plugin-state"),
        EXAMPLE_PLUGIN_TTS_URL=TTS_URL,
    )
    handle.start()
    try:
        yield handle
    finally:
        next(gen, None)


def wait_until(check: Callable[[], bool], timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not true within {timeout} s")
        time.sleep(0.05)


def test_status_lists_every_entry_point_and_the_broken_one_is_only_reported(
    plugin_daemon: DaemonHandle,
) -> None:
    with plugin_daemon.client() as client:
        status = client.status()
    plugins = {p.name: p for p in status.plugins}
    assert set(plugins) == {"example-service", "example-echo", "example-provider", "example-broken"}
    for name in ("example-service", "example-echo", "example-provider"):
        assert plugins[name].state == daemon_pb2.PluginInfo.LOADED, plugins[name]
        assert (plugins[name].distribution, plugins[name].version) == (DISTRIBUTION, VERSION)
    broken = plugins["example-broken"]
    assert broken.state == daemon_pb2.PluginInfo.FAILED and broken.group == "voicemode.providers"
    assert "RuntimeError" in broken.error and "fails on purpose" in broken.error
    health = {h.name: h for h in status.subsystems}
    assert health["plugins"].state == daemon_pb2.SubsystemHealth.DEGRADED
    assert "example-broken" in health["plugins"].detail

    shown = plugin_daemon.ctl("status")
    assert shown.returncode == 0, shown.stderr
    assert "example-broken" in shown.stdout and "fails on purpose" in shown.stdout
    as_json = json.loads(plugin_daemon.ctl("status", "--json").stdout)
    assert {p["name"] for p in as_json["plugins"]} == set(plugins)


def test_the_plugin_service_installs_starts_and_answers(plugin_daemon: DaemonHandle) -> None:
    with plugin_daemon.client() as client:
        names = [s.name for s in client.list_services().services]
        assert "example" in names
        refused = plugin_daemon.ctl("service", "start", "example")
        assert refused.returncode != 0 and "voicemodectl service install example" in refused.stderr

        installed = plugin_daemon.ctl("service", "install", "example")
        assert installed.returncode == 0, installed.stderr
        started = plugin_daemon.ctl("service", "start", "example")
        assert started.returncode == 0, started.stderr
        info = client.get_service("example")
        assert info.state == services_pb2.RUNNING and info.backend == "example-plugin"
        with urllib.request.urlopen(f"http://127.0.0.1:{info.port}/health", timeout=5) as answer:
            assert answer.status == 200
        client.stop_service("example")


async def test_the_plugin_tool_is_listed_and_called_over_mcp(plugin_daemon: DaemonHandle) -> None:
    async with mcp_session(plugin_daemon) as session:
        await session.initialize()
        tools = {t.name: t for t in (await session.list_tools()).tools}
        assert {"converse", "service", "example_echo"} <= set(tools)
        assert tools["example_echo"].input_schema["required"] == ["text"]

        result = await session.call_tool("example_echo", {"text": "hello"})
        assert not result.is_error
        answer = json.loads(result.content[0].text)  # type: ignore[union-attr]
        assert answer["echo"] == "hello"
        assert plugin_daemon.process is not None and answer["pid"] == plugin_daemon.process.pid

        bad = await session.call_tool("example_echo", {})
        assert bad.is_error and "required property" in bad.content[0].text  # type: ignore[union-attr]


def test_the_plugin_provider_is_an_endpoint(plugin_daemon: DaemonHandle) -> None:
    with plugin_daemon.client() as client:
        providers = client.list_providers("tts").providers
    [example] = [p for p in providers if p.name == "example"]
    assert example.url == TTS_URL and example.kind == "tts"


def test_no_plugin_loads_with_plugins_none(plugin_site: Path, daemon_env: DaemonHandle) -> None:
    daemon_env.env["PYTHONPATH"] = str(plugin_site)
    daemon_env.start({"VOICEMODE_PLUGINS": "none"})
    with daemon_env.client() as client:
        status = client.status()
        assert {p.state for p in status.plugins} == {daemon_pb2.PluginInfo.DISABLED}
        assert "example" not in [s.name for s in client.list_services().services]


@pytest.mark.audio
def test_a_finished_turn_is_posted_signed_and_counted() -> None:
    receiver = Receiver()
    try:
        for handle, _endpoint in speech_daemon(
            {"VOICEMODE_WEBHOOK_URLS": receiver.url, "VOICEMODE_WEBHOOK_SECRET": SECRET}
        ):
            with handle.client() as client:
                list(client.speak("Hello there.", TurnOptions(chime_enabled=False)))

                def turn_posted() -> bool:
                    return any(b'"conversation.turn"' in data for _h, data in receiver.requests)

                wait_until(turn_posted)
                [(headers, data)] = [(h, d) for h, d in receiver.requests if b'"conversation.turn"' in d]
                assert verify(SECRET, headers, data)
                document = json.loads(data)
                assert document["subsystem"] == "conversation" and document["fields"]["turn_id"]

                wait_until(lambda: client.status().webhooks[0].delivered >= 1)
                [hook] = client.status().webhooks
                assert hook.url == receiver.url and hook.signed and hook.failed == 0
                assert list(hook.events) == ["conversation.turn", "service.state", "provider.health"]
    finally:
        receiver.close()


def test_webhook_failures_show_in_status_with_the_url_masked(daemon_env: DaemonHandle) -> None:
    receiver = Receiver(codes=[404] * 100)
    try:
        url = receiver.url.replace("http://", "http://user:s3cr3t-pw@") + "?token=tok-9f8e"
        daemon_env.start({"VOICEMODE_WEBHOOK_URLS": url, "VOICEMODE_WEBHOOK_EVENTS": "daemon.*"})
        with daemon_env.client() as client:
            wait_until(lambda: client.status().webhooks[0].failed >= 1)
            status = client.status()
        [hook] = status.webhooks
        assert hook.last_status_code == 404 and hook.last_error == "HTTP 404" and hook.delivered == 0
        assert hook.url == receiver.url.replace("http://", "http://****@") + "?token=****"
        health = {h.name: h for h in status.subsystems}
        assert health["webhooks"].state == daemon_pb2.SubsystemHealth.DEGRADED
    finally:
        receiver.close()

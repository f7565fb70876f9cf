"""The real MCP client, through the real tunnel, against sessions hosted in a real daemon."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.integration.mcp.conftest import EventWatcher, mcp_session
from voicemoded import __version__
from voicemoded.mcp.tools import TOOLS
from voicemoded.testing.daemon import DaemonHandle


def payload(result: Any) -> Any:
    assert isinstance(result, types.CallToolResult)
    assert not result.is_error, result.content
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return json.loads(block.text)


def error_text(result: Any) -> str:
    assert isinstance(result, types.CallToolResult)
    assert result.is_error, result.content
    block = result.content[0]
    assert isinstance(block, types.TextContent)
    return block.text


async def test_initialize_and_listings(host: DaemonHandle) -> None:
    async with mcp_session(host) as session:
        init = await session.initialize()
        assert init.server_info.name == "voicemode"
        assert init.server_info.version == __version__
        tools = await session.list_tools()
        assert [t.name for t in tools.tools] == [t.name for t in TOOLS]
        converse = next(t for t in tools.tools if t.name == "converse")
        props = converse.input_schema["properties"]
        for name in ("message", "wait_for_response", "listen_duration_max", "listen_duration_min", "voice",
                     "tts_provider", "tts_model", "tts_instructions", "speed", "vad_aggressiveness",
                     "disable_silence_detection", "chime_enabled", "audio_format", "skip_tts"):  # fmt: skip
            assert props[name]["description"], name
        assert props["listen_duration_max"]["default"] == 120
        resources = await session.list_resources()
        assert {str(r.uri) for r in resources.resources} == {
            "voicemode://config",
            "voicemode://voices",
            "voicemode://services",
            "voicemode://conversations",
        }
        prompts = await session.list_prompts()
        assert [p.name for p in prompts.prompts] == ["converse"]
        prompt = await session.get_prompt("converse", {"topic": "the weather"})
        text = prompt.messages[0].content
        assert isinstance(text, types.TextContent) and "the weather" in text.text


async def test_tools_and_resources_answer(host: DaemonHandle) -> None:
    async with mcp_session(host) as session:
        await session.initialize()
        stats = payload(await session.call_tool("statistics", {}))
        assert stats["daemon"]["version"] == __version__ and stats["mcp_sessions"] >= 1
        services = payload(await session.call_tool("service", {"action": "status"}))
        assert {s["name"] for s in services["services"]} >= {"whisper", "piper"}
        whisper = payload(await session.call_tool("service", {"action": "status", "name": "whisper"}))
        assert whisper["state"] == "STOPPED"
        assert "endpoints" in payload(await session.call_tool("providers", {"action": "list"}))
        answer = payload(await session.call_tool("converse", {"message": "hello there", "voice": "af_sky"}))
        assert answer["text"] == "heard: hello there" and answer["voice"] == "af_sky"
        config = await session.read_resource("voicemode://config")
        content = config.contents[0]
        assert isinstance(content, types.TextResourceContents)
        assert "sk-test-not-a-real-key" not in content.text
        assert json.loads(content.text)["values"]["OPENAI_API_KEY"] == "…1234"
        services_resource = await session.read_resource("voicemode://services")
        assert "whisper" in services_resource.contents[0].text  # type: ignore[union-attr]


async def test_failures_are_tool_errors_with_next_step(host: DaemonHandle) -> None:
    async with mcp_session(host) as session:
        await session.initialize()
        missing = error_text(await session.call_tool("converse", {"speed": 2}))
        assert "message" in missing and "Next step:" in missing
        out_of_range = error_text(await session.call_tool("converse", {"message": "hi", "speed": 9}))
        assert "speed" in out_of_range
        secret = error_text(
            await session.call_tool("config", {"action": "set", "key": "OPENAI_API_KEY", "value": "x"})
        )
        assert "secret" in secret and "Next step:" in secret
        unknown = error_text(await session.call_tool("config", {"key": "VOICEMODE_NO_SUCH_THING"}))
        assert "unknown setting" in unknown
        no_name = error_text(await session.call_tool("service", {"action": "restart"}))
        assert "needs a service name" in no_name and "whisper" in no_name
        no_binary = error_text(await session.call_tool("service", {"action": "install", "name": "livekit"}))
        assert "livekit-server" in no_binary and "Next step:" in no_binary


async def test_config_set_applies_to_the_project(host: DaemonHandle, tmp_path: Path) -> None:
    async with mcp_session(host, cwd=tmp_path) as session:
        await session.initialize()
        result = payload(
            await session.call_tool(
                "config",
                {"action": "set", "key": "VOICEMODE_VOICES", "value": "bm_lewis", "scope": "project"},
            )
        )
        assert result["effective"] == "bm_lewis"
        assert (tmp_path / ".voicemode.env").read_text().strip() == "VOICEMODE_VOICES=bm_lewis"
        got = payload(await session.call_tool("config", {"key": "VOICEMODE_VOICES"}))
        assert got["values"]["VOICEMODE_VOICES"] == "bm_lewis"


ENDPOINT_SETS = [
    {"key": "VOICEMODE_STT_BASE_URLS", "value": "http://127.0.0.1:9/v1"},
    {"key": "VOICEMODE_TTS_BASE_URLS", "value": "http://127.0.0.1:9/v1", "scope": "project"},
    {"key": "LIVEKIT_URL", "value": "ws://127.0.0.1:9"},
    {"key": "OPENAI_API_KEY", "value": "sk-chosen-by-someone-else"},
    {"key": "LIVEKIT_API_SECRET", "value": "x"},
    {"key": "VOICEMODE_STT_BASE_URLS", "value": ""},  # clearing one is a change too
    {"key": "VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS", "value": "true"},  # the assistant cannot allow itself
    # A program the daemon would run, engines reachable from the network, another user on the socket.
    {"key": "VOICEMODE_WHISPER_SERVER_PATH", "value": "/tmp/x"},
    {"key": "VOICEMODE_LIVEKIT_SERVER_PATH", "value": "/tmp/x"},
    {"key": "VOICEMODE_SERVICE_HOST", "value": "0.0.0.0"},
    {"key": "VOICEMODE_ALLOWED_UIDS", "value": "65534"},
]


async def test_the_assistant_cannot_change_where_audio_goes(host: DaemonHandle, tmp_path: Path) -> None:
    # Text the assistant read may have written the project file, and the client's environment is not
    # the person's own file: neither allows it.
    (tmp_path / ".voicemode.env").write_text("VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS=true\n")
    before = host.user_file.read_text() if host.user_file.exists() else ""
    env = {"VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS": "true"}
    async with mcp_session(host, cwd=tmp_path, env=env) as session:
        await session.initialize()
        for arguments in ENDPOINT_SETS:
            text = error_text(await session.call_tool("config", {"action": "set", **arguments}))
            assert "PERMISSION_DENIED" in text and arguments["key"] in text, text
            assert f"VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS=true in {host.user_file}" in text, text
        assert payload(await session.call_tool("config", {"key": "VOICEMODE_STT_BASE_URLS"}))
    assert (host.user_file.read_text() if host.user_file.exists() else "") == before
    assert (tmp_path / ".voicemode.env").read_text() == "VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS=true\n"


async def test_the_persons_own_file_can_allow_endpoint_changes(host: DaemonHandle) -> None:
    allowed = host.ctl("config", "set", "VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS", "true")
    assert allowed.returncode == 0, allowed.stderr
    try:
        async with mcp_session(host) as session:
            await session.initialize()
            url = "http://127.0.0.1:9/v1"
            result = payload(
                await session.call_tool(
                    "config", {"action": "set", "key": "VOICEMODE_STT_BASE_URLS", "value": url}
                )
            )
            assert result["effective"] == url
        assert f"VOICEMODE_STT_BASE_URLS={url}" in host.user_file.read_text()
    finally:
        for key in ("VOICEMODE_STT_BASE_URLS", "VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS"):
            host.ctl("config", "unset", key)


async def test_templates_list_is_empty_and_an_unknown_tool_is_a_protocol_error(host: DaemonHandle) -> None:
    async with mcp_session(host) as session:
        init = await session.initialize()
        assert init.capabilities.resources is not None
        templates = await session.list_resource_templates()
        assert templates.resource_templates == []
        with pytest.raises(MCPError) as caught:
            await session.call_tool("no_such_tool", {})
        assert caught.value.error.code == types.INVALID_PARAMS
        assert "Unknown tool: no_such_tool" in caught.value.error.message
        # A known tool with bad arguments stays a tool error the assistant can read and fix (2025-11-25).
        assert "message" in error_text(await session.call_tool("converse", {}))


async def test_two_sessions_see_their_own_project_and_environment(host: DaemonHandle, tmp_path: Path) -> None:
    alpha, beta = tmp_path / "alpha", tmp_path / "beta" / "deep" / "folder"
    alpha.mkdir()
    beta.mkdir(parents=True)
    (alpha / ".voicemode.env").write_text("VOICEMODE_VOICES=alpha_voice\n")
    (tmp_path / "beta" / ".voicemode.env").write_text("VOICEMODE_VOICES=beta_voice\n")
    keys = {"key": "VOICEMODE_VOICES"}
    async with (
        mcp_session(host, cwd=alpha, env={"VOICEMODE_TTS_SPEED": "1.5"}) as a,
        mcp_session(host, cwd=beta) as b,
    ):
        await a.initialize()
        await b.initialize()
        seen: dict[str, Any] = {}

        async def ask(name: str, session: Any) -> None:
            seen[name] = payload(await session.call_tool("config", keys))["values"]["VOICEMODE_VOICES"]
            speed = payload(await session.call_tool("config", {"key": "VOICEMODE_TTS_SPEED"}))
            seen[name + "_speed"] = speed["values"]["VOICEMODE_TTS_SPEED"]

        async with anyio.create_task_group() as tg:
            tg.start_soon(ask, "a", a)
            tg.start_soon(ask, "b", b)
    assert seen == {"a": "alpha_voice", "a_speed": "1.5", "b": "beta_voice", "b_speed": "1"}


async def test_progress_then_cancellation_stops_the_operation(
    host: DaemonHandle, events: EventWatcher
) -> None:
    messages: list[str] = []
    got_progress = anyio.Event()

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        messages.append(message or "")
        if len(messages) >= 4:
            got_progress.set()

    async with mcp_session(host) as session:
        await session.initialize()
        cancelled_at = 0.0
        async with anyio.create_task_group() as tg:

            async def call() -> None:
                await session.call_tool(
                    "converse", {"message": "block cancel-me"}, progress_callback=on_progress
                )

            tg.start_soon(call)
            with anyio.fail_after(15):
                await got_progress.wait()
            await anyio.to_thread.run_sync(
                lambda: events.wait_for("test.turn_blocking", lambda e: e.message == "block cancel-me")
            )
            cancelled_at = time.time()
            tg.cancel_scope.cancel()
        stopped = await anyio.to_thread.run_sync(
            lambda: events.wait_for("test.turn_cancelled", lambda e: e.message == "block cancel-me")
        )
        assert messages[:4] == [
            "tts_start: test",
            "first_audio: test",
            "playback_end: test",
            "listening: test",
        ]
        # The requirement: audio stops within 100 ms of the cancellation.
        assert float(stopped.fields["at"]) - cancelled_at < 0.1
        # The session goes on after a cancelled call.
        assert payload(await session.call_tool("statistics", {}))["mcp_sessions"] >= 1

"""The whole front door: the real MCP client on the real voicemode-mcp tunnel, the real daemon's converse
tool, the real engines, and the scripted person answering into the virtual microphone."""

from __future__ import annotations

import asyncio
import json
import sys
import time

from mcp import ClientSession, StdioServerParameters
from mcp.client.stdio import stdio_client

from tests.integration.conversation.conftest import TTS_FORMAT, Rig
from tests.integration.conversation.test_converse import overlap

ANSWER = "Use the staging server for this test run."


def params(rig: Rig) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "voicemode_mcp", "--socket", str(rig.daemon.socket), "--no-start"],
        env=rig.daemon.env,
        cwd=str(rig.daemon.root),
    )


async def test_converse_tool_end_to_end(rig: Rig) -> None:
    answer = rig.say(ANSWER)
    progress: list[str] = []
    played = asyncio.Event()
    players: list[asyncio.Future[None]] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(message or "")
        if message and "listening" in message and not played.is_set():
            played.set()
            players.append(asyncio.ensure_future(rig.audio.play_into_mic(answer, TTS_FORMAT)))

    async with stdio_client(params(rig)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        result = await session.call_tool(
            "converse",
            {"message": "Which server should I use?", "listen_duration_max": 20},
            progress_callback=on_progress,
        )
    await asyncio.gather(*players)
    assert not result.is_error, result.content
    text = "".join(getattr(c, "text", "") for c in result.content)
    assert overlap(ANSWER, text) >= 0.85, text
    assert played.is_set(), f"no listening progress: {progress}"


async def test_cancelling_the_converse_tool_stops_the_audio(rig: Rig) -> None:
    playing = asyncio.Event()

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        if message and message.startswith("first_audio"):
            playing.set()

    async with stdio_client(params(rig)) as (read, write), ClientSession(read, write) as session:
        await session.initialize()
        call = asyncio.ensure_future(
            session.call_tool(
                "converse",
                {"message": "This message is long. " * 10, "wait_for_response": False},
                progress_callback=on_progress,
            )
        )
        await asyncio.wait_for(playing.wait(), 30)  # the speaker is playing the message
        cancelled_at = time.monotonic()
        call.cancel()
        # The devices are free again soon after: a no-wait turn through gRPC gets them.
        from voicemoded.api.v1 import conversation_pb2

        while True:
            turn = await asyncio.to_thread(
                rig.converse, conversation_pb2.ConverseRequest(message="Next.", no_wait=True), method="Speak"
            )
            if turn.error is None:
                break
            assert time.monotonic() - cancelled_at < 2.0, turn.error
    stats = json.loads(rig.daemon.ctl("--json", "status").stdout)
    assert any(s["name"] == "mcp" for s in stats["subsystems"])

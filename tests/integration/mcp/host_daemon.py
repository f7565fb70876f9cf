"""A voicemoded built like the real one (config, application layer, Daemon service) plus the McpTunnel
service.

The conversation part is a small scripted stand-in so the MCP layer can be driven without audio: a
message starting with ``block`` waits until it is cancelled and publishes when that happened (the one
fault the real loop cannot be made to produce on demand), any other message "answers" at once.
Run as ``python host_daemon.py --socket PATH``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import time
from pathlib import Path

from voicemoded import __version__, logsetup
from voicemoded.__main__ import build_app, mcp_host, register_health
from voicemoded.api.paths import Paths
from voicemoded.api.v1 import daemon_pb2_grpc, mcp_pb2_grpc
from voicemoded.app.daemon import DaemonProcess
from voicemoded.config import ConfigManager
from voicemoded.conversation.journal import Journal, Timings
from voicemoded.conversation.loop import Emit
from voicemoded.conversation.params import TurnParams
from voicemoded.conversation.results import TurnEvent, TurnResult
from voicemoded.events import EventBus
from voicemoded.health import Health, HealthRegistry
from voicemoded.rpc.daemon_service import DaemonService
from voicemoded.rpc.mcp_service import McpTunnelService
from voicemoded.server import SocketServer


class ScriptedConversation:
    def __init__(self, events: EventBus) -> None:
        self.events = events

    async def turn(
        self, params: TurnParams, emit: Emit, *, mode: str, client: str = "", cwd: str = ""
    ) -> TurnResult:
        for kind in ("tts_start", "first_audio", "playback_end", "listening"):
            emit(TurnEvent(kind, 0.0, time.time(), "test"))
            await asyncio.sleep(0)
        if params.message.startswith("block"):
            self.events.publish("test.turn_blocking", "test", params.message)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.events.publish("test.turn_cancelled", "test", params.message, at=f"{time.time():.6f}")
                raise
        result = TurnResult(
            "test-turn", text=f"heard: {params.message}", end_reason="silence", voice=params.voice,
            timings=Timings(ttfa=0.1, total=0.2),
        )  # fmt: skip
        emit(TurnEvent("done", 0.0, time.time(), result=result))  # as the real loop: done carries it
        return result


async def run(socket: Path) -> int:
    logsetup.configure("info", "json")
    env = dict(os.environ)
    paths = Paths.from_env(env, socket=socket)
    paths.ensure()
    events = EventBus()
    config = ConfigManager(paths, env, events)
    config.load()
    health = HealthRegistry()
    stop = asyncio.Event()
    stopping = asyncio.Event()

    def request_stop(grace: float = 0.0) -> None:
        stop.set()

    process = DaemonProcess(paths.socket, paths.base, time.time(), health, request_stop, stopping)
    scripted = ScriptedConversation(events)
    app = build_app(paths, config, events, Journal(paths.conversations), process, turns=lambda: scripted)
    register_health(health, app)
    host = mcp_host(app)
    health.register("mcp", lambda: Health("mcp", "ok", host.health_detail()))
    daemon = DaemonService(app.daemon, app.configuration)

    def register(server: object) -> None:
        daemon_pb2_grpc.add_DaemonServicer_to_server(daemon, server)
        mcp_pb2_grpc.add_McpTunnelServicer_to_server(McpTunnelService(lambda: host), server)

    async with SocketServer(paths.socket, register) as server:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await app.providers.current().start(probe=False)
        events.publish("daemon.started", "daemon", f"voicemoded {__version__} ready (test host)")
        await stop.wait()
        stopping.set()
        await server.stop(1.0)
        with contextlib.suppress(Exception):
            await app.aclose()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", type=Path, required=True)
    args = parser.parse_args()
    return asyncio.run(run(args.socket))


if __name__ == "__main__":
    sys.exit(main())

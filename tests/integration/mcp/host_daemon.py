"""A voicemoded built like the real one (config, core, Daemon service) plus the McpTunnel service.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicemoded import __version__, logsetup
from voicemoded.__main__ import build_core, register_health
from voicemoded.api.paths import Paths
from voicemoded.api.v1 import daemon_pb2_grpc, mcp_pb2_grpc
from voicemoded.config import ConfigManager
from voicemoded.events import EventBus
from voicemoded.health import Health, HealthRegistry
from voicemoded.mcp.backend import DaemonBackend
from voicemoded.mcp.session import McpHost
from voicemoded.rpc.daemon_service import DaemonService
from voicemoded.rpc.mcp_service import McpTunnelService
from voicemoded.server import SocketServer


@dataclass
class Event:
    kind: str
    detail: str = ""
    text: str = ""
    result: Any = None


@dataclass
class Timings:
    ttfa: float = 0.1
    total: float = 0.2


@dataclass
class Result:
    text: str
    end_reason: str = "silence"
    voice: str = ""
    timings: Timings = field(default_factory=Timings)


class ScriptedConversation:
    def __init__(self, events: EventBus) -> None:
        self.events = events

    async def turn(self, params: Any, emit: Any, *, mode: str, client: str = "", cwd: str = "") -> Result:
        for kind in ("tts_start", "first_audio", "playback_end", "listening"):
            emit(Event(kind, "test"))
            await asyncio.sleep(0)
        if params.message.startswith("block"):
            self.events.publish("test.turn_blocking", "test", params.message)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.events.publish("test.turn_cancelled", "test", params.message, at=f"{time.time():.6f}")
                raise
        result = Result(text=f"heard: {params.message}", voice=params.voice)
        emit(Event("done", result=result))  # the same contract as the real loop: done carries the result
        return result


async def run(socket: Path) -> int:
    logsetup.configure("info", "json")
    env = dict(os.environ)
    paths = Paths.from_env(env, socket=socket)
    paths.ensure()
    events = EventBus()
    config = ConfigManager(paths, env, events)
    config.load()
    core = build_core(paths, config, events)
    health = HealthRegistry()
    register_health(health, core)
    backend = DaemonBackend(
        config, parts=core, conversation=ScriptedConversation(events), started_at=time.time()
    )
    host = McpHost(backend, events=events)
    health.register("mcp", lambda: Health("mcp", "ok", host.health_detail()))
    stop = asyncio.Event()
    stopping = asyncio.Event()

    def request_stop(grace: float = 0.0) -> None:
        stop.set()

    daemon = DaemonService(
        config=config, events=events, health=health, socket=paths.socket, base_dir=paths.base,
        started_at=time.time(), request_stop=request_stop, stopping=stopping,
    )  # fmt: skip

    def register(server: object) -> None:
        daemon_pb2_grpc.add_DaemonServicer_to_server(daemon, server)
        mcp_pb2_grpc.add_McpTunnelServicer_to_server(McpTunnelService(lambda: host), server)

    async with SocketServer(paths.socket, register) as server:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await core.speech.start(probe=False)
        events.publish("daemon.started", "daemon", f"voicemoded {__version__} ready (test host)")
        await stop.wait()
        stopping.set()
        await server.stop(1.0)
        with contextlib.suppress(Exception):
            await core.supervisor.stop_all()
            await core.aclose()
    return 0


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--socket", type=Path, required=True)
    args = parser.parse_args()
    return asyncio.run(run(args.socket))


if __name__ == "__main__":
    sys.exit(main())

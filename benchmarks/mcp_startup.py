"""voicemode-mcp figures: spawn -> initialize, spawn -> tools/list, idle tunnel RSS, per-call overhead.

Starts a private `voicemoded` on a temp socket, then spawns the real tunnel as an MCP client would and
speaks raw newline-delimited JSON-RPC to it, so the measuring side adds no SDK cost. Prints:
  spawn -> initialize response, median of N (target <= 0.25 s; VoiceMode 9.0.1: 2.16 s)
  spawn -> tools/list response, median of N
  resident memory of an idle tunnel (target <= 40 MiB; VoiceMode 9.0.1: 150 MiB)
  tools/call round trip through the tunnel vs the same daemon's GetStatus over gRPC (overhead of MCP)
  size of the tools/list result (VoiceMode's default tools: ~10 KB)

Run: .venv/bin/python benchmarks/mcp_startup.py [--runs 10]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicemoded.api.v1 import daemon_pb2
from voicemoded.testing.daemon import DaemonHandle, daemon_handle
from voicemoded.testing.jsonrpc import INITIALIZE


class Tunnel:
    """An MCP server on stdio: our tunnel by default, or any command (VoiceMode's server)."""

    def __init__(
        self, handle: DaemonHandle, command: list[str] | None = None, env: dict[str, str] | None = None
    ) -> None:
        self.started = time.perf_counter()
        self.proc = subprocess.Popen(
            command or [sys.executable, "-m", "voicemode_mcp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            env=env or handle.env,
            cwd=handle.root,
        )

    def request(self, message: dict[str, Any]) -> tuple[dict[str, Any], bytes]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(json.dumps(message).encode() + b"\n")
        self.proc.stdin.flush()
        while True:
            line = self.proc.stdout.readline()
            if not line:
                raise RuntimeError("the tunnel closed its stdout")
            reply = json.loads(line)
            if reply.get("id") == message.get("id"):
                return reply, line

    def notify(self, method: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"jsonrpc": "2.0", "method": method}).encode() + b"\n")
        self.proc.stdin.flush()

    def close(self) -> None:
        self.proc.communicate(timeout=10)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait(10)


@dataclass
class Startup:
    """Spawn -> initialize and spawn -> tools/list (seconds), resident MiB after tools/list, list size."""

    to_init: list[float] = field(default_factory=list)
    to_list: list[float] = field(default_factory=list)
    rss: list[float] = field(default_factory=list)
    tools_bytes: int = 0


def startup(spawn: Callable[[], Tunnel], runs: int, *, kill: bool = False) -> Startup:
    """Spawn an MCP server ``runs`` times and time it to its initialize and tools/list answers."""
    figures = Startup()
    for _ in range(runs):
        server = spawn()
        server.request(INITIALIZE)
        figures.to_init.append(time.perf_counter() - server.started)
        server.notify("notifications/initialized")
        _, line = server.request({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
        figures.to_list.append(time.perf_counter() - server.started)
        figures.tools_bytes = len(json.dumps(json.loads(line)["result"], separators=(",", ":")))
        figures.rss.append(psutil.Process(server.proc.pid).memory_info().rss / 2**20)
        server.kill() if kill else server.close()
    return figures


def anchor_figures(handle: DaemonHandle, runs: int) -> tuple[str, float | None]:
    """VoiceMode 9.0.1's own MCP server (its venv from benchmarks/anchor.py), spawned the same way."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    import anchor

    if not anchor.installed():
        try:
            anchor.install()
        except Exception as exc:  # the registry or a build step failed: say so instead of guessing
            return f"VoiceMode 9.0.1: not measured ({type(exc).__name__}: {exc})", None
    command = [str(anchor.venv_dir() / "bin" / "voice-mode")]
    home = handle.root / "anchor-home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ.get("PATH", ""), "HOME": str(home), "LANG": "C.UTF-8"}
    theirs = startup(partial(Tunnel, handle, command, env), runs, kill=True)
    return (
        f"VoiceMode 9.0.1 in the same run: spawn -> initialize median {statistics.median(theirs.to_init):.3f} s, "
        f"spawn -> tools/list {statistics.median(theirs.to_list):.3f} s, "
        f"resident {statistics.median(theirs.rss):.1f} MiB, tools/list {theirs.tools_bytes} bytes"
    ), statistics.median(theirs.to_init)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--no-anchor", action="store_true", help="skip VoiceMode 9.0.1")
    args = parser.parse_args()

    for handle in daemon_handle():
        handle.start()
        startup(partial(Tunnel, handle), 1)  # warm the daemon's first session (it loads the mcp SDK)
        ours = startup(partial(Tunnel, handle), args.runs)
        to_init, to_list, rss = ours.to_init, ours.to_list, ours.rss

        tunnel = Tunnel(handle)
        tunnel.request(INITIALIZE)
        tunnel.notify("notifications/initialized")
        call = {"jsonrpc": "2.0", "method": "tools/call", "params": {"name": "statistics", "arguments": {}}}
        mcp_times = []
        for i in range(args.calls):
            t0 = time.perf_counter()
            tunnel.request({**call, "id": 100 + i})
            mcp_times.append((time.perf_counter() - t0) * 1000)
        idle_rss = psutil.Process(tunnel.proc.pid).memory_info().rss / 2**20
        tunnel.close()
        with handle.client() as client:
            grpc_times = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                client.daemon.GetStatus(daemon_pb2.GetStatusRequest())
                grpc_times.append((time.perf_counter() - t0) * 1000)

        print(
            f"spawn -> initialize: median {statistics.median(to_init):.3f} s over {args.runs} "
            f"(min {min(to_init):.3f}, max {max(to_init):.3f}; target <= 0.25 s, VoiceMode 9.0.1: 2.16 s)"
        )
        print(f"spawn -> tools/list: median {statistics.median(to_list):.3f} s over {args.runs}")
        print(
            f"tunnel resident memory: {statistics.median(rss):.1f} MiB after tools/list, "
            f"{idle_rss:.1f} MiB idle after {args.calls} calls (target <= 40 MiB, VoiceMode 9.0.1: 150 MiB)"
        )
        print(
            f"tools/call statistics through the tunnel: median {statistics.median(mcp_times):.2f} ms; "
            f"GetStatus over gRPC: median {statistics.median(grpc_times):.2f} ms "
            f"(MCP overhead ~{statistics.median(mcp_times) - statistics.median(grpc_times):.2f} ms per call)"
        )
        print(f"tools/list result: {ours.tools_bytes} bytes (VoiceMode default tools: ~10 KB)")
        if not args.no_anchor:
            text, theirs = anchor_figures(handle, args.runs)
            print(text)
            if theirs:
                ratio = theirs / statistics.median(to_init)
                print(f"spawn -> initialize: {ratio:.1f}x faster than VoiceMode 9.0.1 (target >= 8x)")


if __name__ == "__main__":
    main()

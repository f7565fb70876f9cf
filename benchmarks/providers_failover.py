"""What failover costs: past a refused endpoint, and past a hung one once its breaker is open.

A tiny HTTP server on loopback answers ``/v1/audio/speech`` at once, so time to first audio measures our
own path (SDK, pool, planning, breaker) and the difference from the baseline isolates failover.

    python benchmarks/providers_failover.py [--requests 200]

Targets (issue): refused endpoint <= 20 ms, hung endpoint after the breaker opened <= 5 ms.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import structlog

from voicemoded.providers import ProviderSettings, Speech

AUDIO = bytes(4800)  # 100 ms of 24 kHz s16le silence


class Handlers:
    """Connections of the benchmark servers, so they end cleanly (a hung one waits for ``stop``)."""

    def __init__(self) -> None:
        self.stop = asyncio.Event()
        self.tasks: set[asyncio.Task[None]] = set()
        self.writers: set[asyncio.StreamWriter] = set()

    async def close(self) -> None:
        self.stop.set()
        for writer in self.writers:
            writer.close()
        await asyncio.gather(*self.tasks, return_exceptions=True)


async def instant_server(handlers: Handlers, hang: bool = False) -> tuple[asyncio.Server, str]:
    """HTTP/1.1 keep-alive server that answers everything at once (or, with ``hang``, never)."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            handlers.tasks.add(task)
        handlers.writers.add(writer)
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                length = next(
                    (
                        int(line.split(":", 1)[1])
                        for line in lines
                        if line.lower().startswith("content-length")
                    ),
                    0,
                )
                if length:
                    await reader.readexactly(length)
                if hang:
                    await handlers.stop.wait()
                    return
                path = lines[0].split(" ")[1]
                if path.endswith("/audio/speech"):
                    body, kind = AUDIO, "audio/pcm"
                elif path.endswith("/audio/voices"):
                    body, kind = json.dumps({"voices": ["af_sky"]}).encode(), "application/json"
                elif path.endswith("/models"):
                    body, kind = json.dumps({"data": [{"id": "tts-1"}]}).encode(), "application/json"
                else:
                    body, kind = b'{"status":"ok"}', "application/json"
                header = f"HTTP/1.1 200 OK\r\nContent-Type: {kind}\r\nContent-Length: {len(body)}\r\n\r\n"
                writer.write(header.encode() + body)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/v1"


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


async def first_audio(sp: Speech) -> float:
    """Seconds from the call to the first audio chunk (the stream is then drained)."""
    started = time.perf_counter()
    first = 0.0
    async for item in sp.synthesize("hello"):
        if not first and not hasattr(item, "endpoint"):
            first = time.perf_counter() - started
    return first


def summary(samples: list[float]) -> tuple[float, float]:
    ordered = sorted(samples)
    return statistics.median(ordered) * 1000, ordered[int(len(ordered) * 0.9)] * 1000


async def scenario(name: str, user_urls: tuple[str, ...], local: str, n: int, *, reset_dead: bool) -> float:
    settings = ProviderSettings(
        tts_base_urls=user_urls, request_timeout=0.5, probe_timeout=0.5, probe_interval=3600.0
    )
    async with Speech(settings) as sp:
        await sp.health.aclose()  # no background probes: measure requests only
        sp.set_local_endpoints("tts", {"local": local})
        warm = await first_audio(sp)  # discovery, pool warm-up, and (hung) the one timeout
        samples = []
        for _ in range(n):
            if reset_dead:
                for state in sp.registry.states("tts")[: len(user_urls)]:
                    sp.health.reset(state)
            samples.append(await first_audio(sp))
        median, p90 = summary(samples)
        print(
            f"  {name:<42} median {median:7.2f} ms   p90 {p90:7.2f} ms   (first request {warm * 1000:.0f} ms)"
        )
        return median


async def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--requests", type=int, default=200)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    handlers = Handlers()
    fast, fast_url = await instant_server(handlers)
    hung, hung_url = await instant_server(handlers, hang=True)
    n = args.requests
    print(f"time to first audio through Speech.synthesize, {n} requests each, loopback instant server")
    base = await scenario("baseline (healthy local only)", (), fast_url, n, reset_dead=False)
    refused = await scenario(
        "refused user URL, fresh breaker each time", (closed_port_url(),), fast_url, n, reset_dead=True
    )
    skipped = await scenario(
        "refused user URL, breaker open", (closed_port_url(),), fast_url, n, reset_dead=False
    )
    hung_open = await scenario("hung user URL, breaker open", (hung_url,), fast_url, n, reset_dead=False)
    print()
    print(
        f"failover cost past a refused endpoint (connect refused + failover): {refused - base:6.2f} ms"
        f"   target <= 20 ms  {'OK' if refused - base <= 20 else 'MISSED'}"
    )
    print(f"failover cost past a refused endpoint once its breaker is open:     {skipped - base:6.2f} ms")
    print(
        f"failover cost past a hung endpoint after the breaker opened:        {hung_open - base:6.2f} ms"
        f"   target <= 5 ms   {'OK' if hung_open - base <= 5 else 'MISSED'}"
    )
    fast.close()
    hung.close()
    await handlers.close()


if __name__ == "__main__":
    asyncio.run(main())

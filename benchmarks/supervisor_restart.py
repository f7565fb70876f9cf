"""Supervisor figures: restart latency after a crash, and the daemon's CPU while children idle.

1. Restart latency: a real child (voicemoded/testing/children/ready_late.py, an HTTP /health server) is
   killed with SIGKILL; we time from the kill to the RUNNING event of its replacement and subtract the
   configured backoff delay. The target is <= 150 ms plus the child's own start time, which is measured on
   its own (spawn to first 200 from /health, probed every 2 ms without any supervisor).
2. Idle CPU: the supervisor (in this process) supervises 3 idle children, memory limits on, for ~30 s;
   CPU % = (user + system CPU of this process) / wall time. Target < 1 %.

Run: python benchmarks/supervisor_restart.py [--rounds 20] [--idle-seconds 30]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil
import structlog

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicemoded.events import Event, EventBus
from voicemoded.supervisor import (
    BackoffSettings,
    FlapSettings,
    HttpProbe,
    ServiceSpec,
    Supervisor,
)
from voicemoded.supervisor.probe import probe_once
from voicemoded.testing.children import child_command
from voicemoded.testing.ports import free_port

BACKOFF = 0.2


def spec(name: str, port: int, **extra: object) -> ServiceSpec:
    return ServiceSpec(
        name=name,
        command=child_command("ready_late", "--port", port),
        port=port,
        probe=HttpProbe(),
        start_timeout=10.0,
        backoff=BackoffSettings(initial=BACKOFF, multiplier=1.0, maximum=BACKOFF, jitter=0.0),
        flapping=FlapSettings(max_restarts=10_000, window=60.0, retry_after=None),
        **extra,  # type: ignore[arg-type]
    )


async def child_start_time(rounds: int) -> list[float]:
    """Spawn to first healthy answer, for the bare child (no supervisor involved)."""
    times = []
    for _ in range(rounds):
        port = free_port()
        began = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            *child_command("ready_late", "--port", port), stdout=asyncio.subprocess.DEVNULL
        )
        while not await probe_once(HttpProbe(timeout=0.5), "127.0.0.1", port):
            await asyncio.sleep(0.002)
        times.append(time.monotonic() - began)
        proc.kill()
        await proc.wait()
    return times


async def next_state(events: asyncio.Queue[Event], state: str) -> Event:
    while True:
        event = await asyncio.wait_for(events.get(), 30)
        if event.kind == "service.state" and event.fields["state"] == state:
            return event


async def restart_latency(base: Path, rounds: int) -> dict[str, list[float]]:
    """Kill the child ``rounds`` times; bare child starts are interleaved so both see the same noise."""
    bus = EventBus()
    queue: asyncio.Queue[Event] = asyncio.Queue()

    async def pump() -> None:
        async for event in bus.subscribe():
            queue.put_nowait(event)

    pumping = asyncio.create_task(pump())
    await asyncio.sleep(0)
    sup = Supervisor(
        [spec("bench", free_port())],
        logs_dir=base / "logs",
        run_dir=base / "run",
        state_dir=base / "state",
        events=bus,
    )
    await sup.start("bench")
    running = await next_state(queue, "RUNNING")
    figures: dict[str, list[float]] = {"total": [], "react": [], "ready": [], "bare": []}
    for _ in range(rounds):
        figures["bare"] += await child_start_time(1)
        pid = int(running.fields["pid"])
        killed = time.time()
        os.kill(pid, signal.SIGKILL)
        backoff = await next_state(queue, "BACKOFF")
        starting = await next_state(queue, "STARTING")
        running = await next_state(queue, "RUNNING")
        delay = float(backoff.fields["delay"])
        figures["total"].append(running.time - killed - delay)
        figures["react"].append(starting.time - killed - delay)
        figures["ready"].append(running.time - starting.time)
    await sup.stop_all()
    pumping.cancel()
    return figures


async def idle_cpu(base: Path, seconds: float) -> tuple[float, int]:
    specs = [spec(f"idle{i}", free_port(), memory_limit_bytes=512 * 2**20) for i in range(3)]
    sup = Supervisor(specs, logs_dir=base / "logs", run_dir=base / "run", state_dir=base / "state")
    for s in specs:
        await sup.start(s.name)
    for s in specs:
        await sup.wait_for(s.name, {"RUNNING"}, 30)  # type: ignore[arg-type]
    me = psutil.Process()
    before, wall = me.cpu_times(), time.monotonic()
    await asyncio.sleep(seconds)
    after, elapsed = me.cpu_times(), time.monotonic() - wall
    rss = me.memory_info().rss
    await sup.stop_all()
    cpu = (after.user + after.system - before.user - before.system) / elapsed * 100
    return cpu, rss


def describe(values: list[float]) -> str:
    ms = sorted(v * 1000 for v in values)
    p90 = ms[min(len(ms) - 1, int(len(ms) * 0.9))]
    return f"median {statistics.median(ms):6.1f} ms  p90 {p90:6.1f} ms  max {ms[-1]:6.1f} ms  (n={len(ms)})"


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--idle-seconds", type=float, default=30.0)
    args = parser.parse_args()
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(30))
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        fig = await restart_latency(base, args.rounds)
        cpu, rss = await idle_cpu(base, args.idle_seconds)
    bare = statistics.median(fig["bare"])
    print(f"backoff configured: {BACKOFF * 1000:.0f} ms (subtracted below)")
    print(f"child's own start time (spawn -> /health 200, no supervisor): {describe(fig['bare'])}")
    print(f"child death -> restarted child RUNNING, minus backoff:        {describe(fig['total'])}")
    print(f"  death -> STARTING minus backoff (exit noticed, reaped, respawn): {describe(fig['react'])}")
    print(f"  STARTING -> RUNNING (spawn, child start, probe sees it):      {describe(fig['ready'])}")
    target = 150 + bare * 1000
    verdict = "OK" if statistics.median(fig["total"]) * 1000 <= target else "OVER"
    print(f"  target <= 150 ms + child start = {target:.0f} ms (median): {verdict}")
    print(
        f"supervisor CPU with 3 idle children over {args.idle_seconds:.0f} s: {cpu:.3f} % "
        f"({'OK' if cpu < 1 else 'OVER'}, target < 1 %); supervisor RSS {rss / 2**20:.0f} MiB"
    )


if __name__ == "__main__":
    asyncio.run(main())

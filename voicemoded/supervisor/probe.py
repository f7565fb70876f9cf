"""Readiness probes: a child is RUNNING only once it answers, not once it was spawned.

Raw asyncio streams rather than an HTTP client: one GET with ``Connection: close`` is all a probe needs, and
it keeps the daemon's idle cost and imports small.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from voicemoded.supervisor.spec import HttpProbe, Probe, TcpProbe


async def probe_once(probe: Probe, host: str, port: int) -> bool:
    """One attempt; any connection error, timeout or non-2xx answer is simply "not ready yet"."""
    try:
        async with asyncio.timeout(probe.timeout):
            reader, writer = await asyncio.open_connection(host, port)
            try:
                if isinstance(probe, TcpProbe):
                    return True
                name = f"[{host}]" if ":" in host else host  # an IPv6 literal is bracketed in Host
                writer.write(
                    f"GET {probe.path} HTTP/1.1\r\nHost: {name}:{port}\r\nConnection: close\r\n\r\n".encode()
                )
                await writer.drain()
                status = (await reader.readline()).split()
                return len(status) >= 2 and status[1][:1] == b"2"
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
    except (OSError, TimeoutError, asyncio.IncompleteReadError):
        return False


_EAGER_PAUSE = 0.01
_EAGER_FOR = 2.0


async def wait_ready(probe: Probe, host: str, port: int, interval: float) -> None:
    """Probe until it passes; the caller bounds it with the start timeout and the child's exit.

    For the first two seconds the probe runs every 10 ms (a restart is seen within ~10 ms of the
    server being up), then every ``interval``: a server loading a model for a minute costs little.
    """
    eager_until = time.monotonic() + _EAGER_FOR
    while not await probe_once(probe, host, port):
        await asyncio.sleep(min(_EAGER_PAUSE, interval) if time.monotonic() < eager_until else interval)


__all__ = ["HttpProbe", "Probe", "TcpProbe", "probe_once", "wait_ready"]

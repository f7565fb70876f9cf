"""Readiness probes against real sockets: 2xx passes, anything else or nothing is "not yet"."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from voicemoded.supervisor.probe import HttpProbe, TcpProbe, probe_once
from voicemoded.testing.ports import free_port


@pytest.fixture
async def http_server() -> AsyncIterator[int]:
    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await reader.readline()
        path = request.split()[1]
        status = {b"/health": b"200 OK", b"/hang": None}.get(path, b"503 Service Unavailable")
        if status is None:
            await asyncio.sleep(5)
        else:
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "127.0.0.1", 0)
    yield server.sockets[0].getsockname()[1]
    server.close()


async def test_http_probe_passes_only_on_2xx(http_server: int) -> None:
    assert await probe_once(HttpProbe("/health"), "127.0.0.1", http_server)
    assert not await probe_once(HttpProbe("/loading"), "127.0.0.1", http_server)
    assert not await probe_once(HttpProbe("/hang", timeout=0.2), "127.0.0.1", http_server)


async def test_probes_fail_on_a_closed_port(http_server: int) -> None:
    closed = free_port()
    assert not await probe_once(HttpProbe(), "127.0.0.1", closed)
    assert not await probe_once(TcpProbe(), "127.0.0.1", closed)
    assert await probe_once(TcpProbe(), "127.0.0.1", http_server)


async def test_an_ipv6_probe_brackets_the_host_name() -> None:
    """Engines serve only well-formed loopback Host names; ``::1:2022`` is not one, ``[::1]:2022`` is."""
    hosts: list[bytes] = []

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.readline()
        while (line := await reader.readline()) not in (b"\r\n", b""):
            if line.lower().startswith(b"host:"):
                hosts.append(line.split(b":", 1)[1].strip())
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(answer, "::1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        assert await probe_once(HttpProbe("/health"), "::1", port)
    finally:
        server.close()
    assert hosts == [f"[::1]:{port}".encode()]

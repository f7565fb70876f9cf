"""A tiny real HTTP/1.1 server on 127.0.0.1 that speaks the OpenAI audio API and misbehaves on request.

Real servers do not refuse, hang or truncate on cue, so the failover tests need this one. It is a real
socket server (asyncio streams), not a mock: the SDK, httpx and the kernel all see the real thing.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import struct
from dataclasses import dataclass, field
from typing import Any

#: Modes for POST requests (speech and transcriptions).
MODES = ("ok", "http500", "reject400", "hang_headers", "hang_mid", "truncated", "wrong_type", "empty")


def closed_port_url() -> str:
    """A loopback URL where nothing listens: connecting is refused at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def tone(frames: int = 2400) -> bytes:
    """Deterministic non-silent PCM s16le (frames * 2 bytes)."""
    return b"".join(((i * 37) % 2000 - 1000).to_bytes(2, "little", signed=True) for i in range(frames))


@dataclass
class Request:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class FaultServer:
    mode: str = "ok"
    probe_mode: str = "ok"
    """``ok``, ``http500`` or ``hang`` for GET /health, /v1/models and /v1/audio/voices."""
    models: tuple[str, ...] = ("tts-1", "kokoro")
    voices: tuple[str, ...] | None = ("af_sky", "af_nova", "am_adam")
    audio: bytes = field(default_factory=tone)
    chunk: int = 1200
    transcript: str = "hello world"
    truncate_at: int = 1001
    requests: list[Request] = field(default_factory=list)
    drop_reused: str = ""
    """``reset`` or ``close``: a request arriving on a kept-alive connection is dropped unanswered, with an
    RST or a plain close, the way a server's idle timeout races a client reusing the connection."""
    dropped: int = 0

    def __post_init__(self) -> None:
        self._server: asyncio.Server | None = None
        self._release = asyncio.Event()
        self.hanging = asyncio.Event()
        self._writers: set[asyncio.StreamWriter] = set()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def posts(self) -> list[Request]:
        return [r for r in self.requests if r.method == "POST"]

    async def start(self, port: int = 0) -> FaultServer:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        self._release.set()
        for writer in list(self._writers):
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def __aenter__(self) -> FaultServer:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        served = 0
        try:
            while True:
                request = await self._read(reader)
                if request is None:
                    return
                if served and self.drop_reused:
                    self.dropped += 1
                    if self.drop_reused == "reset":
                        linger = struct.pack("ii", 1, 0)
                        writer.get_extra_info("socket").setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, linger
                        )
                    writer.transport.abort()
                    return
                served += 1
                self.requests.append(request)
                if not await self._answer(request, writer):
                    return
        except (ConnectionError, asyncio.IncompleteReadError):
            return
        finally:
            self._writers.discard(writer)
            writer.close()

    async def _read(self, reader: asyncio.StreamReader) -> Request | None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
        except (asyncio.IncompleteReadError, ConnectionError):
            return None
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        headers = {}
        for line in lines[1:]:
            if ":" in line:
                key, value = line.split(":", 1)
                headers[key.strip().lower()] = value.strip()
        body = b""
        if "content-length" in headers:
            body = await reader.readexactly(int(headers["content-length"]))
        elif headers.get("transfer-encoding", "").lower() == "chunked":
            while True:
                size = int((await reader.readline()).strip(), 16)
                data = await reader.readexactly(size + 2)
                if size == 0:
                    break
                body += data[:-2]
        return Request(method, path, headers, body)

    async def _hang(self) -> None:
        self.hanging.set()
        await self._release.wait()

    async def _answer(self, request: Request, writer: asyncio.StreamWriter) -> bool:
        path = request.path.split("?")[0]
        if request.method == "GET":
            if self.probe_mode == "hang":
                await self._hang()
                return False
            if self.probe_mode == "http500":
                return await self._json(writer, 500, {"error": {"message": "probe boom"}})
            if path == "/health":
                return await self._json(writer, 200, {"status": "ok"})
            if path == "/v1/models":
                return await self._json(writer, 200, {"data": [{"id": m} for m in self.models]})
            if path == "/v1/audio/voices" and self.voices is not None:
                return await self._json(writer, 200, {"voices": list(self.voices)})
            return await self._json(writer, 404, {"detail": "Not Found"})
        mode = self.mode
        if mode == "http500":
            return await self._json(writer, 500, {"error": {"message": "engine exploded"}})
        if mode == "reject400":
            return await self._json(writer, 400, {"error": {"message": "unknown voice, valid: joe"}})
        if mode == "hang_headers":
            await self._hang()
            return False
        if mode == "wrong_type":
            return await self._send(writer, 200, "text/html", b"<html>captive portal</html>")
        if path.endswith("/audio/transcriptions"):
            return await self._json(writer, 200, {"text": self.transcript})
        if mode == "empty":
            return await self._send(writer, 200, "audio/pcm", b"")
        if mode == "truncated":
            head = self._head(200, "audio/pcm", {"Content-Length": str(len(self.audio))})
            writer.write(head + self.audio[: self.truncate_at])
            await writer.drain()
            return False
        writer.write(self._head(200, "audio/pcm", {"Transfer-Encoding": "chunked"}))
        for start in range(0, len(self.audio), self.chunk):
            piece = self.audio[start : start + self.chunk]
            writer.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
            await writer.drain()
            if mode == "hang_mid":
                await self._hang()
                return False
        writer.write(b"0\r\n\r\n")
        await writer.drain()
        return True

    @staticmethod
    def _head(status: int, content_type: str, extra: dict[str, str]) -> bytes:
        lines = [f"HTTP/1.1 {status} X", f"Content-Type: {content_type}"]
        lines += [f"{k}: {v}" for k, v in extra.items()]
        return ("\r\n".join(lines) + "\r\n\r\n").encode()

    async def _send(self, writer: asyncio.StreamWriter, status: int, content_type: str, body: bytes) -> bool:
        writer.write(self._head(status, content_type, {"Content-Length": str(len(body))}) + body)
        await writer.drain()
        return True

    async def _json(self, writer: asyncio.StreamWriter, status: int, document: Any) -> bool:
        return await self._send(writer, status, "application/json", json.dumps(document).encode())

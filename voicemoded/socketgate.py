"""The daemon's public socket: every connection's peer uid is checked before a byte reaches gRPC.

grpc does not hand a server the accepted connection's file descriptor, and its local credentials record
no peer uid, so the check cannot live inside grpc. The gate owns the public socket instead: it reads
``SO_PEERCRED`` on accept, and either splices the connection to grpc's own socket (in a private 0700
folder only the daemon's user can enter) or answers every call the peer makes on it with
``PERMISSION_DENIED`` and a message saying why. A refused connection is bounded in time and bytes, and
ends the way HTTP/2 says a server should: a first GOAWAY announcing it, calls already on their way still
answered for a moment, then the final GOAWAY and the close. (Closing right after the first answer left a
client's next call racing the close, and a client without transparent retries saw that call fail as
``UNAVAILABLE`` — "is the daemon running?" — instead of being told why.) Refusals are logged without
letting a flood of them flood the log.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import os
import socket
import time
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, cast

import structlog

from voicemoded.peercred import PeerCredentials, PeerPolicy, peer_credentials

log = structlog.get_logger(__name__)

REFUSAL_DEADLINE = 5.0
"""Seconds a refused connection lasts (every call in it answered) before it is told to go away."""
REFUSAL_GRACE = 0.5
"""After that notice, calls the peer had already sent are still answered for this long; then it closes."""
REFUSAL_MAX_BYTES = 256 * 1024
"""What a refused peer may send on one connection; more and the connection is dropped."""
LOG_INTERVAL = 1.0
"""Refusals of one uid are logged at most once per interval; the next line counts those left out."""

_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
_HEADERS, _SETTINGS, _PING, _GOAWAY = 0x1, 0x4, 0x6, 0x7
_END_STREAM, _END_HEADERS, _ACK = 0x1, 0x4, 0x1
_PERMISSION_DENIED = 7
_LAST_STREAM = 2**31 - 1


def _frame(kind: int, flags: int, stream: int, payload: bytes = b"") -> bytes:
    return len(payload).to_bytes(3, "big") + bytes((kind, flags)) + stream.to_bytes(4, "big") + payload


def _hpack_int(value: int) -> bytes:
    """An HPACK integer with a 7-bit prefix (RFC 7541 5.1), as string lengths are written."""
    if value < 127:
        return bytes((value,))
    out, value = bytearray((127,)), value - 127
    while value >= 128:
        out.append((value & 0x7F) | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _literal(name: bytes, value: bytes) -> bytes:
    """A header field literal without indexing, with a new name (RFC 7541 6.2.2): no table state."""
    return b"\x00" + _hpack_int(len(name)) + name + _hpack_int(len(value)) + value


def _grpc_message(text: str) -> bytes:
    """gRPC's percent-encoding of ``grpc-message``: printable ASCII except ``%`` passes through."""
    raw = text.encode()
    return b"".join(bytes((b,)) if 0x20 <= b <= 0x7E and b != 0x25 else b"%%%02X" % b for b in raw)


def goaway(last_stream: int) -> bytes:
    """GOAWAY with NO_ERROR: streams up to ``last_stream`` were (or will be) answered, none after."""
    return _frame(_GOAWAY, 0, 0, last_stream.to_bytes(4, "big") + (0).to_bytes(4, "big"))


def refusal_response(stream: int, peer: PeerCredentials, message: str, hint: str) -> bytes:
    """A trailers-only ``PERMISSION_DENIED`` for ``stream``: the whole answer to one call."""
    from voicemoded.api.v1 import common_pb2

    detail = common_pb2.ErrorDetail(
        code="PERMISSION_DENIED",
        message=message,
        hint=hint,
        fields={"uid": str(peer.uid), "pid": str(peer.pid)},
    ).SerializeToString()
    block = b"".join(
        (
            b"\x88",  # :status 200, static table entry 8
            _literal(b"content-type", b"application/grpc"),
            _literal(b"grpc-status", str(_PERMISSION_DENIED).encode()),
            _literal(b"grpc-message", _grpc_message(message)),
            _literal(b"voicemode-error-bin", base64.b64encode(detail).rstrip(b"=")),
        )
    )
    return _frame(_HEADERS, _END_STREAM | _END_HEADERS, stream, block)


class _RefusalLog:
    """``socket.peer_refused`` per uid, at most once per :data:`LOG_INTERVAL`."""

    def __init__(self) -> None:
        self._last: dict[int, tuple[float, int]] = {}

    def refused(self, peer: PeerCredentials, socket_path: str) -> None:
        now = time.monotonic()
        last, left_out = self._last.get(peer.uid, (-LOG_INTERVAL, 0))
        if now - last < LOG_INTERVAL:
            self._last[peer.uid] = (last, left_out + 1)
            return
        if len(self._last) > 1024:  # many uids: forget the oldest rather than grow without bound
            self._last.pop(next(iter(self._last)))
        self._last[peer.uid] = (now, 0)
        log.warning(
            "socket.peer_refused",
            uid=peer.uid,
            gid=peer.gid,
            pid=peer.pid,
            socket=socket_path,
            refusals_not_logged=left_out,
        )


class _Refusal:
    """Speaks just enough HTTP/2 to tell a refused gRPC client why, on each of its calls."""

    def __init__(self, transport: asyncio.Transport, peer: PeerCredentials, policy: PeerPolicy) -> None:
        self._transport = transport
        self._peer = peer
        self._policy = policy
        self._buffer = bytearray()
        self._seen = 0
        self._preface = False
        self._last_stream = 0
        self._closed = False
        transport.write(_frame(_SETTINGS, 0, 0))
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_DEADLINE, self._notice)

    def data_received(self, data: bytes) -> None:
        if self._closed:
            return
        self._seen += len(data)
        if self._seen > REFUSAL_MAX_BYTES:
            self.close(abort=True)
            return
        self._buffer += data
        if not self._preface:
            if len(self._buffer) < len(_PREFACE):
                return
            if not self._buffer.startswith(_PREFACE):
                self.close(abort=True)  # not HTTP/2: nothing it could read
                return
            del self._buffer[: len(_PREFACE)]
            self._preface = True
        while len(self._buffer) >= 9:
            length = int.from_bytes(self._buffer[:3], "big")
            if len(self._buffer) < 9 + length:
                return
            kind, flags = self._buffer[3], self._buffer[4]
            stream = int.from_bytes(self._buffer[5:9], "big") & 0x7FFFFFFF
            payload = bytes(self._buffer[9 : 9 + length])
            del self._buffer[: 9 + length]
            if kind == _SETTINGS and not flags & _ACK:
                self._transport.write(_frame(_SETTINGS, _ACK, 0))
            elif kind == _PING and not flags & _ACK:
                self._transport.write(_frame(_PING, _ACK, 0, payload))
            elif kind == _HEADERS and stream > self._last_stream:  # a new call (not a call's trailers)
                self._last_stream = stream
                message, hint = self._policy.refusal(self._peer)
                self._transport.write(refusal_response(stream, self._peer, message, hint))

    def _notice(self) -> None:
        """Time is up: say no new call will be answered, but answer those already sent."""
        if not self._preface:
            self.close(abort=True)  # never spoke HTTP/2: nothing to announce
            return
        self._transport.write(goaway(_LAST_STREAM))
        self._timer = asyncio.get_running_loop().call_later(REFUSAL_GRACE, self._finish)

    def _finish(self) -> None:
        self._transport.write(goaway(self._last_stream))
        self.close()

    def close(self, *, abort: bool = False) -> None:
        self._closed = True
        self._timer.cancel()
        if abort:
            self._transport.abort()
        else:
            self._transport.close()  # after what was written has been sent


class _Upstream(asyncio.Protocol):
    """grpc's end of a spliced connection: bytes go back to the client, with flow control."""

    def __init__(self, accepted: _Accepted) -> None:
        self._accepted = accepted

    def data_received(self, data: bytes) -> None:
        self._accepted.to_client(data)

    def eof_received(self) -> bool:
        return self._accepted.eof(from_client=False)

    def pause_writing(self) -> None:
        self._accepted.pause_client()

    def resume_writing(self) -> None:
        self._accepted.resume_client()

    def connection_lost(self, exc: Exception | None) -> None:
        self._accepted.close()


class _Accepted(asyncio.Protocol):
    """One connection to the public socket: checked, then spliced to grpc or refused."""

    def __init__(self, gate: SocketGate) -> None:
        self._gate = gate
        self._client: asyncio.Transport | None = None
        self._upstream: asyncio.Transport | None = None
        self._refusal: _Refusal | None = None
        self._eofs = 0

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        client = self._client = cast(asyncio.Transport, transport)
        try:
            peer = peer_credentials(cast(socket.socket, client.get_extra_info("socket")))
        except OSError as exc:
            log.warning("socket.peer_unknown", error=str(exc), socket=str(self._gate.public))
            client.abort()
            return
        if not self._gate.policy.allows(peer):
            self._gate.refusals.refused(peer, str(self._gate.public))
            self._refusal = _Refusal(client, peer, self._gate.policy)
            return
        self._gate.connections.add(self)
        client.pause_reading()
        self._gate.spawn(self._connect())

    async def _connect(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            upstream, _ = await loop.create_unix_connection(lambda: _Upstream(self), str(self._gate.private))
        except OSError as exc:  # grpc is stopping or gone: the client sees a closed connection
            log.debug("socket.upstream_unreachable", error=str(exc))
            self.close()
            return
        self._upstream = upstream
        if self._client is None or self._client.is_closing():
            upstream.close()
            return
        self._client.resume_reading()

    # --- client -> grpc ------------------------------------------------------------------------
    def data_received(self, data: bytes) -> None:
        if self._refusal is not None:
            self._refusal.data_received(data)
        elif self._upstream is not None:
            self._upstream.write(data)

    def eof_received(self) -> bool:
        if self._refusal is not None:
            self._refusal.close()
            return False
        return self.eof(from_client=True)

    def pause_writing(self) -> None:  # the client reads slower than grpc writes
        if self._upstream is not None:
            self._upstream.pause_reading()

    def resume_writing(self) -> None:
        if self._upstream is not None:
            self._upstream.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._refusal is not None:
            self._refusal.close()
        self.close()

    # --- grpc -> client ------------------------------------------------------------------------
    def to_client(self, data: bytes) -> None:
        if self._client is not None:
            self._client.write(data)

    def pause_client(self) -> None:
        if self._client is not None and not self._client.is_closing():
            self._client.pause_reading()

    def resume_client(self) -> None:
        if self._client is not None and not self._client.is_closing():
            self._client.resume_reading()

    def eof(self, *, from_client: bool) -> bool:
        """Pass a half-close on; once both directions have ended, the connection is done."""
        self._eofs += 1
        other = self._upstream if from_client else self._client
        if self._eofs >= 2 or other is None or not other.can_write_eof():
            self.close()
            return False
        other.write_eof()
        return True

    def close(self) -> None:
        self._gate.connections.discard(self)
        for transport in (self._client, self._upstream):
            if transport is not None and not transport.is_closing():
                transport.close()


class SocketGate:
    """Listens on ``public`` and splices allowed peers to grpc's socket at ``private``."""

    def __init__(self, public: Path, private: Path, policy: PeerPolicy, backlog: int = 512) -> None:
        self.public = public
        self.private = private
        self.policy = policy
        self.refusals = _RefusalLog()
        self.connections: set[_Accepted] = set()
        self._backlog = backlog
        self._server: asyncio.AbstractServer | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def start(self) -> None:
        """Bind the public socket 0600 (the umask covers the moment between bind and chmod)."""
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            old_umask = os.umask(0o177)
            try:
                sock.bind(str(self.public))
            finally:
                os.umask(old_umask)
            os.chmod(self.public, 0o600)
            sock.listen(self._backlog)
            sock.setblocking(False)
            self._server = await asyncio.get_running_loop().create_unix_server(
                lambda: _Accepted(self), sock=sock
            )
        except BaseException:
            sock.close()
            raise

    def stop_accepting(self) -> None:
        if self._server is not None:
            self._server.close()

    async def close(self) -> None:
        """Stop listening and end every spliced connection (grpc has drained them by now)."""
        self.stop_accepting()
        for accepted in list(self.connections):
            accepted.close()
        for task in list(self._tasks):
            task.cancel()
        for task in list(self._tasks):
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

"""Copy MCP JSON-RPC between stdio and one McpTunnel stream; answer with an error when there is no daemon.

Two threads: one reads stdin (one JSON-RPC message per line, per the MCP stdio transport), answers the
lines that are not JSON-RPC messages itself (see ``framing``) and queues the others for the gRPC
request stream; the main thread writes each message the daemon sends to the private
copy of fd 1. fd 1 itself points at stderr while the tunnel runs, so nothing but JSON-RPC can reach the
client, whatever a library prints.
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import sys
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import grpc

from voicemode_mcp import framing
from voicemoded import __version__
from voicemoded.api.client import Client, ClientError, McpClose, translate

EOF = b""
#: How long the daemon gets to end the session after the client closed stdin.
CLOSE_GRACE = 5.0
#: JSON-RPC "server error" range; the message says what failed and the data says how to fix it.
DAEMON_ERROR = -32000
#: Messages read ahead of the daemon; beyond that the client's writes wait in the pipe.
INBOX = 64


def warn(message: str) -> None:
    print(f"voicemode-mcp: {message}", file=sys.stderr, flush=True)


class Wire:
    """The JSON-RPC channel to the client: a private duplicate of fd 1; fd 1 now goes to stderr."""

    def __init__(self) -> None:
        self._fd = os.dup(1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._lock = threading.Lock()

    def send(self, message: bytes) -> None:
        data = memoryview(message + b"\n")
        with self._lock:
            while data:
                data = data[os.write(self._fd, data) :]


def read_stdin(inbox: queue.Queue[bytes], wire: Wire, fd: int = 0) -> None:
    """Queue each well-formed message of stdin; answer every other line at once; EOF when stdin closes.

    The framing is checked here, before anything crosses to the daemon, so a broken line costs its
    sender one error reply and nothing else: the session and the calls in flight go on.
    """
    try:
        for line in framing.read_lines(fd):
            if isinstance(line, framing.Oversize):
                warn(f"refused a message of {line.size} bytes (limit {framing.MAX_LINE_BYTES})")
                wire.send(framing.oversize_reply(line))
                continue
            refusal = framing.check(line)
            if refusal is not None:
                wire.send(refusal)
            else:
                inbox.put(line)
    except OSError as exc:
        warn(f"reading stdin failed: {exc}")
    finally:
        inbox.put(EOF)


def start_reader(wire: Wire) -> queue.Queue[bytes]:
    # Bounded: a client writing faster than the daemon answers is held back by the pipe, not by memory.
    inbox: queue.Queue[bytes] = queue.Queue(maxsize=INBOX)
    threading.Thread(target=read_stdin, args=(inbox, wire), name="stdin", daemon=True).start()
    return inbox


def error_reply(raw: bytes, error: ClientError) -> bytes | None:
    """A JSON-RPC error answering ``raw`` when it is a request; None for notifications and responses."""
    refusal = framing.check(raw)
    if refusal is not None:
        return refusal
    message: Any = json.loads(raw)
    if not isinstance(message, dict) or "method" not in message or "id" not in message:
        return None
    text = f"voicemode is not available: {error.message.rstrip('.')}."
    if error.hint:
        text += f" To fix it: {error.hint}"
    reply = {
        "jsonrpc": "2.0",
        "id": message["id"],
        "error": {
            "code": DAEMON_ERROR,
            "message": text,
            "data": {"reason": error.message, "fix": error.hint},
        },
    }
    return json.dumps(reply, ensure_ascii=False).encode()


def answer_with_error(
    wire: Wire, inbox: queue.Queue[bytes], error: ClientError, pending: Iterable[bytes] = ()
) -> int:
    """No session is possible: answer every request with the reason until the client closes stdin."""
    warn(str(error))

    def messages() -> Iterator[bytes]:
        yield from pending
        yield from iter(inbox.get, EOF)

    for raw in messages():
        reply = error_reply(raw, error)
        if reply is not None:
            wire.send(reply)
    return 1


class Tunnel:
    def __init__(self, client: Client, wire: Wire, inbox: queue.Queue[bytes]) -> None:
        self.client = client
        self.wire = wire
        self.inbox = inbox
        self.forwarded: list[bytes] = []
        self.stdin_closed = threading.Event()
        self.stopping = threading.Event()

    def messages(self) -> Iterator[bytes | McpClose]:
        while True:
            raw = self.inbox.get()
            if self.stopping.is_set():
                return
            if raw == EOF:
                self.stdin_closed.set()
                yield McpClose("stdin closed")
                return
            if len(self.forwarded) < 1:
                self.forwarded.append(raw)  # kept to answer it if the stream fails before any reply
            yield raw

    def run(self) -> int:
        call = self.client.mcp_session(self.messages(), tunnel_version=__version__)
        replied = False
        closer = threading.Thread(target=self._close_after_stdin, args=(call,), daemon=True)
        closer.start()
        try:
            for frame in call:
                kind = frame.WhichOneof("frame")
                if kind == "message":
                    self.wire.send(frame.message)
                    replied = True
                elif kind == "close":
                    warn(f"the daemon closed the session: {frame.close.reason}")
                    break
            return 0
        except grpc.RpcError as exc:
            if self.stdin_closed.is_set() and exc.code() == grpc.StatusCode.CANCELLED:
                return 0
            error = translate(exc, self.client.socket)
            if not replied:
                return answer_with_error(self.wire, self.inbox, error, self.forwarded)
            warn(f"the session ended: {error}")
            return 1
        finally:
            self.stopping.set()
            with contextlib.suppress(queue.Full):  # a full inbox has something for the iterator to see
                self.inbox.put_nowait(EOF)  # unblock the request iterator if it still waits
            call.cancel()

    def _close_after_stdin(self, call: grpc.Future) -> None:
        """The client closed stdin: give the daemon a moment to end the session, then hang up."""
        self.stdin_closed.wait()
        if not self.stopping.wait(CLOSE_GRACE):
            warn("the daemon did not end the session after stdin closed; hanging up")
            call.cancel()

"""A real redis-server on a free loopback port, as the nodes of a multi-node LiveKit share one.

Nothing is kept: no snapshots, no append-only file, its folder private and thrown away by the caller.
It is spoken to with a few lines of RESP over a socket, enough to wait for ``PING`` and to read what
the LiveKit nodes keep there; no Redis client library is needed.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from voicemoded.testing.ports import free_port
from voicemoded.testing.processes import stop_group

START_TIMEOUT = 10.0
REPLY_TIMEOUT = 2.0

Reply = bytes | int | list["Reply"] | None


class RedisError(RuntimeError):
    """An ``-ERR …`` reply."""


@dataclass(frozen=True, slots=True)
class RedisServer:
    """A running redis-server and where it listens."""

    port: int
    process: subprocess.Popen[bytes]
    log: Path

    @property
    def address(self) -> str:
        """``127.0.0.1:<port>``, as ``VOICEMODE_LIVEKIT_REDIS`` and livekit's ``redis.address`` take it."""
        return f"127.0.0.1:{self.port}"

    def command(self, *args: str) -> Reply:
        """One command on a fresh connection; its reply (bulk strings as bytes)."""
        return command(self.port, *args)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""


def server_binary() -> str | None:
    """The ``redis-server`` on PATH, or None."""
    return shutil.which("redis-server")


ABSENT_REASON = "no redis-server on PATH (Debian: apt-get install redis-server; scripts/setup.sh installs it)"


@contextlib.contextmanager
def running_redis(folder: Path) -> Iterator[RedisServer]:
    """Start redis-server on 127.0.0.1 with ``folder`` as its working dir; stop it on exit."""
    binary = server_binary()
    if binary is None:
        raise FileNotFoundError(ABSENT_REASON)
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    port = free_port()
    log = folder / f"redis-{port}.log"
    args = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
    args += ["--dir", str(folder), "--daemonize", "no", "--protected-mode", "yes"]
    with log.open("wb") as out:
        process = subprocess.Popen(
            args, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    server = RedisServer(port=port, process=process, log=log)
    try:
        wait_answering(server)
        yield server
    finally:
        stop_group(process)


def wait_answering(server: RedisServer, timeout: float = START_TIMEOUT) -> None:
    """Until it answers ``PING`` with ``PONG``; its output if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {server.process.returncode}:\n{server.output()}")
        with contextlib.suppress(OSError):
            if server.command("PING") == b"PONG":
                return
        time.sleep(0.02)
    raise TimeoutError(f"redis-server did not answer within {timeout:g} s:\n{server.output()}")


def command(port: int, *args: str) -> Reply:
    """Send one RESP command to 127.0.0.1:``port`` and read its whole reply."""
    request = f"*{len(args)}\r\n".encode() + b"".join(
        b"$%d\r\n%s\r\n" % (len(part), part) for part in (arg.encode() for arg in args)
    )
    with socket.create_connection(("127.0.0.1", port), timeout=REPLY_TIMEOUT) as sock:
        sock.sendall(request)
        with sock.makefile("rb") as stream:
            return _reply(stream)


def _reply(stream: IO[bytes]) -> Reply:
    line = stream.readline()
    if not line.endswith(b"\r\n"):
        raise ConnectionError("redis-server closed the connection mid-reply")
    kind, body = line[:1], line[1:-2]
    if kind == b"+":
        return body
    if kind == b"-":
        raise RedisError(body.decode(errors="replace"))
    if kind == b":":
        return int(body)
    if kind == b"$":
        size = int(body)
        if size < 0:
            return None
        return stream.read(size + 2)[:-2]
    if kind == b"*":
        count = int(body)
        return None if count < 0 else [_reply(stream) for _ in range(count)]
    raise ConnectionError(f"not a RESP reply: {line[:40]!r}")

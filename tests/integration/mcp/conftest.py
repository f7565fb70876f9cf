"""A daemon with the McpTunnel service on a temp socket, the real tunnel, and the daemon's event stream."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import grpc
import pytest
from mcp.client.session import ClientSession
from mcp.client.stdio import StdioServerParameters, stdio_client

from voicemoded.api.v1 import common_pb2, daemon_pb2
from voicemoded.testing.daemon import DaemonHandle, daemon_handle
from voicemoded.testing.jsonrpc import INITIALIZE, INITIALIZED

HOST = Path(__file__).with_name("host_daemon.py")


class RawTunnel:
    """The tunnel as a plain child process: bytes in, bytes out, nothing interpreted on the way.

    Its stdout and stderr are drained by threads, so a test waits for a line with a timeout (a tunnel
    that never answers fails the test instead of hanging it) and a chatty stderr never blocks the tunnel.
    """

    def __init__(
        self,
        handle: DaemonHandle,
        *args: str | bytes,
        env: Mapping[str, str] | Mapping[bytes, bytes] | None = None,
        cwd: Path | bytes | None = None,
    ) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voicemode_mcp", *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=handle.env if env is None else env,  # bytes keys and values are fine on POSIX
            cwd=cwd or handle.root,
        )
        self.lines: list[bytes] = []
        self._out: queue.Queue[bytes] = queue.Queue()
        self._err = bytearray()
        self._threads = [
            threading.Thread(target=self._drain_out, daemon=True),
            threading.Thread(target=self._drain_err, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _drain_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._out.put(line)
        self._out.put(b"")

    def _drain_err(self) -> None:
        assert self.proc.stderr is not None
        while chunk := os.read(self.proc.stderr.fileno(), 65536):
            self._err += chunk

    @property
    def stderr(self) -> str:
        return self._err.decode(errors="replace")

    def send(self, message: dict[str, Any]) -> None:
        self.send_raw(json.dumps(message).encode())

    def send_raw(self, data: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(data + b"\n")
        self.proc.stdin.flush()

    def read(self, timeout: float = 15.0) -> dict[str, Any]:
        try:
            line = self._out.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"no reply within {timeout} s; stderr: {self.stderr}") from None
        assert line, f"tunnel closed stdout (exit {self.proc.poll()}); stderr: {self.stderr}"
        self.lines.append(line)
        return json.loads(line)

    def read_until(self, id_: int | str, timeout: float = 15.0) -> dict[str, Any]:
        while "id" not in (message := self.read(timeout)) or message["id"] != id_:
            pass
        return message

    def finish(self, timeout: float = 15.0) -> tuple[bytes, str]:
        """Close stdin and collect the rest of stdout and all of stderr."""
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout)
        for thread in self._threads:
            thread.join(timeout)
        while line := self._out.get_nowait() if not self._out.empty() else b"":
            self.lines.append(line)
        return b"".join(self.lines), self.stderr


def host_command(socket: Path) -> list[str]:
    return [sys.executable, str(HOST), "--socket", str(socket)]


def start_host(handle: DaemonHandle, extra_env: Mapping[str, str] | None = None) -> None:
    """Like ``DaemonHandle.start`` but runs the host script (the daemon plus the McpTunnel service)."""
    handle.log_path = handle.root / f"host-{int(time.time() * 1000)}.log"
    with open(handle.log_path, "wb") as log:
        handle.process = subprocess.Popen(
            host_command(handle.socket),
            env={**handle.env, **(extra_env or {})},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    with handle.client() as client:
        proc = handle.process
        client.wait_until_ready(30.0, alive=lambda: proc.poll() is None)


class EventWatcher:
    """Follows WatchEvents in a thread; tests wait for an event with a timeout (never sleep)."""

    def __init__(self, handle: DaemonHandle) -> None:
        self._client = handle.client()
        self._call = self._client.daemon.WatchEvents(daemon_pb2.WatchEventsRequest(replay=200))
        self.events: list[common_pb2.Event] = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._follow, daemon=True)
        self._thread.start()

    def _follow(self) -> None:
        try:
            for event in self._call:
                with self._cond:
                    self.events.append(event)
                    self._cond.notify_all()
        except grpc.RpcError:
            pass

    def wait_for(
        self, kind: str, where: Callable[[common_pb2.Event], bool] = lambda e: True, timeout: float = 15.0
    ) -> common_pb2.Event:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for event in self.events:
                    if event.kind == kind and where(event):
                        return event
                left = deadline - time.monotonic()
                if left <= 0:
                    kinds = [e.kind for e in self.events]
                    raise AssertionError(f"no {kind} event within {timeout} s; saw {kinds}")
                self._cond.wait(left)

    def close(self) -> None:
        self._call.cancel()
        self._client.close()


@pytest.fixture(scope="module")
def host() -> Iterator[DaemonHandle]:
    """One daemon for the module: sessions are told apart by their ids, not by global counts."""
    gen = daemon_handle()
    handle = next(gen)
    handle.env["OPENAI_API_KEY"] = "sk-test-not-a-real-key-1234"
    # No livekit-server where the setting points: installing it says what to provide (never a Go build).
    handle.env["VOICEMODE_LIVEKIT_SERVER_PATH"] = str(handle.root / "no-livekit-server")
    start_host(handle)
    try:
        yield handle
    finally:
        with contextlib.suppress(StopIteration):
            next(gen)


@pytest.fixture
def events(host: DaemonHandle) -> Iterator[EventWatcher]:
    watcher = EventWatcher(host)
    yield watcher
    watcher.close()


def tunnel_params(
    handle: DaemonHandle, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> StdioServerParameters:
    return StdioServerParameters(
        command=sys.executable,
        args=["-m", "voicemode_mcp", *args],
        env={**handle.env, **(env or {})},
        cwd=cwd or handle.root,
    )


@contextlib.asynccontextmanager
async def mcp_session(
    handle: DaemonHandle, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None
) -> AsyncIterator[ClientSession]:
    """The real MCP client on the real tunnel (spawned as the client would), not yet initialized."""
    with open(handle.root / "tunnel-stderr.log", "a") as errlog:  # noqa: ASYNC230 (opened once, tiny)
        async with (
            stdio_client(tunnel_params(handle, *args, cwd=cwd, env=env), errlog=errlog) as (read, write),
            ClientSession(read, write) as session,
        ):
            yield session


def tunnel_stderr(handle: DaemonHandle) -> str:
    path = handle.root / "tunnel-stderr.log"
    return path.read_text() if path.exists() else ""


def open_tunnel(host: DaemonHandle) -> Iterator[RawTunnel]:
    """A raw tunnel past ``initialize``; when the test is done it must end cleanly."""
    raw = RawTunnel(host)
    raw.send(INITIALIZE)
    raw.read_until(1)
    raw.send(INITIALIZED)
    yield raw
    _out, err = raw.finish()
    assert raw.proc.returncode == 0, err

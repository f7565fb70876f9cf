"""A child's output into ``<logs_dir>/<service>.log``: size-rotated, never able to stall the child.

The pipe is read in the daemon's event loop as fast as the child writes, so the child never blocks on a full
pipe. Writing to disk happens in a worker thread from an in-memory buffer; when the disk is slower than the
child for long enough to fill that buffer, output is dropped and counted (and a marker line says so) —
a chatty server losing log lines beats a speech server frozen on ``write(2)``.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import AsyncGenerator
from pathlib import Path
from typing import BinaryIO

import structlog

from voicemoded.supervisor.spec import LogSettings

log = structlog.get_logger(__name__)

_READ_SIZE = 64 * 1024
_FOLLOW_QUEUE = 2000
_MAX_PARTIAL = 64 * 1024


class RotatingFile:
    """An append-only file rotated by size into ``.1`` … ``.N``; thread-safe, used from the writer thread."""

    def __init__(self, path: Path, max_bytes: int, backups: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self.backups = backups
        self._lock = threading.Lock()
        self._file: BinaryIO | None = None
        self._size = 0

    def write(self, data: bytes) -> None:
        with self._lock:
            while data:
                f = self._open()
                room = self.max_bytes - self._size
                if room <= 0:
                    self._rotate()
                    continue
                piece = data[:room]
                if len(data) > room:
                    # Cut at the last full line that fits; a line that does not fit at all goes whole into
                    # the next file, and only a line longer than a whole file is split.
                    cut = piece.rfind(b"\n") + 1
                    if cut == 0 and self._size > 0:
                        self._rotate()
                        continue
                    if cut > 0:
                        piece = piece[:cut]
                f.write(piece)
                self._size += len(piece)
                data = data[len(piece) :]
                if data:
                    self._rotate()
            if self._file is not None:
                self._file.flush()

    def reopen(self) -> None:
        """Close and reopen by path: after logrotate moved the file, writing continues in a new one."""
        with self._lock:
            self._close()
            self._open()

    def close(self) -> None:
        with self._lock:
            self._close()

    def _open(self) -> BinaryIO:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "ab")  # noqa: SIM115 - kept open across writes, closed in _close
            self._file = f
            self._size = f.tell()
        return self._file

    def _close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def _rotate(self) -> None:
        self._close()
        if self.backups == 0:
            self.path.unlink(missing_ok=True)
            return
        for i in range(self.backups - 1, 0, -1):
            older = self.path.with_name(f"{self.path.name}.{i}")
            if older.exists():
                older.replace(self.path.with_name(f"{self.path.name}.{i + 1}"))
        if self.path.exists():
            self.path.replace(self.path.with_name(f"{self.path.name}.1"))

    def files(self) -> list[Path]:
        """Newest first: the live file, then backups that exist."""
        backups = [self.path.with_name(f"{self.path.name}.{i}") for i in range(1, self.backups + 1)]
        names = [self.path, *backups]
        return [p for p in names if p.exists()]


class _Follower:
    def __init__(self) -> None:
        self.queue: deque[str] = deque(maxlen=_FOLLOW_QUEUE)
        self.wakeup = asyncio.Event()


class LogSink:
    """One service's log: fed from its children's pipes, written in the background, tailed and followed."""

    def __init__(self, path: Path, settings: LogSettings, *, service: str = "") -> None:
        self.path = path
        self.settings = settings
        self.service = service
        self.file = RotatingFile(path, settings.max_bytes, settings.backups)
        self.written_bytes = 0
        self.dropped_bytes = 0
        self._unreported_drop = 0
        self._pending: deque[bytes] = deque()
        self._pending_bytes = 0
        self._has_data = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._writer: asyncio.Task[None] | None = None
        self._followers: set[_Follower] = set()
        self._partial = b""
        self._at_line_start = True
        self._closed = False

    def configure(self, settings: LogSettings) -> None:
        """New rotation limits apply from the next write (config reload)."""
        self.settings = settings
        self.file.max_bytes, self.file.backups = settings.max_bytes, settings.backups

    # -- input -------------------------------------------------------------------------------------------

    async def pump(self, reader: asyncio.StreamReader) -> None:
        """Copy a child's pipe into the log until EOF (the child and its group closed it)."""
        while chunk := await reader.read(_READ_SIZE):
            self.feed(chunk)

    def note(self, text: str) -> None:
        """A supervisor line (start, exit, kill) interleaved with the child's output where it happened."""
        self.feed((b"" if self._at_line_start else b"\n") + f"--- voicemoded: {text} ---\n".encode())

    def feed(self, data: bytes) -> None:
        """Never blocks: buffered for the writer, or dropped and counted when the buffer is full."""
        if not data or self._closed:
            return
        self._at_line_start = data.endswith(b"\n")
        if self._followers:
            self._to_followers(data)
        if self._pending_bytes + len(data) > self.settings.buffer_bytes:
            if not self._unreported_drop:
                log.warning("service.log_dropping", service=self.service, buffered=self._pending_bytes)
            self.dropped_bytes += len(data)
            self._unreported_drop += len(data)
            return
        if self._unreported_drop:
            marker = f"\n--- voicemoded: dropped {self._unreported_drop} bytes: log disk too slow ---\n"
            self._unreported_drop = 0
            self._enqueue(marker.encode())
        self._enqueue(data)

    def _enqueue(self, data: bytes) -> None:
        self._pending.append(data)
        self._pending_bytes += len(data)
        self._idle.clear()
        self._has_data.set()
        if self._writer is None:
            loop = asyncio.get_running_loop()
            self._writer = loop.create_task(self._write_loop(), name=f"log:{self.service}")

    async def _write_loop(self) -> None:
        while True:
            await self._has_data.wait()
            self._has_data.clear()
            while self._pending:
                batch = b"".join(self._pending)
                self._pending.clear()
                try:
                    await asyncio.to_thread(self.file.write, batch)
                    self.written_bytes += len(batch)
                except OSError as exc:
                    self.dropped_bytes += len(batch)
                    log.warning("service.log_write_failed", service=self.service, error=str(exc))
                finally:
                    self._pending_bytes -= len(batch)
            self._idle.set()

    async def flush(self, timeout: float = 5.0) -> None:
        """Wait until what was fed so far is on disk (for tail, stop and tests)."""
        async with asyncio.timeout(timeout):
            await self._idle.wait()

    async def reopen(self) -> None:
        await asyncio.to_thread(self.file.reopen)

    async def aclose(self) -> None:
        try:
            await self.flush()
        except TimeoutError:
            log.warning("service.log_flush_timeout", service=self.service)
        self._closed = True
        if self._writer is not None:
            self._writer.cancel()
            await asyncio.gather(self._writer, return_exceptions=True)
            self._writer = None
        for follower in self._followers:
            follower.wakeup.set()
        await asyncio.to_thread(self.file.close)

    # -- output ------------------------------------------------------------------------------------------

    def tail(self, n: int) -> list[str]:
        """The last ``n`` lines on disk, reaching into backups when the live file was just rotated."""
        if n <= 0:
            return []
        lines: list[str] = []
        for path in self.file.files():
            try:
                chunk = _last_lines(path, n - len(lines))
            except FileNotFoundError:  # rotated away between listing and reading
                continue
            lines = chunk + lines
            if len(lines) >= n:
                break
        return lines[-n:]

    async def follow(self, n: int = 0) -> AsyncGenerator[str, None]:
        """The last ``n`` lines, then every new line as the child writes it, until the sink closes."""
        follower = _Follower()
        self._followers.add(follower)
        try:
            for line in await asyncio.to_thread(self.tail, n):
                yield line
            while not self._closed:
                while not follower.queue and not self._closed:
                    follower.wakeup.clear()
                    await follower.wakeup.wait()
                while follower.queue:
                    yield follower.queue.popleft()
        finally:
            self._followers.discard(follower)

    def _to_followers(self, data: bytes) -> None:
        parts = (self._partial + data).split(b"\n")
        self._partial = parts.pop()[-_MAX_PARTIAL:]
        if not parts:
            return
        lines = [p.decode("utf-8", "replace").rstrip("\r") for p in parts]
        for follower in self._followers:
            follower.queue.extend(lines)
            follower.wakeup.set()


def _last_lines(path: Path, n: int) -> list[str]:
    """Read backwards in blocks until ``n`` lines are found or the file start is reached."""
    block = 8192
    with open(path, "rb") as f:
        end = f.seek(0, 2)
        pos, data = end, b""
        while pos > 0 and data.count(b"\n") <= n:
            step = min(block, pos)
            pos -= step
            f.seek(pos)
            data = f.read(step) + data
            block *= 2
    text = data.decode("utf-8", "replace")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if pos > 0:
        lines = lines[1:]  # the first one is cut
    return [line.rstrip("\r") for line in lines[-n:]]

"""The answer on disk while it is being heard, so no stop of the daemon loses what the person said.

From the moment the person starts speaking, the recorder appends every block of the answer to a spool:
a WAV file named ``<turn>.wav.part`` whose header is fixed up as it grows and which is synced to disk
every half second of audio. Whatever ends the daemon, the spool holds the answer up to the last block
written (a kill loses nothing written; a power cut at most the last half second).

The writer holds an exclusive ``flock`` on the spool for as long as it writes, and the kernel drops it
when the process dies however it dies: a spool nobody holds is an interrupted turn's, and
:func:`recover` turns it into a plain ``<turn>.wav`` (header fixed to the audio that made it to disk).

At a normal end the converse loop decides the spool's fate: it becomes the saved recording, or it is
deleted once the transcript exists (saving off), or it is kept when the turn was cut short (a stop or a
cancel before any transcript existed). Every write failure (a full disk, a read-only folder) is reported
to :class:`StorageHealth` and the turn carries on from memory.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import fcntl
import json
import os
import struct
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import structlog

from voicemoded.audio.format import SPEECH_FORMAT, AudioFormat
from voicemoded.health import StorageHealth

log = structlog.get_logger(__name__)

SPOOL_SUFFIX = ".part"
"""A spool is its recording's name plus this: ``<turn>.wav.part``."""
SYNC_EVERY_S = 0.5
"""Audio between two syncs to disk: what a power cut may cost at most."""
RECORDING = "the recording"
"""What :class:`StorageHealth` names when an answer cannot be written."""
META_LIMIT = 4096
"""Bytes of turn metadata kept in the spool's ``LIST/INFO/ICMT`` chunk."""
STALE_EMPTY_S = 60.0
"""An unheld spool with no audio yet is removed only when older than this (a writer may be opening it)."""


def spool_path(recording: Path) -> Path:
    return recording.with_name(recording.name + SPOOL_SUFFIX)


def wav_header(fmt: AudioFormat, data_bytes: int, meta: bytes = b"") -> bytes:
    """A RIFF/WAVE header for ``data_bytes`` of PCM, with ``meta`` as an INFO comment chunk."""
    fmt_chunk = b"fmt " + struct.pack(
        "<IHHIIHH", 16, 1, fmt.channels, fmt.rate, fmt.bytes_per_second, fmt.frame_bytes, fmt.width * 8
    )
    info = b""
    if meta:
        comment = meta + b"\0" * (len(meta) % 2)
        body = b"INFO" + b"ICMT" + struct.pack("<I", len(meta)) + comment
        info = b"LIST" + struct.pack("<I", len(body)) + body
    head = b"WAVE" + fmt_chunk + info + b"data" + struct.pack("<I", data_bytes)
    return b"RIFF" + struct.pack("<I", len(head) + data_bytes) + head


@dataclass(frozen=True, slots=True)
class WavLayout:
    """Where a WAV file's PCM starts, its format and the metadata it carries."""

    fmt: AudioFormat
    data_offset: int
    meta: dict[str, str]


def parse_wav(head: bytes) -> WavLayout | None:
    """The layout of a WAV file from its first bytes; None if they are not one we can finish."""
    if head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return None
    at, fmt, meta = 12, None, {}
    while at + 8 <= len(head):
        kind, size = head[at : at + 4], struct.unpack("<I", head[at + 4 : at + 8])[0]
        body = head[at + 8 : at + 8 + size]
        if kind == b"data":
            return WavLayout(fmt, at + 8, meta) if fmt is not None else None
        if kind == b"fmt " and len(body) >= 16:
            _tag, channels, rate, _bps, _align, bits = struct.unpack("<HHIIHH", body[:16])
            try:
                fmt = AudioFormat(rate, bits // 8, channels)
            except ValueError:
                return None
        elif kind == b"LIST" and body[:4] == b"INFO" and body[4:8] == b"ICMT":
            with contextlib.suppress(ValueError):
                text = body[12 : 12 + struct.unpack("<I", body[8:12])[0]]
                meta = {str(k): str(v) for k, v in json.loads(text.decode()).items()}
        at += 8 + size + size % 2
    return None


class Spool:
    """One answer, written as it is heard. Built unopened; the recorder opens it at speech start.

    Every method is safe to call in any state and from any thread (a cancelled turn keeps the spool
    while a worker may still be committing it), and never raises for a failed write: the failure is
    reported once (``failure`` holds the message) and the spool stops writing.
    """

    def __init__(
        self,
        recording: Path,
        *,
        fmt: AudioFormat = SPEECH_FORMAT,
        meta: dict[str, str] | None = None,
        storage: StorageHealth | None = None,
        sync_every_s: float = SYNC_EVERY_S,
    ) -> None:
        self.recording = recording
        self.path = spool_path(recording)
        self.fmt = fmt
        self._meta = json.dumps(meta or {}, ensure_ascii=False).encode()[:META_LIMIT]
        if len(self._meta) == META_LIMIT:  # cut mid-way: keep it parseable by dropping it
            self._meta = b"{}"
        self._storage = storage
        self._sync_bytes = fmt.bytes_for(sync_every_s)
        self._lock = threading.RLock()
        self._fd: int | None = None
        self._opened = False
        self._data_offset = 0
        self.written = 0
        """PCM bytes in the spool."""
        self._synced = 0
        self._sync_job: concurrent.futures.Future[None] | asyncio.Future[None] | None = None
        self.failure: str | None = None

    @property
    def is_open(self) -> bool:
        return self._fd is not None

    def open(self, pcm: bytes = b"") -> None:
        """Create the spool (held for as long as this process writes it) and write ``pcm``."""
        with self._lock:
            self._open(pcm)

    def _open(self, pcm: bytes) -> None:
        if self._fd is not None or self.failure is not None:
            return
        header = wav_header(self.fmt, 0, self._meta)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
        except OSError as exc:
            self._fail(exc)
            return
        self._fd, self._opened = fd, True
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            _write_all(fd, header)
        except OSError as exc:
            self._fail(exc)
            return
        self._data_offset = len(header)
        log.debug("audio.spool_opened", path=str(self.path))
        self.write(pcm)

    def write(self, pcm: bytes) -> None:
        """Append ``pcm``; every ``sync_every_s`` of audio the header is fixed up and the file synced."""
        with self._lock:
            self._write(pcm)

    def _write(self, pcm: bytes) -> None:
        if self._fd is None or not pcm:
            return
        try:
            self._check_sync()
            _write_all(self._fd, pcm)
            self.written += len(pcm)
            if self.written - self._synced >= self._sync_bytes:
                self._fix_header()
                self._sync()
        except OSError as exc:
            self._fail(exc)

    def keep(self) -> Path | None:
        """Finish the spool as the recording (the turn was cut short): the audio heard so far, named."""
        with self._lock:
            return self._keep()

    def _keep(self) -> Path | None:
        if self._fd is None:  # never opened, already finished, or stopped by a failed write
            if self._opened and self.written:
                with contextlib.suppress(OSError):
                    os.replace(self.path, self.recording)  # its header was fixed when writing stopped
            return self.recording if self.recording.exists() else None
        if self.written == 0:
            self.discard()
            return None
        try:
            self._fix_header()
            os.fsync(self._fd)
            os.replace(self.path, self.recording)
        except OSError as exc:
            self._fail(exc)
            return self.recording if self.recording.exists() else None
        self._close()
        log.info(
            "audio.spool_kept", path=str(self.recording), seconds=round(self.fmt.seconds_for(self.written), 3)
        )
        return self.recording

    def commit(self, pcm: bytes, offset: int | None) -> Path | None:
        """Make the spool the saved recording of exactly ``pcm`` (the utterance).

        ``offset`` is where ``pcm`` starts in the spool (None: not in it). The usual case (the utterance
        starts where the spool does) only truncates the trailing silence; otherwise the spool is rewritten.
        None when it could not be written (the failure is reported).
        """
        with self._lock:
            return self._commit(pcm, offset)

    def _commit(self, pcm: bytes, offset: int | None) -> Path | None:
        if self._fd is None and self.failure is None:
            self.open()
        if self._fd is None:
            return None
        try:
            if offset != 0 or self.written < len(pcm):
                os.ftruncate(self._fd, self._data_offset)
                os.lseek(self._fd, self._data_offset, os.SEEK_SET)
                self.written = self._synced = 0
                _write_all(self._fd, pcm)
            self.written = len(pcm)
            os.ftruncate(self._fd, self._data_offset + self.written)
            self._fix_header()
            os.fsync(self._fd)
            os.replace(self.path, self.recording)
        except OSError as exc:
            self._fail(exc)
            return None
        self._close()
        if self._storage is not None:
            self._storage.wrote(RECORDING)
        return self.recording

    def discard(self) -> None:
        """Delete the spool (the transcript exists and saving is off, or it holds nothing)."""
        with self._lock:
            self._discard()

    def _discard(self) -> None:
        if self._opened:
            with contextlib.suppress(OSError):
                self.path.unlink()
        self._close()

    def _fix_header(self) -> None:
        assert self._fd is not None
        data = self.written
        os.pwrite(self._fd, struct.pack("<I", self._data_offset - 8 + data), 4)
        os.pwrite(self._fd, struct.pack("<I", data), self._data_offset - 4)

    def _sync(self) -> None:
        """fsync off the event loop when there is one: a slow disk must not stall every other call."""
        assert self._fd is not None
        self._synced = self.written
        if self._sync_job is not None and not self._sync_job.done():
            return
        fd = os.dup(self._fd)  # the job owns its own descriptor: closing the spool cannot race it
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            _fsync_and_close(fd)
            return
        self._sync_job = loop.run_in_executor(None, _fsync_and_close, fd)

    def _check_sync(self) -> None:
        job, self._sync_job = self._sync_job, None
        if job is not None and job.done():
            job.result()  # raises the OSError the sync met
        elif job is not None:
            self._sync_job = job

    def _fail(self, exc: OSError) -> None:
        if self.failure is None:
            if self._storage is not None:
                self.failure = self._storage.failed(RECORDING, self.path, exc)
            else:
                self.failure = f"could not write the recording to {self.path}: {exc}"
                log.error("audio.spool_failed", path=str(self.path), error=str(exc))
        if self.written == 0:
            with contextlib.suppress(OSError):
                self.path.unlink()
        elif self._fd is not None:
            with contextlib.suppress(OSError):
                self._fix_header()
        self._close()

    def _close(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            with contextlib.suppress(OSError):
                os.close(fd)  # the lock goes with it


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _fsync_and_close(fd: int) -> None:
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@dataclass(frozen=True, slots=True)
class Recovered:
    """A spool left by a writer that died, finished as a recording."""

    path: Path
    seconds: float
    meta: dict[str, str]
    written_at: float


def recover(spool: Path) -> Recovered | None:
    """Finish a spool nobody writes any more: header fixed to the audio on disk, renamed to its recording.

    None when someone still holds it (a turn in progress), when it holds no audio (then it is removed
    once it is old enough) or when it is not a spool we wrote.
    """
    try:
        fd = os.open(spool, os.O_RDWR | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None
        stat = os.fstat(fd)
        layout = parse_wav(os.pread(fd, 65536, 0))
        if layout is None:
            return None
        data = (stat.st_size - layout.data_offset) // layout.fmt.frame_bytes * layout.fmt.frame_bytes
        if data <= 0:
            if time.time() - stat.st_mtime > STALE_EMPTY_S:
                spool.unlink(missing_ok=True)
            return None
        os.ftruncate(fd, layout.data_offset + data)
        os.pwrite(fd, struct.pack("<I", layout.data_offset - 8 + data), 4)
        os.pwrite(fd, struct.pack("<I", data), layout.data_offset - 4)
        os.fsync(fd)
        os.utime(fd, (stat.st_atime, stat.st_mtime))  # it is as old as its last words, not as this repair
        recording = spool.with_name(spool.name.removesuffix(SPOOL_SUFFIX))
        os.replace(spool, recording)
    except OSError as exc:
        log.warning("audio.spool_recover_failed", path=str(spool), error=str(exc))
        return None
    finally:
        os.close(fd)
    log.info("audio.spool_recovered", path=str(recording), seconds=round(layout.fmt.seconds_for(data), 3))
    return Recovered(recording, layout.fmt.seconds_for(data), layout.meta, stat.st_mtime)


def recover_all(folder: Path) -> list[Recovered]:
    """Every spool in ``folder`` left by a writer that died, finished (oldest first)."""
    try:
        spools = sorted(folder.glob(f"*{SPOOL_SUFFIX}"), key=lambda p: p.stat().st_mtime)
    except OSError:
        return []
    return [r for s in spools if (r := recover(s)) is not None]

"""The conversation log: one JSON line per turn under ``conversations/``, plus recent-turn statistics.

Schema (version 1), one object per line in ``conversations/YYYY-MM-DD.jsonl``::

    {"v": 1, "turn_id": "20261124-031502-1a2b", "time": "2026-11-24T03:15:02.123Z",
     "mode": "converse" | "speak" | "listen", "client": "voicemode-mcp", "cwd": "/path",
     "message": "what the assistant said", "text": "what the person answered",
     "end_reason": "silence" | "max_duration" | "no_speech" | "barge_in" | "spoken" | "cancelled"
                   | "interrupted" (the daemon died mid-turn; written when its next start finds the answer),
     "voice": "joe", "tts_provider": "http://127.0.0.1:8881/v1", "stt_provider": "http://127.0.0.1:2022/v1",
     "timings": {"queue_wait": 0.0, "ttfa": 0.21, "generation": 0.4, "playback": 2.1, "mic_gap": 0.01,
                 "record": 3.2, "stt": 0.3, "endpoint_delay": 0.6, "total": 6.0},
     "recording": "/home/me/.voicemode/audio/20261124-031502-1a2b.wav" | null,
     "room": "standup" (only for a turn through a LiveKit room; none: the local devices),
     "error": null | "why the turn failed",
     "warnings": ["what could not be written, e.g. the recording on a full disk"]}

Each line is written by one ``write`` on an ``O_APPEND`` descriptor, so lines from concurrent writers
never interleave. A process killed in the middle of a large write can still leave the start of a line
(the kernel stops copying at a fatal signal); the next append cuts such a fragment off before writing,
and :func:`read_journal` skips one it meets, so a torn line never costs the lines after it.
"""

from __future__ import annotations

import contextlib
import json
import os
import statistics
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

from voicemoded.api.v1 import conversation_pb2
from voicemoded.audio.spool import SPOOL_SUFFIX, recover, recover_all
from voicemoded.health import StorageHealth
from voicemoded.render import plain, timestamp

log = structlog.get_logger(__name__)

JOURNAL_LINE = "the turn's journal line"
"""What :class:`StorageHealth` names when a journal line cannot be written."""

TIMING_NAMES = (
    "queue_wait",
    "ttfa",
    "generation",
    "playback",
    "mic_gap",
    "record",
    "stt",
    "endpoint_delay",
    "total",
)


@dataclass(frozen=True, slots=True)
class Timings:
    queue_wait: float = 0.0
    ttfa: float = 0.0
    generation: float = 0.0
    playback: float = 0.0
    mic_gap: float = 0.0
    record: float = 0.0
    stt: float = 0.0
    endpoint_delay: float = 0.0
    total: float = 0.0

    def to_proto(self) -> conversation_pb2.TurnTimings:
        return conversation_pb2.TurnTimings(
            queue_wait=self.queue_wait,
            ttfa=self.ttfa,
            generation=self.generation,
            playback=self.playback,
            record=self.record,
            stt=self.stt,
            total=self.total,
            mic_gap=self.mic_gap,
            endpoint_delay=self.endpoint_delay,
        )


@dataclass(slots=True)
class TurnRecord:
    turn_id: str
    time: float
    mode: str
    message: str = ""
    text: str = ""
    end_reason: str = ""
    voice: str = ""
    tts_provider: str = ""
    stt_provider: str = ""
    client: str = ""
    cwd: str = ""
    timings: Timings = field(default_factory=Timings)
    recording: str | None = None
    error: str | None = None
    warnings: list[str] = field(default_factory=list)
    room: str = ""
    """The LiveKit room the turn went through ("": the local devices)."""

    def journal_line(self) -> bytes:
        """The turn as one line of the journal (the schema above), newline included."""
        data = asdict(self)
        data["time"] = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.time)) + f".{int(self.time % 1 * 1000):03d}Z"
        )
        data["timings"] = {k: round(v, 4) for k, v in data["timings"].items()}
        for optional in ("warnings", "room"):
            if not data[optional]:
                del data[optional]
        line = json.dumps({"v": 1, **data}, ensure_ascii=False) + "\n"
        return line.encode("utf-8", "surrogateescape")

    def to_proto(self) -> conversation_pb2.TurnRecord:
        return conversation_pb2.TurnRecord(
            turn_id=self.turn_id,
            time=timestamp(self.time),
            message=self.message,
            text=self.text,
            timings=self.timings.to_proto(),
            end_reason=self.end_reason,
            error=self.error or "",
            recording_kept=bool(self.recording),
        )

    def summary(self) -> dict[str, Any]:
        """The turn as an assistant sees it in the statistics; empty fields left out."""
        out = {
            "turn_id": self.turn_id,
            "time": self.time,
            "message": self.message,
            "text": self.text,
            "end_reason": self.end_reason,
            "error": self.error or "",
            "total_s": self.timings.total,
            "room": self.room,
        }
        return {k: plain(v) for k, v in out.items() if v not in ("", None)}


@dataclass(frozen=True, slots=True)
class Summary:
    name: str
    p50: float
    p90: float
    max: float
    count: int


class Journal:
    """Appends turns to the day's file (a crash loses at most the line being written) and keeps recent ones.

    A line that cannot be written (full disk, read-only folder) is reported to ``storage`` and its
    message returned, so the turn can tell its caller; the turn itself goes on.
    """

    def __init__(self, folder: Path, *, keep: int = 500, storage: StorageHealth | None = None) -> None:
        self.folder = folder
        self.storage = storage or StorageHealth()
        self._recent: deque[TurnRecord] = deque(maxlen=keep)
        self.turns = 0
        self.errors = 0

    def new_turn_id(self) -> str:
        return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()

    def append(self, record: TurnRecord) -> str | None:
        """Record the turn; None when its line is on disk, else what could not be written."""
        self._recent.append(record)
        self.turns += 1
        self.errors += record.error is not None
        path = self.folder / time.strftime("%Y-%m-%d.jsonl", time.localtime(record.time))
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            append_line(path, record.journal_line())
        except OSError as exc:
            return self.storage.failed(JOURNAL_LINE, path, exc)
        self.storage.wrote(JOURNAL_LINE)
        return None

    def recent(self, n: int = 20) -> list[TurnRecord]:
        return list(self._recent)[-n:] if n > 0 else []

    def find(self, turn_id: str) -> TurnRecord | None:
        """The newest of the recent turns with this id."""
        return next((r for r in reversed(self._recent) if r.turn_id == turn_id), None)

    def summaries(self) -> list[Summary]:
        out = []
        ok = [r for r in self._recent if r.error is None]
        for name in TIMING_NAMES:
            values = sorted(v for r in ok if (v := getattr(r.timings, name)) > 0)
            if not values:
                continue
            p90 = values[min(len(values) - 1, int(0.9 * len(values)))]
            out.append(Summary(name, statistics.median(values), p90, values[-1], len(values)))
        return out


def append_line(path: Path, line: bytes) -> None:
    """Append one whole line with one ``write``, after cutting off a torn line a killed writer left.

    A short write (the disk filled up mid-line) is undone, so the file only ever holds whole lines.
    """
    fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            size = _cut_torn_tail(fd, size)
        written = os.write(fd, line)
        try:
            while written < len(line):  # short: the disk is filling; the rest says why, or fits after all
                written += os.write(fd, line[written:])
        except OSError:
            os.ftruncate(fd, size)
            raise
    finally:
        os.close(fd)


def _cut_torn_tail(fd: int, size: int, block: int = 65536) -> int:
    """Truncate the file after its last newline; the new size."""
    end = size
    while end > 0:
        start = max(0, end - block)
        at = os.pread(fd, end - start, start).rfind(b"\n")
        if at >= 0:
            end = start + at + 1
            break
        end = start
    os.ftruncate(fd, end)
    log.warning("conversation.journal_torn_line_cut", bytes=size - end)
    return end


def read_journal(path: Path) -> list[dict[str, Any]]:
    """Every turn in one journal file; a line that does not parse (torn by a kill) is skipped."""
    out = []
    with open(path, "rb") as handle:
        for raw in handle:
            with contextlib.suppress(ValueError):
                entry = json.loads(raw)
                if isinstance(entry, dict):
                    out.append(entry)
    return out


RECORDING_SUFFIXES = (".wav", ".flac", ".mp3", ".opus")


def last_recording(folder: Path) -> Path | None:
    """The newest kept recording (for ``transcribe --last``), an interrupted turn's spool included.

    A spool nobody writes any more (the daemon died mid-answer) is finished into a recording first;
    one still being written (a turn in progress) is not a kept recording yet.
    """
    try:
        files = list(folder.iterdir())
    except (FileNotFoundError, NotADirectoryError):
        return None
    kept = [p for p in files if p.suffix in RECORDING_SUFFIXES]
    kept += [r.path for p in files if p.name.endswith(SPOOL_SUFFIX) and (r := recover(p)) is not None]

    def mtime(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return -1.0

    return max(kept, key=mtime, default=None)


def recover_interrupted_turns(audio_dir: Path, journal: Journal) -> list[Path]:
    """At start: finish the answers a daemon that died mid-turn left spooled, and journal each turn.

    The composition root calls this once before serving, so ``transcribe --last`` and the journal both
    know the interrupted turn; what the person said is in the recording it names.
    """
    out = []
    for found in recover_all(audio_dir):
        meta = found.meta
        started = meta.get("started", "")
        record = TurnRecord(
            meta.get("turn_id") or found.path.stem,
            float(started) if started.replace(".", "", 1).isdigit() else found.written_at,
            meta.get("mode") or "converse",
            message=meta.get("message", ""),
            end_reason="interrupted",
            client=meta.get("client", ""),
            cwd=meta.get("cwd", ""),
            timings=Timings(record=found.seconds),
            recording=str(found.path),
            error=f"the daemon stopped during this turn; the {found.seconds:.1f} s heard are kept in "
            f"{found.path} (`voicemodectl transcribe --last` reads them)",
        )
        journal.append(record)
        out.append(found.path)
    return out

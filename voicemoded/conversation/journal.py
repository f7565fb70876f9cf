"""The conversation log: one JSON line per turn under ``conversations/``, plus recent-turn statistics.

Schema (version 1), one object per line in ``conversations/YYYY-MM-DD.jsonl``::

    {"v": 1, "turn_id": "20261124-031502-1a2b", "time": "2026-11-24T03:15:02.123Z",
     "mode": "converse" | "speak" | "listen", "client": "voicemode-mcp", "cwd": "/path",
     "message": "what the assistant said", "text": "what the person answered",
     "end_reason": "silence" | "max_duration" | "no_speech" | "barge_in" | "spoken" | "cancelled",
     "voice": "joe", "tts_provider": "http://127.0.0.1:8881/v1", "stt_provider": "http://127.0.0.1:2022/v1",
     "timings": {"queue_wait": 0.0, "ttfa": 0.21, "generation": 0.4, "playback": 2.1, "mic_gap": 0.01,
                 "record": 3.2, "stt": 0.3, "endpoint_delay": 0.6, "total": 6.0},
     "recording": "/home/me/.voicemode/audio/20261124-031502-1a2b.wav" | null,
     "error": null | "why the turn failed"}
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

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


@dataclass(slots=True)
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

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["time"] = (
            time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(self.time)) + f".{int(self.time % 1 * 1000):03d}Z"
        )
        data["timings"] = {k: round(v, 4) for k, v in data["timings"].items()}
        return {"v": 1, **data}


@dataclass(frozen=True, slots=True)
class Summary:
    name: str
    p50: float
    p90: float
    max: float
    count: int


class Journal:
    """Appends turns to the day's file (a crash loses at most the line being written) and keeps recent ones."""

    def __init__(self, folder: Path, *, keep: int = 500) -> None:
        self.folder = folder
        self._recent: deque[TurnRecord] = deque(maxlen=keep)
        self.turns = 0
        self.errors = 0

    def new_turn_id(self) -> str:
        return time.strftime("%Y%m%d-%H%M%S") + "-" + os.urandom(2).hex()

    def append(self, record: TurnRecord) -> None:
        self._recent.append(record)
        self.turns += 1
        self.errors += record.error is not None
        path = self.folder / time.strftime("%Y-%m-%d.jsonl", time.localtime(record.time))
        try:
            path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            with open(path, "a", encoding="utf-8") as handle:
                handle.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
        except OSError as exc:
            log.error("conversation.journal_write_failed", path=str(path), error=str(exc))

    def recent(self, n: int = 20) -> list[TurnRecord]:
        return list(self._recent)[-n:] if n > 0 else []

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


RECORDING_SUFFIXES = (".wav", ".flac", ".mp3", ".opus")


def last_recording(folder: Path) -> Path | None:
    """The newest kept recording (for ``transcribe --last``)."""
    try:
        files = [p for p in folder.iterdir() if p.suffix in RECORDING_SUFFIXES]
    except FileNotFoundError:
        return None
    return max(files, key=lambda p: p.stat().st_mtime, default=None)

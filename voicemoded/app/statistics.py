"""What the conversation journal knows: turn counts, timing percentiles, the recent turns and the
recordings they kept."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path

from voicemoded.api.errors import NotFound, clip, from_os_error, too_large
from voicemoded.api.files import NotRegular, OverLimit, read_bounded
from voicemoded.app.daemon import Daemon, DaemonInfo
from voicemoded.conversation.journal import RECORDING_SUFFIXES, Journal, Summary, TurnRecord
from voicemoded.health import Health

#: Recent turns listed when the caller asks for none.
DEFAULT_RECENT = 10
#: The largest recording handed out (about half an hour of 16 kHz speech).
MAX_RECORDING_BYTES = 64 * 1024 * 1024
MIME_TYPES = {"wav": "audio/wav", "flac": "audio/flac", "mp3": "audio/mpeg", "opus": "audio/ogg"}


@dataclass(frozen=True, slots=True)
class KeptRecording:
    format: str
    """"wav", "flac", "mp3" or "opus"."""
    data: bytes

    @property
    def mime_type(self) -> str:
        return MIME_TYPES[self.format]


@dataclass(frozen=True, slots=True)
class TurnStatistics:
    daemon: DaemonInfo
    turns: int
    """Turns since the daemon started."""
    errors: int
    summaries: tuple[Summary, ...]
    recent: tuple[TurnRecord, ...]
    """Newest last."""


class Statistics:
    def __init__(self, journal: Journal, daemon: Daemon, audio_dir: Path) -> None:
        """``audio_dir``: where recordings are kept; only files inside it are ever served."""
        self._journal = journal
        self._daemon = daemon
        self._audio_dir = audio_dir

    def report(self, recent: int | None = None) -> TurnStatistics:
        """``recent`` None: the default number of recent turns; 0: none."""
        journal = self._journal
        return TurnStatistics(
            daemon=self._daemon.info(),
            turns=journal.turns,
            errors=journal.errors,
            summaries=tuple(journal.summaries()),
            recent=self.recent(DEFAULT_RECENT if recent is None else recent),
        )

    def recent(self, n: int) -> tuple[TurnRecord, ...]:
        return tuple(self._journal.recent(n))

    async def recording(self, turn_id: str) -> KeptRecording:
        """The recording a recent turn kept. Only a file the journal names and that lies in the audio
        folder is read, and at most :data:`MAX_RECORDING_BYTES` of it."""
        record = self._journal.find(turn_id)
        if record is None:
            raise NotFound(
                f"no recent turn {clip(turn_id)!r}",
                hint="only the turns since the daemon started are kept in memory",
                fields={"turn_id": clip(turn_id)},
            )
        path = Path(record.recording) if record.recording else None
        folder = self._audio_dir.resolve()
        if path is None or path.suffix not in RECORDING_SUFFIXES or path.resolve().parent != folder:
            raise NotFound(f"turn {turn_id} kept no recording", fields={"turn_id": turn_id})
        try:
            data = await asyncio.to_thread(read_bounded, path, MAX_RECORDING_BYTES)
        except (FileNotFoundError, NotRegular):
            raise NotFound(
                f"the recording of turn {turn_id} is gone ({path})", fields={"turn_id": turn_id}
            ) from None
        except OverLimit as exc:
            raise too_large(f"the recording of turn {turn_id}", exc.size, exc.limit) from None
        except OSError as exc:
            raise (from_os_error(exc) or exc) from None
        return KeptRecording(path.suffix.lstrip("."), data)

    def health(self) -> Health:
        return Health("conversation", "ok", f"{self._journal.turns} turns, {self._journal.errors} failed")

    def storage_health(self) -> Health:
        return self._journal.storage.health()

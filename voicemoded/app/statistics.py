"""What the conversation journal knows: turn counts, timing percentiles, the recent turns."""

from __future__ import annotations

from dataclasses import dataclass

from voicemoded.app.daemon import Daemon, DaemonInfo
from voicemoded.conversation.journal import Journal, Summary, TurnRecord
from voicemoded.health import Health

#: Recent turns listed when the caller asks for none.
DEFAULT_RECENT = 10


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
    def __init__(self, journal: Journal, daemon: Daemon) -> None:
        self._journal = journal
        self._daemon = daemon

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

    def health(self) -> Health:
        return Health("conversation", "ok", f"{self._journal.turns} turns, {self._journal.errors} failed")

    def storage_health(self) -> Health:
        return self._journal.storage.health()

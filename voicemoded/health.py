"""Per-subsystem health, as reported by ``GetStatus``: each subsystem registers a probe function."""

from __future__ import annotations

import errno
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import structlog

from voicemoded.api.errors import DENIED_ERRNOS, NO_SPACE_ERRNOS

log = structlog.get_logger(__name__)

State = Literal["ok", "degraded", "down", "disabled"]


@dataclass(frozen=True, slots=True)
class Health:
    name: str
    state: State
    detail: str = ""


Probe = Callable[[], Health]


class HealthRegistry:
    """Cheap, synchronous probes: they read state the subsystem already keeps, never do I/O."""

    def __init__(self) -> None:
        self._probes: dict[str, Probe] = {}

    def register(self, name: str, probe: Probe) -> None:
        self._probes[name] = probe

    def report(self) -> list[Health]:
        out = []
        for name, probe in self._probes.items():
            try:
                out.append(probe())
            except Exception as exc:
                log.exception("health.probe_failed", subsystem=name)
                out.append(Health(name, "down", f"health probe failed: {exc}"))
        return out


def write_failure(what: str, path: Path, exc: OSError) -> str:
    """One sentence for a failed write: what was lost, where, why, and what the person can do."""
    name = errno.errorcode.get(exc.errno or 0, "")
    why = f"{exc.strerror or exc}" + (f" ({name})" if name else "")
    if exc.errno in NO_SPACE_ERRNOS:
        step = f"free some space on the disk that holds {path.parent}"
    elif exc.errno in DENIED_ERRNOS or exc.errno == errno.EROFS:
        step = f"check that {path.parent} is writable by the daemon's user"
    else:
        step = f"check {path.parent}"
    return f"could not write {what} to {path}: {why}; {step}"


@dataclass(frozen=True, slots=True)
class WriteFailure:
    what: str
    message: str
    at: float


class StorageHealth:
    """What the daemon could not write for the person (recordings, the conversation journal).

    A full disk or a read-only folder must not cost the person their answer, so writers report here
    and carry on; ``status`` then shows the last failure of each kind until a later write of that kind
    succeeds (after which it is still named, as past).
    """

    name = "storage"

    def __init__(self) -> None:
        self._failures: dict[str, WriteFailure] = {}
        self._recovered: set[str] = set()

    def failed(self, what: str, path: Path, exc: OSError) -> str:
        message = write_failure(what, path, exc)
        self._failures[what] = WriteFailure(what, message, time.time())
        self._recovered.discard(what)
        log.error("storage.write_failed", what=what, path=str(path), errno=exc.errno, error=str(exc))
        return message

    def wrote(self, what: str) -> None:
        if what in self._failures:
            self._recovered.add(what)

    def health(self) -> Health:
        failing = [f for w, f in self._failures.items() if w not in self._recovered]
        if failing:
            return Health(
                self.name, "degraded", "; ".join(f"{f.message} (at {_clock(f.at)})" for f in failing)
            )
        if self._failures:
            last = max(self._failures.values(), key=lambda f: f.at)
            return Health(
                self.name, "ok", f"writing again; last failure at {_clock(last.at)}: {last.message}"
            )
        return Health(self.name, "ok", "no failed writes")


def _clock(at: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(at))

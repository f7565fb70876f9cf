"""Per-subsystem health, as reported by ``GetStatus``: each subsystem registers a probe function."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import structlog

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

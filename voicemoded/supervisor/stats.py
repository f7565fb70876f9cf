"""What the user sees of a service: its state plus psutil figures for the whole process tree.

Figures cover the child and its descendants, because servers like uvicorn with workers or a shell wrapper
put the real memory in a grandchild; a limit or a figure on the leader alone would be a lie.
"""

from __future__ import annotations

import signal
import time
from dataclasses import dataclass

import psutil

from voicemoded.supervisor.states import ServiceState


@dataclass(frozen=True, slots=True)
class ExitInfo:
    """How the last process ended: an exit code or the signal that killed it."""

    code: int | None
    signal: int | None
    at: float
    """Wall-clock time (``time.time()``)."""

    @classmethod
    def from_returncode(cls, returncode: int, at: float | None = None) -> ExitInfo:
        at = time.time() if at is None else at
        return cls(None, -returncode, at) if returncode < 0 else cls(returncode, None, at)

    @property
    def failed(self) -> bool:
        return self.signal is not None or self.code != 0

    def describe(self) -> str:
        if self.signal is not None:
            try:
                name = signal.Signals(self.signal).name
            except ValueError:
                name = f"signal {self.signal}"
            return f"killed by {name}"
        return f"exit code {self.code}"


@dataclass(frozen=True, slots=True)
class TreeFigures:
    cpu_percent: float
    """Share of one core used since the previous sample (the lifetime average on the first one)."""
    rss_bytes: int
    processes: int


@dataclass(frozen=True, slots=True)
class ServiceStatus:
    """A snapshot of one service, safe to hand across the API."""

    name: str
    state: ServiceState
    backend: str
    autostart: bool
    host: str
    port: int | None
    pid: int | None
    uptime: float | None
    """Seconds since the current process was spawned."""
    restarts: int
    """Automatic restarts (crash, memory limit) since the daemon started."""
    last_exit: ExitInfo | None
    cpu_percent: float | None
    rss_bytes: int | None
    reason: str
    """Why the last state change happened, in words."""
    since: float
    """Wall-clock time of the last state change."""
    log_path: str
    log_dropped_bytes: int
    installed: bool
    install_hint: str


class TreeSampler:
    """CPU and memory of a process tree; remembers the previous sample per root so CPU % is a rate."""

    def __init__(self) -> None:
        self._last: dict[tuple[int, float], tuple[float, float]] = {}

    def sample(self, pid: int) -> TreeFigures | None:
        try:
            root = psutil.Process(pid)
            created = root.create_time()
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        cpu = 0.0
        rss = 0
        alive = 0
        for proc in procs:
            try:
                with proc.oneshot():
                    times = proc.cpu_times()
                    rss += proc.memory_info().rss
                cpu += times.user + times.system
                alive += 1
            except psutil.Error:
                continue
        now = time.time()
        key = (pid, created)
        last_wall, last_cpu = self._last.get(key, (created, 0.0))
        self._last = {k: v for k, v in self._last.items() if k[0] != pid}
        self._last[key] = (now, cpu)
        elapsed = max(now - last_wall, 1e-6)
        return TreeFigures(max(0.0, (cpu - last_cpu) / elapsed * 100.0), rss, alive)

    def tree_rss(self, pid: int) -> int | None:
        """Resident bytes of the tree, without touching the CPU-rate memory (for the memory watch)."""
        try:
            root = psutil.Process(pid)
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            return None
        total = 0
        for proc in procs:
            try:
                total += proc.memory_info().rss
            except psutil.Error:
                continue
        return total

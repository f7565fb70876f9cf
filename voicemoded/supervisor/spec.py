"""What a supervised service is: a frozen, validated description the supervisor never mutates.

Config reload builds new specs and hands them to the supervisor (``replace_spec``); a running child keeps
the spec it was started with until it is restarted, so a half-applied edit can never reach a live process.
"""

from __future__ import annotations

import signal
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import MappingProxyType

from voicemoded.api.errors import InvalidArgument
from voicemoded.names import SERVICE_NAME


class RestartPolicy(StrEnum):
    """When a child that exited on its own is started again."""

    ALWAYS = "always"
    ON_FAILURE = "on-failure"
    """Restart on a non-zero exit code or a death by signal; a clean ``exit 0`` ends in EXITED."""
    NEVER = "never"


@dataclass(frozen=True, slots=True)
class HttpProbe:
    """Ready when ``GET path`` on the service's host:port answers 2xx (the embedded engines serve /health)."""

    path: str = "/health"
    timeout: float = 1.0
    """Seconds one probe may take; a hung server must not hold the start past ``start_timeout``."""


@dataclass(frozen=True, slots=True)
class TcpProbe:
    """Ready when host:port accepts a TCP connection (for servers without a health route)."""

    timeout: float = 1.0


Probe = HttpProbe | TcpProbe


@dataclass(frozen=True, slots=True)
class BackoffSettings:
    """Capped exponential backoff with jitter between automatic restarts."""

    initial: float = 0.5
    """Seconds before the first restart."""
    multiplier: float = 2.0
    maximum: float = 30.0
    """Cap, so a long outage is retried at a steady pace instead of never."""
    jitter: float = 0.2
    """Fraction (0..1) each delay is randomly shortened or lengthened by: children don't restart in step."""
    reset_after: float = 10.0
    """A run that stayed RUNNING this long counts as healthy: the next failure starts again at ``initial``."""


@dataclass(frozen=True, slots=True)
class FlapSettings:
    """How many automatic restarts within a window mean the service is broken, not unlucky."""

    max_restarts: int = 5
    window: float = 60.0
    """Seconds."""
    retry_after: float | None = 300.0
    """Seconds after which a FATAL service tries again by itself; None keeps it FATAL until asked."""


@dataclass(frozen=True, slots=True)
class LogSettings:
    """Where a child's output goes and how much of it is kept."""

    max_bytes: int = 10 * 1024 * 1024
    """Size at which ``<service>.log`` is rotated."""
    backups: int = 3
    """Rotated files kept (``.log.1`` newest … ``.log.N`` oldest)."""
    buffer_bytes: int = 1024 * 1024
    """Output held in memory while the disk is slow; beyond it output is dropped and counted, not blocked."""


@dataclass(frozen=True, slots=True)
class NotInstalled:
    """Why a service cannot start on this machine and the exact step that fixes it."""

    message: str
    hint: str


@dataclass(frozen=True, slots=True)
class ServiceSpec:
    """One supervised service. Every duration is in seconds."""

    name: str
    command: tuple[str, ...]
    """argv; the first element is a path or a name looked up on PATH."""
    env: Mapping[str, str] = field(default_factory=dict)
    """Added to (and overriding) the daemon's environment."""
    env_drop: tuple[str, ...] = ()
    """Inherited variables the child must not see: exact names, or prefixes ending in ``*`` (a server
    that lets its environment override its config file)."""
    cwd: Path | None = None
    host: str = "127.0.0.1"
    port: int | None = None
    """Checked free before each start (a foreign owner is named) and used by the probe."""
    probe: Probe | None = None
    """None: RUNNING as soon as the process is spawned."""
    probe_interval: float = 0.1
    start_timeout: float = 30.0
    """STARTING → failure when the probe has not passed by then."""
    stop_signal: signal.Signals = signal.SIGTERM
    stop_timeout: float = 10.0
    """Grace before the process group gets SIGKILL."""
    restart: RestartPolicy = RestartPolicy.ON_FAILURE
    backoff: BackoffSettings = field(default_factory=BackoffSettings)
    flapping: FlapSettings = field(default_factory=FlapSettings)
    memory_limit_bytes: int | None = None
    """Resident memory of the child and its descendants above which it is restarted."""
    memory_check_interval: float = 2.0
    autostart: bool = False
    backend: str = "command"
    """Label shown to the user (``embedded``, ``whisper.cpp``, ``livekit-server``…)."""
    logs: LogSettings = field(default_factory=LogSettings)
    not_installed: NotInstalled | None = None
    """Set when the backend is missing: starting raises FailedPrecondition with its hint."""

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not SERVICE_NAME.match(self.name):
            problems.append(f"name {self.name!r} must be lowercase letters, digits, '-' or '_'")
        object.__setattr__(self, "command", tuple(self.command))
        if not self.command or not self.command[0] or not all(isinstance(a, str) for a in self.command):
            problems.append("command must be a non-empty argv")
        object.__setattr__(self, "env", MappingProxyType(dict(self.env)))
        object.__setattr__(self, "env_drop", tuple(self.env_drop))
        if self.port is not None and not 0 < self.port < 65536:
            problems.append(f"port {self.port} is outside 1-65535")
        if self.probe is not None and self.port is None:
            problems.append("a readiness probe needs a port")
        for key in ("probe_interval", "start_timeout", "stop_timeout", "memory_check_interval"):
            if getattr(self, key) <= 0:
                problems.append(f"{key} must be positive")
        if self.memory_limit_bytes is not None and self.memory_limit_bytes <= 0:
            problems.append("memory_limit_bytes must be positive")
        problems += _check_policies(self.backoff, self.flapping, self.logs)
        if problems:
            raise InvalidArgument(
                f"service {self.name!r}: " + "; ".join(problems),
                hint="fix the service settings and reload the configuration",
                fields={"service": self.name},
            )


def _check_policies(backoff: BackoffSettings, flap: FlapSettings, logs: LogSettings) -> list[str]:
    problems: list[str] = []
    if backoff.initial < 0 or backoff.maximum < backoff.initial:
        problems.append("backoff needs 0 <= initial <= maximum")
    if backoff.multiplier < 1:
        problems.append("backoff multiplier must be >= 1")
    if not 0 <= backoff.jitter < 1:
        problems.append("backoff jitter must be in [0, 1)")
    if flap.max_restarts < 1 or flap.window <= 0:
        problems.append("flapping needs max_restarts >= 1 and a positive window")
    if flap.retry_after is not None and flap.retry_after <= 0:
        problems.append("flapping retry_after must be positive or unset")
    if logs.max_bytes < 1024 or logs.backups < 0 or logs.buffer_bytes < 4096:
        problems.append("logs need max_bytes >= 1024, backups >= 0 and buffer_bytes >= 4096")
    return problems

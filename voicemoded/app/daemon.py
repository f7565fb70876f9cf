"""The daemon itself: who it is, how it is doing (its plugins and webhooks too), its event stream, and
stopping it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from pathlib import Path

import psutil

from voicemoded import __version__
from voicemoded.app.config import Configuration, ConfigView
from voicemoded.events import Event, EventBus
from voicemoded.health import Health, HealthRegistry
from voicemoded.plugins.loaded import Plugins
from voicemoded.plugins.report import PluginInfo
from voicemoded.webhooks import Webhooks, WebhookStatus


@dataclass(frozen=True, slots=True)
class DaemonInfo:
    version: str
    pid: int
    uptime: float
    """Seconds since the daemon started (monotonic: a clock change does not move it)."""


@dataclass(frozen=True, slots=True)
class DaemonStatus:
    info: DaemonInfo
    started_at: float
    socket: Path
    base_dir: Path
    config: ConfigView
    subsystems: tuple[Health, ...]
    manager: str
    """The service manager running the daemon (systemd, launchd), "" when started by hand."""
    resident_bytes: int
    plugins: tuple[PluginInfo, ...]
    """Every plugin entry point found, loaded or not."""
    webhooks: tuple[WebhookStatus, ...]


@dataclass(frozen=True, slots=True)
class DaemonProcess:
    """The running daemon as the composition root knows it: fixed at start, plus its stop switch."""

    socket: Path
    base_dir: Path
    started_at: float
    health: HealthRegistry
    """Every subsystem's probe (the application's and the doors' own)."""
    request_stop: Callable[[float], None]
    """Begins a graceful stop, letting calls finish within the grace seconds given."""
    stopping: asyncio.Event
    """Set once the stop has begun: event streams end then."""
    manager: str = ""


class Daemon:
    def __init__(
        self,
        process: DaemonProcess,
        configuration: Configuration,
        events: EventBus,
        plugins: Plugins,
        webhooks: Webhooks,
    ) -> None:
        self._daemon = process
        self._configuration = configuration
        self._events = events
        self._plugins = plugins
        self._webhooks = webhooks
        self._started_monotonic = time.monotonic() - (time.time() - process.started_at)
        self._process = psutil.Process()

    def info(self) -> DaemonInfo:
        return DaemonInfo(__version__, os.getpid(), time.monotonic() - self._started_monotonic)

    def status(self) -> DaemonStatus:
        daemon = self._daemon
        return DaemonStatus(
            info=self.info(),
            started_at=daemon.started_at,
            socket=daemon.socket,
            base_dir=daemon.base_dir,
            config=self._configuration.daemon_view(),
            subsystems=tuple(daemon.health.report()),
            manager=daemon.manager,
            resident_bytes=self._process.memory_info().rss,
            plugins=self.plugins(),
            webhooks=self.webhooks(),
        )

    def plugins(self) -> tuple[PluginInfo, ...]:
        return tuple(self._plugins.report())

    def webhooks(self) -> tuple[WebhookStatus, ...]:
        return tuple(self._webhooks.status())

    async def events(
        self, replay: int = 0, subsystems: frozenset[str] = frozenset()
    ) -> AsyncGenerator[Event, None]:
        """The daemon's events (the last ``replay`` first) until the caller stops or the daemon does."""
        subscription = self._events.subscribe(replay=max(0, replay), subsystems=subsystems)
        stop = asyncio.ensure_future(self._daemon.stopping.wait())
        nxt: asyncio.Future[Event] | None = None
        try:
            while True:
                nxt = asyncio.ensure_future(anext(subscription))
                done, _ = await asyncio.wait({nxt, stop}, return_when=asyncio.FIRST_COMPLETED)
                if nxt not in done:
                    return
                yield nxt.result()
        finally:
            stop.cancel()
            # The daemon stopping, or the caller hanging up (this task cancelled inside wait): either way
            # the generator's pending step ends first, or aclose() finds it still running.
            if nxt is not None and not nxt.done():
                nxt.cancel()
                with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                    await nxt
            await subscription.aclose()

    def shutdown(self, grace: float = 0.0) -> None:
        self._daemon.request_stop(grace)

"""systemd's notify protocol (READY, STOPPING, RELOADING, WATCHDOG) without a dependency.

Only active when systemd started us with ``NOTIFY_SOCKET``; otherwise every call is a no-op.
"""

from __future__ import annotations

import asyncio
import os
import socket
import time
from collections.abc import Mapping

import structlog

log = structlog.get_logger(__name__)


class Notifier:
    def __init__(self, env: Mapping[str, str] | None = None) -> None:
        env = os.environ if env is None else env
        self._address = env.get("NOTIFY_SOCKET", "")
        if self._address.startswith("@"):
            self._address = "\0" + self._address[1:]
        usec = env.get("WATCHDOG_USEC", "")
        pid = env.get("WATCHDOG_PID", "")
        ours = not pid or pid == str(os.getpid())
        self.watchdog_interval = int(usec) / 1_000_000 if usec.isdigit() and ours else 0.0

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def notify(self, *states: str) -> None:
        if not self._address:
            return
        message = "\n".join(states).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
                sock.connect(self._address)
                sock.sendall(message)
        except OSError as exc:
            log.warning("sdnotify.failed", error=str(exc))

    def ready(self, status: str = "") -> None:
        self.notify("READY=1", f"STATUS={status}" if status else "STATUS=ready", f"MAINPID={os.getpid()}")

    def reloading(self) -> None:
        monotonic_usec = int(time.clock_gettime(time.CLOCK_MONOTONIC) * 1_000_000)
        self.notify("RELOADING=1", f"MONOTONIC_USEC={monotonic_usec}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    async def watchdog(self) -> None:
        """Ping at half the watchdog interval while the event loop is alive; runs until cancelled."""
        if not self.watchdog_interval:
            return
        while True:
            self.notify("WATCHDOG=1")
            await asyncio.sleep(self.watchdog_interval / 2)

"""A real web door (``voicemode-web`` as a process) in front of a real daemon, and the install's token.

:func:`running_door` starts the door on a free loopback port against any daemon socket (also one where no
daemon runs); the ``door`` fixture is one plain daemon and its door for a whole module.
"""

from __future__ import annotations

import contextlib
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from voicemoded.testing.daemon import DaemonHandle, daemon_handle
from voicemoded.testing.engines import SOURCE
from voicemoded.testing.ports import free_port
from voicemoded.testing.processes import stop_group

START_TIMEOUT = 20.0


@dataclass(frozen=True)
class WebDoor:
    """A running voicemode-web and the token its install uses."""

    url: str
    """``http://127.0.0.1:<port>``."""
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def page(self, path: str = "/", *, with_token: bool = True) -> str:
        """The address of a page, carrying the token in its fragment as `voicemodectl web url` does."""
        return f"{self.url}{path}" + (f"#token={self.token}" if with_token else "")

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""


def door_env(handle: DaemonHandle, port: int) -> dict[str, str]:
    """The daemon's environment, the door's port, and this checkout first on the import path."""
    path = os.pathsep.join(p for p in (str(SOURCE), handle.env.get("PYTHONPATH", "")) if p)
    return {
        **handle.env,
        "VOICEMODE_WEB_PORT": str(port),
        "VOICEMODE_WEB_HOST": "127.0.0.1",
        "PYTHONPATH": path,
    }


def web_token(handle: DaemonHandle, port: int) -> str:
    """The token, as a person gets it: from the address `voicemodectl web url` prints."""
    done = handle.ctl("web", "url", env=door_env(handle, port))
    assert done.returncode == 0, done.stderr
    match = re.search(rf"http://127\.0\.0\.1:{port}/#token=([A-Za-z0-9_\-]+)", done.stdout)
    assert match, done.stdout
    return match.group(1)


@contextlib.contextmanager
def running_door(handle: DaemonHandle, *, with_token: bool = True) -> Iterator[WebDoor]:
    """``voicemode-web`` for ``handle``'s socket on a free port, until /healthz answers; stopped on exit."""
    port = free_port()
    log = handle.root / f"web-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "voicemode_web", "--socket", str(handle.socket), "--port", str(port)],
            env=door_env(handle, port),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_healthy(url, process, log)
        yield WebDoor(url, web_token(handle, port) if with_token else "", process, log)
    finally:
        stop_group(process)


def wait_healthy(
    url: str, process: subprocess.Popen[bytes], log: Path, timeout: float = START_TIMEOUT
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"voicemode-web exited with {process.returncode}:\n{log.read_text(errors='replace')}"
            )
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        time.sleep(0.05)
    raise TimeoutError(
        f"voicemode-web did not answer /healthz within {timeout:g} s:\n{log.read_text(errors='replace')}"
    )


@dataclass(frozen=True)
class DoorAndDaemon:
    daemon: DaemonHandle
    door: WebDoor


@pytest.fixture(scope="module")
def door() -> Iterator[DoorAndDaemon]:
    """A plain daemon (no engines, no autostarted services) and its web door, for one module."""
    for handle in daemon_handle():
        handle.start()
        with running_door(handle) as web:
            yield DoorAndDaemon(handle, web)

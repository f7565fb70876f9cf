"""A real livekit-server for tests and benchmarks, with the config and key the daemon would generate.

The binary is found the way the daemon finds it (``VOICEMODE_LIVEKIT_SERVER_PATH``, PATH, the pinned
build cache); where there is none, :func:`absent_reason` says what would provide one.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from voicemoded.livekit.binary import PINNED_VERSION, cache_folder, find_server, pinned_binary
from voicemoded.livekit.config import CONFIG_FILE_NAME, ServerConfig, write_config
from voicemoded.livekit.credentials import KEYS_FILE_NAME, LiveKitAccess, ensure_keys, ensure_private_folder
from voicemoded.testing.ports import free_port

START_TIMEOUT = 20.0
RTC_PORTS = 20
"""UDP ports per test server: a handful of participants each take one."""


@dataclass(frozen=True, slots=True)
class LiveKitServer:
    """A running livekit-server and what a client needs to use it."""

    url: str
    """``ws://127.0.0.1:<port>``."""
    api_key: str
    api_secret: str = field(repr=False)
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    """The server's stdout and stderr."""
    config: Path
    rtc_ports: tuple[int, int]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access(self) -> LiveKitAccess:
        """What the daemon's room calls take, for this server."""
        return LiveKitAccess(url=self.url, api_key=self.api_key, api_secret=self.api_secret, managed=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""


def server_binary() -> Path | None:
    """The livekit-server the daemon would run here, or None."""
    return find_server(
        os.environ.get("VOICEMODE_LIVEKIT_SERVER_PATH", ""),
        cache_folder(os.environ.get("VOICEMODE_LIVEKIT_CACHE", "")),
    )


def absent_reason() -> str:
    """Why there is no server here, for a test's skip message."""
    cache = cache_folder(os.environ.get("VOICEMODE_LIVEKIT_CACHE", ""))
    return (
        "no livekit-server on this machine (not at VOICEMODE_LIVEKIT_SERVER_PATH, not on PATH, not built in "
        f"{pinned_binary(cache).parent}); with Go >= 1.26 `voicemodectl service install livekit` or "
        f"scripts/setup.sh builds {PINNED_VERSION}"
    )


def free_udp_range(width: int = RTC_PORTS) -> tuple[int, int]:
    """``width`` consecutive UDP ports on 127.0.0.1 that nothing holds right now."""
    for _ in range(200):
        start = random.randrange(20000, 32000)
        if all(_udp_free(port) for port in range(start, start + width)):
            return start, start + width - 1
    raise RuntimeError(f"no {width} consecutive free UDP ports found")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def running_livekit(folder: Path, *, port: int | None = None, redis: str = "") -> Iterator[LiveKitServer]:
    """Start livekit-server on 127.0.0.1 from a generated config in ``folder``; stop it on exit.

    Servers started in one folder share its key, as the nodes of one deployment (sharing ``redis``) must.
    """
    binary = server_binary()
    if binary is None:
        raise FileNotFoundError(absent_reason())
    ensure_private_folder(folder)
    key, secret = ensure_keys(folder / KEYS_FILE_NAME)
    http_port = port or free_port()
    rtc_ports = free_udp_range()
    config = ServerConfig(port=http_port, key_file=folder / KEYS_FILE_NAME, rtc_ports=rtc_ports, redis=redis)
    config_path = folder / f"{http_port}-{CONFIG_FILE_NAME}"
    write_config(config_path, config)
    log = folder / f"livekit-{http_port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveKitServer(
        url=f"ws://127.0.0.1:{http_port}",
        api_key=key,
        api_secret=secret,
        port=http_port,
        process=process,
        log=log,
        config=config_path,
        rtc_ports=rtc_ports,
    )
    try:
        wait_answering(server)
        yield server
    finally:
        stop(process)


def wait_answering(server: LiveKitServer, timeout: float = START_TIMEOUT) -> None:
    """Until ``GET /`` says OK (the node is registered); the server's output if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"livekit-server exited with {server.process.returncode}:\n{server.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.http_url + "/", timeout=1.0).text == "OK":
                return
        time.sleep(0.05)
    raise TimeoutError(f"livekit-server did not answer within {timeout:g} s:\n{server.output()}")


def stop(process: subprocess.Popen[bytes], timeout: float = 5.0) -> None:
    """SIGTERM the server's process group, SIGKILL after ``timeout``."""
    if process.poll() is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()

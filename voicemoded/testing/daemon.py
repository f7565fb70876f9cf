"""A real voicemoded on a temp socket, started as a subprocess, for integration tests and benchmarks.

Everything it writes goes to a private temp base dir and a temp HOME; the socket lives in a short temp
path (Unix socket paths are limited to ~100 characters).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from voicemoded.api.client import Client
from voicemoded.testing.endpoint import SpeechEndpoint
from voicemoded.testing.rig import VirtualAudioRig
from voicemoded.testing.services import engine_env, start_services


@dataclass(frozen=True)
class ProcessStats:
    rss: int
    threads: int
    fds: int


def _address_space_limit(limit: int) -> Callable[[], None]:
    def apply() -> None:
        import resource

        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return apply


@dataclass
class DaemonHandle:
    root: Path
    socket: Path
    base: Path
    home: Path
    env: dict[str, str]
    process: subprocess.Popen[bytes] | None = None
    log_path: Path = field(default_factory=Path)

    @property
    def user_file(self) -> Path:
        return self.base / "voicemode.env"

    def client(self) -> Client:
        return Client(self.socket, client_name="tests")

    def start(
        self,
        extra_env: Mapping[str, str] | None = None,
        wait: bool = True,
        timeout: float = 20.0,
        *,
        cwd: Path | None = None,
        memory_limit_bytes: int | None = None,
    ) -> None:
        """Start the daemon; ``cwd`` is its working directory (default: the test process's), and
        ``memory_limit_bytes`` caps its address space, so a runaway allocation fails inside the daemon
        instead of taking memory from the whole machine."""
        env = {**self.env, **(extra_env or {})}
        self.log_path = self.root / f"daemon-{int(time.time() * 1000)}.log"
        limit = _address_space_limit(memory_limit_bytes) if memory_limit_bytes else None
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "voicemoded", "--socket", str(self.socket), "--log-format", "json"],
                env=env,
                cwd=cwd,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
                preexec_fn=limit,
            )
        if wait:
            with self.client() as client:
                alive = self.process.poll
                client.wait_until_ready(timeout, alive=lambda: alive() is None)

    def stats(self) -> ProcessStats:
        """Resident memory, threads and open file descriptors of the daemon process right now."""
        import psutil

        assert self.process is not None
        proc = psutil.Process(self.process.pid)
        with proc.oneshot():
            return ProcessStats(proc.memory_info().rss, proc.num_threads(), proc.num_fds())

    def log_events(self, event: str) -> list[dict[str, object]]:
        """The daemon's JSON log lines whose ``event`` is ``event``."""
        import json

        found = []
        for line in self.log_text().splitlines():
            if f'"{event}"' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict) and record.get("event") == event:
                found.append(record)
        return found

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.is_file() else ""

    def signal(self, sig: int) -> None:
        assert self.process is not None
        self.process.send_signal(sig)

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return None if self.process is None else self.process.returncode
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(5)
            raise

    def ctl(
        self, *args: str, cwd: Path | None = None, env: Mapping[str, str] | None = None, timeout: float = 60.0
    ) -> subprocess.CompletedProcess[str]:
        """Run the real voicemodectl as a process."""
        return subprocess.run(
            [sys.executable, "-m", "voicemodectl", "--socket", str(self.socket), *args],
            env={**self.env, **(env or {})},
            cwd=cwd or self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
        )


def make_env(root: Path, socket: Path, base: Path, home: Path) -> dict[str, str]:
    """A clean environment: no VOICEMODE_*/OPENAI_* from the developer's shell leaks into a test."""
    keep = ("PATH", "LANG", "LC_ALL", "TMPDIR", "PULSE_SERVER", "ALSA_CONFIG_PATH", "PYTHONPATH")
    env = {k: v for k, v in os.environ.items() if k in keep}
    env.update(
        HOME=str(home),
        VOICEMODE_BASE_DIR=str(base),
        VOICEMODE_SOCKET=str(socket),
        VOICEMODE_AUTOSTART_SERVICES="",
        PYTHONUNBUFFERED="1",
    )
    return env


def daemon_handle() -> Iterator[DaemonHandle]:
    root = Path(tempfile.mkdtemp(prefix="vm-"))
    base, home = root / "base", root / "home"
    home.mkdir()
    socket = root / "run" / "voicemoded.sock"
    handle = DaemonHandle(root, socket, base, home, make_env(root, socket, base, home))
    try:
        yield handle
    finally:
        handle.stop()
        shutil.rmtree(root, ignore_errors=True)


def speech_daemon(
    extra_env: Mapping[str, str] | None = None,
    *,
    tone_seconds: float = 0.3,
    memory_limit_bytes: int | None = None,
) -> Iterator[tuple[DaemonHandle, SpeechEndpoint]]:
    """A started daemon on a private virtual audio rig whose only STT/TTS endpoint is a SpeechEndpoint.

    Its working directory is ``root/daemon-cwd`` so a relative path a request carries stays inside.
    """
    audio = VirtualAudioRig().start()
    endpoint = SpeechEndpoint(tone_seconds=tone_seconds)
    try:
        for handle in daemon_handle():
            handle.env.update(audio.env)
            cwd = handle.root / "daemon-cwd"
            cwd.mkdir()
            handle.start(
                {**endpoint.env(), **(extra_env or {})}, cwd=cwd, memory_limit_bytes=memory_limit_bytes
            )
            yield handle, endpoint
    finally:
        endpoint.close()
        audio.stop()


def engines_daemon(
    services: Sequence[str],
    extra_env: Mapping[str, str] | None = None,
    *,
    autostart: Sequence[str] | None = None,
    prepare: Callable[[Client], object] | None = None,
) -> Iterator[tuple[DaemonHandle, VirtualAudioRig, Client]]:
    """A started daemon on a private virtual audio rig with the embedded engines ``services`` running,
    every engine on a free port. The daemon starts ``autostart`` (default: ``services``) by itself;
    ``prepare`` runs before the services are waited for (to choose a model first, say)."""
    audio = VirtualAudioRig().start()
    try:
        for handle in daemon_handle():
            handle.env.update(audio.env)
            handle.start({**engine_env(services if autostart is None else autostart), **(extra_env or {})})
            client = handle.client()
            try:
                if prepare is not None:
                    prepare(client)
                start_services(client, services)
                yield handle, audio, client
            finally:
                client.close()
    finally:
        audio.stop()

"""A real voicemoded on a temp socket, started as a subprocess, for integration tests.

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
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from voicemoded.api.client import Client
from voicemoded.demo import free_port as free_port  # one helper for the demo, benchmarks and tests


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


class SpeechEndpoint:
    """A real OpenAI-compatible STT/TTS server on 127.0.0.1 that answers at once with fixed audio/text.

    For tests about the daemon itself (fuzzing, load, leaks): a turn goes through every daemon stage
    (TTS download, decoding, playback, recording, STT upload) without the cost of real models.
    ``tone_seconds`` of a 440 Hz tone is the speech; every transcription is ``text``.
    """

    def __init__(self, text: str = "hello from the test endpoint", tone_seconds: float = 0.3) -> None:
        import json
        import threading
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self._audio: dict[str, bytes] = {}
        self.set_tone(tone_seconds)
        audio = self._audio
        self.requests: list[str] = []
        requests = self.requests

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _send(self, code: int, body: bytes, kind: str = "application/json") -> None:
                self.send_response(code)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                requests.append(f"GET {self.path}")
                if self.path.rstrip("/").endswith("/models"):
                    models = [{"id": m, "object": "model"} for m in ("tts-1", "whisper-1")]
                    self._send(200, json.dumps({"object": "list", "data": models}).encode())
                elif self.path.endswith("/audio/voices"):
                    self._send(200, json.dumps({"voices": ["alloy", "nova"]}).encode())
                elif self.path.endswith("/health"):
                    self._send(200, b'{"status":"ok"}')
                else:
                    self._send(404, b'{"error":"not found"}')

            def do_POST(self) -> None:
                requests.append(f"POST {self.path}")
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                if self.path.endswith("/audio/speech"):
                    try:
                        fmt = str(json.loads(body or b"{}").get("response_format", "wav"))
                    except ValueError:
                        fmt = "wav"
                    kind = "pcm" if fmt == "pcm" else "wav"
                    self._send(200, audio[kind], f"audio/{kind}")
                elif self.path.endswith("/audio/transcriptions"):
                    self._send(200, json.dumps({"text": text}).encode())
                else:
                    self._send(404, b'{"error":"not found"}')

            def log_message(self, format: str, *args: object) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    def set_tone(self, seconds: float) -> None:
        """Make every later answer ``seconds`` of a 440 Hz tone (24 kHz mono, as PCM or WAV)."""
        import math
        import struct

        rate = 24_000
        pcm = b"".join(
            struct.pack("<h", int(8000 * math.sin(2 * math.pi * 440 * i / rate)))
            for i in range(int(rate * seconds))
        )
        wav = (
            b"RIFF" + struct.pack("<I", 36 + len(pcm)) + b"WAVEfmt "
            + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
            + b"data" + struct.pack("<I", len(pcm)) + pcm
        )  # fmt: skip
        self._audio.update(pcm=pcm, wav=wav)

    def env(self) -> dict[str, str]:
        """The daemon settings that make this server its only STT and TTS endpoint."""
        return {"VOICEMODE_TTS_BASE_URLS": self.url, "VOICEMODE_STT_BASE_URLS": self.url}

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def speech_daemon(
    extra_env: Mapping[str, str] | None = None,
    *,
    tone_seconds: float = 0.3,
    memory_limit_bytes: int | None = None,
) -> Iterator[tuple[DaemonHandle, SpeechEndpoint]]:
    """A started daemon on a private virtual audio rig whose only STT/TTS endpoint is a SpeechEndpoint.

    Its working directory is ``root/daemon-cwd`` so a relative path a request carries stays inside.
    """
    from voicemoded.audio.virtual import VirtualAudioRig

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

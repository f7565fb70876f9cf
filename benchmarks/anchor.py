"""VoiceMode 9.0.1, the anchor our figures are compared with, in a venv of its own outside the repository.

``pip install voice-mode==9.0.1`` does not resolve from the registry (it pins a ``certifi`` newer than the
registry has), so its dependencies are installed by name with ``certifi`` unpinned and the package itself
with ``--no-deps``. ``simpleaudio`` builds against ALSA's headers (Debian ``libasound2-dev``).

The venv lives under ``$XDG_CACHE_HOME/voicemode-bench/`` (``~/.cache`` by default) so that none of
VoiceMode's code ever lands in this tree. VoiceMode writes to its ``HOME`` as it starts, so every run
gets a fresh temporary one.

The same file is the driver the benchmark runs with VoiceMode's own interpreter (``drive``): it imports
the converse tool once, as a long-running MCP server would, then runs one turn per JSON line on stdin and
answers each with a JSON line holding the wall-clock call and return times and the tool's result.

Run: python benchmarks/anchor.py install     (idempotent; prints the venv's interpreter)
     python benchmarks/anchor.py check       (imports the converse tool in the venv)
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import queue
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import venv
from datetime import datetime
from pathlib import Path
from typing import Any

VERSION = "9.0.1"
DEPENDENCIES = [
    "aiohttp", "certifi", "click>=8.0.0", "fastmcp<4,>=3.4.10", "httpx", "keyring>=25.0.0", "numpy",
    "openai>=2", "opentelemetry-api>=1.45.1", "psutil>=5.9.0", "pydub", "pyjwt>=2.15.0", "pyyaml>=6.0.0",
    "scipy", "simpleaudio", "sounddevice", "uv>=0.13.4", "webrtcvad-wheels>=2.0.14",
]  # fmt: skip


class AnchorUnavailable(RuntimeError):
    """VoiceMode could not be installed or started here; the message says why, for the printed figures."""


def venv_dir() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "voicemode-bench" / f"voice-mode-{VERSION}"


def interpreter() -> Path:
    return venv_dir() / "bin" / "python"


def installed() -> bool:
    python = interpreter()
    if not python.exists():
        return False
    probe = subprocess.run(
        [str(python), "-c", "import importlib.metadata as m; print(m.version('voice-mode'))"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return probe.returncode == 0 and probe.stdout.strip() == VERSION


def _pip(*args: str) -> None:
    cmd = [str(interpreter()), "-m", "pip", "install", "--disable-pip-version-check", "-q", *args]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = (done.stderr or done.stdout).strip().splitlines()[-5:]
        raise AnchorUnavailable(f"pip install {' '.join(args)} failed: {' | '.join(tail)}")


def install() -> Path:
    """Build the venv when it is missing or holds another version; return its interpreter."""
    if installed():
        return interpreter()
    if not Path("/usr/include/alsa/asoundlib.h").exists():
        raise AnchorUnavailable("simpleaudio needs ALSA headers: apt-get install libasound2-dev")
    target = venv_dir()
    shutil.rmtree(target, ignore_errors=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    # The base interpreter, not this venv's: the anchor must not see our packages.
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(target)], check=True)
    if not interpreter().exists():  # pragma: no cover - a base without ensurepip
        venv.create(target, with_pip=True)
    _pip(*DEPENDENCIES)
    _pip("--no-deps", f"voice-mode=={VERSION}")
    if not installed():
        raise AnchorUnavailable(f"voice-mode {VERSION} installed but its metadata does not say so")
    return interpreter()


def check() -> str:
    """Import the converse tool the way the driver does; return the error text, or '' when it works."""
    home = Path(tempfile.mkdtemp(prefix="voicemode-bench-check-"))
    env = {**os.environ, "HOME": str(home)}
    done = subprocess.run(
        [str(interpreter()), "-c", "from voice_mode.tools.converse import converse; print('ok')"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    shutil.rmtree(home, ignore_errors=True)
    return "" if done.returncode == 0 else (done.stderr.strip().splitlines() or ["?"])[-1]


def drive() -> int:
    """Serve turns to the benchmark over stdin/stdout; runs inside VoiceMode's venv, never ours."""
    from voice_mode.config import EVENT_LOG_DIR
    from voice_mode.tools.converse import converse
    from voice_mode.utils import initialize_event_logger

    # What VoiceMode's own server main() does before serving: the events file is where its timings are.
    initialize_event_logger(log_dir=Path(EVENT_LOG_DIR), enabled=True)

    # fastmcp may hand back a tool object instead of the function: take the function either way.
    tool = converse if inspect.iscoroutinefunction(converse) else converse.fn
    out = sys.stdout
    # VoiceMode logs to stdout in places; keep stdout for our replies alone.
    sys.stdout = sys.stderr
    out.write(json.dumps({"ready": time.time()}) + "\n")
    out.flush()

    async def serve() -> None:
        # Reading stdin off the loop lets VoiceMode's own background tasks run between turns.
        while line := await asyncio.to_thread(sys.stdin.readline):
            kwargs = json.loads(line)
            started = time.time()
            try:
                text, error = str(await tool(**kwargs)), ""
            except Exception as exc:  # the benchmark prints it; the driver keeps serving
                text, error = "", f"{type(exc).__name__}: {exc}"
            reply = {"called": started, "returned": time.time(), "result": text, "error": error}
            out.write(json.dumps(reply) + "\n")
            out.flush()

    asyncio.run(serve())
    return 0


class AnchorDriver:
    """The benchmark's side of ``drive``: one VoiceMode process, one turn at a time, its events read back."""

    def __init__(
        self, python: Path, home: Path, audio_env: dict[str, str], tts_url: str, stt_url: str, voice: str
    ) -> None:
        home.mkdir(parents=True, exist_ok=True)
        self.home = home
        env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEMODE_")}
        env.update(audio_env)
        env.update(
            HOME=str(home), VOICEMODE_TTS_BASE_URLS=tts_url, VOICEMODE_STT_BASE_URLS=stt_url,
            # VoiceMode asks for af_sky by default, which our Piper engine rightly refuses.
            VOICEMODE_VOICES=voice,
            # It sends language "auto" to local endpoints (whisper.cpp style); our tiny.en engine refuses it.
            VOICEMODE_WHISPER_LANGUAGE="en",
        )  # fmt: skip
        self._stderr = open(home / "voicemode.log", "wb")  # noqa: SIM115 - closed in close()
        self._proc = subprocess.Popen(
            [str(python), str(Path(__file__).resolve()), "drive"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._stderr, env=env, text=True,
        )  # fmt: skip
        self._lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, name="anchor-stdout", daemon=True).start()
        ready = self.reply(timeout=120)
        if "ready" not in ready:
            raise AnchorUnavailable(f"the driver did not start: {ready}")

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            self._lines.put(line)
        self._lines.put("")

    def call(self, kwargs: dict[str, Any]) -> None:
        assert self._proc.stdin is not None
        self._proc.stdin.write(json.dumps(kwargs) + "\n")
        self._proc.stdin.flush()

    def reply(self, timeout: float) -> dict[str, Any]:
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            raise TimeoutError(f"VoiceMode gave no answer within {timeout:.0f} s") from None
        if not line:
            tail = (self.home / "voicemode.log").read_text(errors="replace").strip().splitlines()[-3:]
            raise AnchorUnavailable(f"the driver exited: {' | '.join(tail)}")
        reply: dict[str, Any] = json.loads(line)
        return reply

    def events(self, since: float, until: float, wait: float = 2.0) -> dict[str, float]:
        """First wall time of each event type VoiceMode logged in [since, until]; its writer is a thread."""
        folder = self.home / ".voicemode" / "logs" / "events"
        deadline = time.monotonic() + wait
        while True:
            found: dict[str, float] = {}
            for path in sorted(folder.glob("*.jsonl")):
                for line in path.read_text(errors="replace").splitlines():
                    try:
                        event = json.loads(line)
                        at = datetime.fromisoformat(event["timestamp"]).timestamp()
                    except (ValueError, KeyError):
                        continue
                    if since - 0.01 <= at <= until + 0.5:
                        found.setdefault(str(event["event_type"]), at)
            if "SESSION_END" in found or time.monotonic() > deadline:
                return found
            time.sleep(0.05)

    def close(self) -> None:
        if self._proc.stdin is not None:
            self._proc.stdin.close()
        try:
            self._proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._stderr.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("action", choices=["install", "check", "drive"])
    args = parser.parse_args(argv)
    if args.action == "drive":
        return drive()
    try:
        python = install()
    except AnchorUnavailable as exc:
        print(f"VoiceMode {VERSION} unavailable: {exc}")
        return 1
    print(python)
    if args.action == "check":
        error = check()
        print(error or "converse tool imports")
        return 1 if error else 0
    return 0


if __name__ == "__main__":
    sys.exit(main())

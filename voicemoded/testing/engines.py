"""Real engine servers (``python -m voicemoded.engines.<name>``) as child processes on free loopback ports."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx

import voicemoded
from voicemoded.testing.ports import free_port

SOURCE = Path(voicemoded.__file__).resolve().parent.parent
"""The folder that holds the ``voicemoded`` package: the children import it from there."""


@dataclass
class EngineProcess:
    """A running ``python -m voicemoded.engines.<name>``; its stderr is read on a thread."""

    name: str
    port: int
    proc: subprocess.Popen[bytes]
    lines: list[str] = field(default_factory=list)
    ready: threading.Event = field(default_factory=threading.Event)
    exited: threading.Event = field(default_factory=threading.Event)
    logged: threading.Condition = field(default_factory=threading.Condition)
    """Notified for every line the child writes to stderr."""

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def events(self) -> list[dict[str, object]]:
        out = []
        for line in list(self.lines):
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except json.JSONDecodeError:
                    pass
        return out

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            with self.logged:
                self.lines.append(line)
                self.logged.notify_all()
            if '"engine.ready"' in line:
                self.ready.set()
        self.exited.set()
        with self.logged:
            self.logged.notify_all()

    def wait_event(self, name: str, *, after: int = 0, timeout: float = 10.0) -> dict[str, object]:
        """The first JSON log event ``name`` among the child's events from index ``after`` on."""

        def found() -> dict[str, object] | None:
            events = [e for e in self.events()[after:] if e.get("event") == name]
            return events[0] if events else None

        with self.logged:
            event = self.logged.wait_for(lambda: found() or self.exited.is_set(), timeout)
        if not isinstance(event, dict):
            raise AssertionError(f"{self.name} logged no {name} event:\n" + "\n".join(self.lines[-20:]))
        return event

    def wait_ready(self, timeout: float) -> None:
        """Wait for the child's ``engine.ready`` event, then check /health agrees."""
        deadline_hit = not self.ready.wait(timeout)
        if deadline_hit or self.proc.poll() is not None:
            raise AssertionError(f"{self.name} did not become ready:\n" + "\n".join(self.lines[-30:]))
        response = httpx.get(f"{self.url}/health", timeout=5)
        assert response.status_code == 200, response.text

    def stop(self, timeout: float = 15) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        self.exited.wait(5)
        return code


def start_engine(name: str, tmp: Path, *args: str, port: int | None = None) -> EngineProcess:
    port = port or free_port()
    env = {
        **os.environ,
        "HOME": str(tmp / "home"),
        "VOICEMODE_BASE_DIR": str(tmp / "base"),
        "PYTHONPATH": str(SOURCE) + os.pathsep + os.environ.get("PYTHONPATH", ""),
        "PYTHONUNBUFFERED": "1",
    }
    (tmp / "home").mkdir(parents=True, exist_ok=True)
    argv = [sys.executable, "-m", f"voicemoded.engines.{name}", "--port", str(port), *args]
    proc = subprocess.Popen(argv, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env, cwd=tmp)
    engine = EngineProcess(name, port, proc)
    threading.Thread(target=engine._read, daemon=True, name=f"{name}-stderr").start()
    return engine


def running_engine(name: str, tmp: Path, *args: str, timeout: float = 90) -> Iterator[EngineProcess]:
    engine = start_engine(name, tmp, *args)
    try:
        engine.wait_ready(timeout)
        yield engine
    finally:
        engine.stop()

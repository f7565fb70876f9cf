"""The sound server's own devices: PulseAudio's sinks and sources (PipeWire's too, through pipewire-pulse).

PortAudio sees such a desktop as ALSA's ``pulse`` and ``default`` devices only, so a USB headset cannot
be chosen by the name the person sees in their sound settings. ``pactl`` lists the server's devices by
their own names and descriptions; a stream opened on ALSA's ``pulse`` device with ``PULSE_SINK`` or
``PULSE_SOURCE`` set goes to the one chosen, because libpulse reads them when the stream connects.

Every question is one short ``pactl`` run (a few milliseconds); no answer, or no ``pactl``, means there is
no sound server to ask, and PortAudio's own list is all there is.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from dataclasses import dataclass
from typing import Any, Literal

import structlog

log = structlog.get_logger(__name__)

Direction = Literal["input", "output"]
_KIND: dict[Direction, str] = {"input": "sources", "output": "sinks"}
_SPEC = re.compile(r"(\d+)ch\s+(\d+)Hz")


@dataclass(frozen=True, slots=True)
class ServerDevice:
    """One sink (output) or source (input) of the sound server."""

    name: str
    """The server's name for it, what ``PULSE_SINK`` / ``PULSE_SOURCE`` take."""
    description: str
    """What the person sees in their sound settings ("USB Headset Analog Stereo")."""
    direction: Direction
    channels: int
    rate: int
    is_default: bool


@dataclass(frozen=True, slots=True)
class ServerView:
    label: str
    """``PulseAudio`` or ``PipeWire``: the host API column of ``voicemodectl devices``."""
    devices: tuple[ServerDevice, ...]


class SoundServer:
    """Asks the PulseAudio server PortAudio talks to (``PULSE_SERVER`` or the user's) about its devices."""

    def __init__(self, pactl: str | None = None, *, timeout: float = 2.0) -> None:
        self._pactl = pactl if pactl is not None else (shutil.which("pactl") or "")
        self._timeout = timeout

    def _run(self, *args: str) -> str | None:
        return self._run_together([*args])[0]

    def _run_together(self, *commands: list[str]) -> list[str | None]:
        """Several pactl questions at once (each costs a connection): the answers, None where one failed."""
        if not self._pactl:
            return [None] * len(commands)
        procs: list[subprocess.Popen[str] | None] = []
        for args in commands:
            try:
                procs.append(subprocess.Popen(
                    [self._pactl, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                    stdin=subprocess.DEVNULL, text=True,
                ))  # fmt: skip
            except OSError as exc:
                log.debug("sound_server.unreachable", error=str(exc))
                procs.append(None)
        out: list[str | None] = []
        for proc in procs:
            if proc is None:
                out.append(None)
                continue
            try:
                stdout, _ = proc.communicate(timeout=self._timeout)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.communicate()
                out.append(None)
                continue
            out.append(stdout if proc.returncode == 0 else None)
        return out

    def view(self) -> ServerView | None:
        """Every sink and source, defaults marked; None when no server answers."""
        info, *answers = self._run_together(
            ["-f", "json", "info"], *(["-f", "json", "list", _KIND[d]] for d in _KIND)
        )
        if info is None or None in answers:
            return self._short_view()
        try:
            about = json.loads(info)
            lists = [(d, json.loads(text or "[]")) for d, text in zip(_KIND, answers, strict=True)]
        except ValueError:
            return self._short_view()
        defaults: dict[Direction, object] = {
            "input": about.get("default_source_name"),
            "output": about.get("default_sink_name"),
        }
        devices = [
            _device(entry, direction, defaults[direction])
            for direction, entries in lists
            for entry in entries
            if isinstance(entry, dict) and entry.get("name")
        ]
        return ServerView(_label(str(about.get("server_name", ""))), tuple(devices))

    def _short_view(self) -> ServerView | None:
        """pactl before 16 has no JSON: names from the short lists (the name is then the description)."""
        info = self._run("info")
        if info is None:
            return None
        fields = dict(line.split(": ", 1) for line in info.splitlines() if ": " in line)
        defaults = {"input": fields.get("Default Source"), "output": fields.get("Default Sink")}
        devices = []
        for direction in _KIND:
            for line in (self._run("list", "short", _KIND[direction]) or "").splitlines():
                parts = line.split("\t")
                if len(parts) < 4:
                    continue
                channels, rate = _spec(parts[3])
                is_default = parts[1] == defaults[direction]
                devices.append(ServerDevice(parts[1], parts[1], direction, channels, rate, is_default))
        return ServerView(_label(fields.get("Server Name", "")), tuple(devices))

    def names(self, direction: Direction) -> set[str] | None:
        """The names of the sinks or sources there now (the cheap question); None without a server."""
        out = self._run("list", "short", _KIND[direction])
        if out is None:
            return None
        return {parts[1] for line in out.splitlines() if len(parts := line.split("\t")) > 1}


def _device(entry: dict[str, Any], direction: Direction, default: object) -> ServerDevice:
    name = str(entry["name"])
    channels, rate = _spec(str(entry.get("sample_specification", "")))
    props = entry.get("properties") or {}
    return ServerDevice(
        name=name,
        description=str(entry.get("description") or props.get("device.description") or name),
        direction=direction,
        channels=channels,
        rate=rate,
        is_default=name == default,
    )


def _spec(text: str) -> tuple[int, int]:
    """``s16le 2ch 44100Hz`` -> (2, 44100); unreadable: stereo at 48 kHz, what servers default to."""
    match = _SPEC.search(text)
    return (int(match.group(1)), int(match.group(2))) if match else (2, 48_000)


def _label(server_name: str) -> str:
    return "PipeWire" if "pipewire" in server_name.lower() else "PulseAudio"

"""The audio devices the daemon sees (the sound server's and PortAudio's), which of them the settings
select, and which have a stream of the daemon open now."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from voicemoded.api.errors import VoicemodeError
from voicemoded.app.audio import AudioStack
from voicemoded.config import ConfigManager

if TYPE_CHECKING:
    from voicemoded.audio.devices import AudioBackend, DeviceInfo, Route

Direction = Literal["input", "output"]


@dataclass(frozen=True, slots=True)
class DeviceList:
    devices: tuple[DeviceInfo, ...]
    selected_input: int | None
    """Index of the PortAudio device a recording would open; None when none fits (``input_error`` says why)."""
    selected_output: int | None
    input_error: str = ""
    output_error: str = ""
    input_target: str = ""
    """The sound-server source a recording would reach: the one chosen by name, or the server's default
    when the stream opens on ALSA's pulse/default device; "" when that is not known."""
    output_target: str = ""
    open_input: str = ""
    """Name of the device the microphone has open now ("" while closed)."""
    open_output: str = ""

    def selected(self, d: DeviceInfo, direction: Direction) -> bool:
        """The device the settings send a stream to: the sound server's when known, else PortAudio's."""
        target = self.input_target if direction == "input" else self.output_target
        if d.server_device:
            return d.name == target
        index = self.selected_input if direction == "input" else self.selected_output
        return not target and d.index == index

    def in_use(self, d: DeviceInfo) -> bool:
        """A stream of the daemon is open on it now."""
        return bool(d.name) and d.name in (self.open_input, self.open_output)


class Devices:
    def __init__(self, audio: AudioStack, config: ConfigManager) -> None:
        self._audio = audio
        self._config = config

    async def list(self) -> DeviceList:
        """Re-scanned now (a device plugged in since the last call is listed)."""
        audio = self._audio.backend  # built here, on the event loop, the first time
        conversation = self._audio.conversation
        mic, speaker = conversation.microphone, conversation.speaker
        open_input = mic.route.name if mic.is_open and mic.route is not None else ""
        open_output = speaker.route.name if speaker.is_open and speaker.route is not None else ""
        found = await asyncio.to_thread(self._gather, audio)
        return DeviceList(
            found.devices, found.selected_input, found.selected_output, found.input_error,
            found.output_error, found.input_target, found.output_target, open_input, open_output,
        )  # fmt: skip

    def _gather(self, audio: AudioBackend) -> DeviceList:
        settings = self._config.settings
        audio.refresh()
        devices = tuple(audio.all_devices())
        routes: dict[str, Route | None] = {}
        errors: dict[str, str] = {}
        wanted: tuple[tuple[Direction, str], ...] = (
            ("input", settings.input_device),
            ("output", settings.output_device),
        )
        for direction, spec in wanted:
            try:
                routes[direction] = audio.resolve(direction, spec or None)
            except VoicemodeError as exc:
                routes[direction], errors[direction] = None, str(exc)
        return DeviceList(
            devices,
            _index(routes["input"]),
            _index(routes["output"]),
            errors.get("input", ""),
            errors.get("output", ""),
            _target(routes["input"], devices),
            _target(routes["output"], devices),
        )


def _index(route: Route | None) -> int | None:
    return route.device.index if route is not None else None


def _target(route: Route | None, devices: tuple[DeviceInfo, ...]) -> str:
    """The sound-server device a route reaches: its own, or (through ALSA's pulse/default) the server's
    default, or the one ``PULSE_SINK`` / ``PULSE_SOURCE`` in the daemon's environment names."""
    from voicemoded.audio.devices import ROUTE_DEVICES, environment_target

    if route is None:
        return ""
    if route.target is not None:
        return route.target.name
    if route.device.name not in ROUTE_DEVICES:
        return ""
    named = environment_target(route.direction)
    if named:
        return named
    for d in devices:
        if d.server_device and (d.is_default_input if route.direction == "input" else d.is_default_output):
            return d.name
    return ""

"""The audio devices PortAudio sees, and which of them the daemon's settings select."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from voicemoded.api.errors import VoicemodeError
from voicemoded.app.audio import AudioStack
from voicemoded.config import ConfigManager

if TYPE_CHECKING:
    from voicemoded.audio.devices import AudioBackend, DeviceInfo


@dataclass(frozen=True, slots=True)
class DeviceList:
    devices: tuple[DeviceInfo, ...]
    selected_input: int | None
    """Index of the device a recording would use; None when none fits (``input_error`` says why)."""
    selected_output: int | None
    input_error: str = ""
    output_error: str = ""


class Devices:
    def __init__(self, audio: AudioStack, config: ConfigManager) -> None:
        self._audio = audio
        self._config = config

    async def list(self) -> DeviceList:
        """Re-scanned now (a device plugged in since the last call is listed)."""
        audio = self._audio.backend  # built here, on the event loop, the first time
        return await asyncio.to_thread(self._gather, audio)

    def _gather(self, audio: AudioBackend) -> DeviceList:
        settings = self._config.settings
        audio.refresh()
        selected: dict[str, int | None] = {}
        errors: dict[str, str] = {}
        wanted: tuple[tuple[Literal["input", "output"], str], ...] = (
            ("input", settings.input_device),
            ("output", settings.output_device),
        )
        for direction, spec in wanted:
            try:
                selected[direction] = audio.select(direction, spec or None).index
            except VoicemodeError as exc:
                selected[direction], errors[direction] = None, str(exc)
        return DeviceList(
            tuple(audio.devices()),
            selected["input"],
            selected["output"],
            errors.get("input", ""),
            errors.get("output", ""),
        )

"""The daemon's parts, as built by the composition root and handed to the API layer.

``__main__`` fills it once. The few operations that span several parts live here too: rebuilding the
service specs after an install or a model change, telling the provider registry which local servers are
up, and swapping in a new endpoint registry when the endpoint settings change on reload (in-flight turns
keep the old one until they finish).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from voicemoded import wiring
from voicemoded.api.paths import Paths
from voicemoded.config import ConfigManager, Settings
from voicemoded.events import EventBus

if TYPE_CHECKING:
    from voicemoded.audio.devices import AudioBackend
    from voicemoded.conversation.journal import Journal
    from voicemoded.conversation.loop import Conversation
    from voicemoded.engines.install import Installer, ModelStore
    from voicemoded.providers import Speech
    from voicemoded.supervisor.spec import ServiceSpec
    from voicemoded.supervisor.supervisor import Supervisor

log = structlog.get_logger(__name__)


@dataclass
class Core:
    paths: Paths
    config: ConfigManager
    events: EventBus
    supervisor: Supervisor
    speech: Speech
    installer: Installer
    models: ModelStore
    journal: Journal
    build_audio: Callable[[Core], tuple[AudioBackend, Conversation]]
    """Builds the audio stack on first use: PortAudio, numpy and the VAD stay unloaded until needed."""
    _audio: tuple[AudioBackend, Conversation] | None = None

    @property
    def audio(self) -> AudioBackend:
        return self._audio_stack()[0]

    @property
    def conversation(self) -> Conversation:
        return self._audio_stack()[1]

    def _audio_stack(self) -> tuple[AudioBackend, Conversation]:
        if self._audio is None:
            self._audio = self.build_audio(self)
        return self._audio

    def specs(self) -> list[ServiceSpec]:
        return wiring.service_specs(self.config.settings, self.paths, self.models.in_use())

    async def refresh_services(self, *, restart: bool = False) -> None:
        """Rebuild every service spec (after an install, a model choice or a config change)."""
        for spec in self.specs():
            await self.supervisor.replace_spec(spec, restart=restart)

    async def apply_model_choice(self, kind: str) -> None:
        """A new STT model means a whisper restart with it; voices are chosen per request."""
        if kind == "stt":
            await self.refresh_services(restart=True)

    def update_local_endpoints(self) -> None:
        from voicemoded.supervisor.states import ServiceState

        statuses = [
            (s.name, s.host, s.port or 0, s.state is ServiceState.RUNNING) for s in self.supervisor.list()
        ]
        for kind, endpoints in wiring.local_endpoints(statuses).items():
            self.speech.set_local_endpoints(kind, endpoints)  # type: ignore[arg-type]

    async def follow_services(self) -> None:
        """Keep the provider registry in step with the supervisor: runs until cancelled."""
        self.update_local_endpoints()
        async for event in self.events.subscribe(subsystems=frozenset({"supervisor"})):
            if event.kind == "service.state":
                self.update_local_endpoints()

    async def on_settings_changed(self, old: Settings, new: Settings) -> None:
        if wiring.provider_settings(old, self.paths) != wiring.provider_settings(new, self.paths):
            from voicemoded.providers import Speech

            fresh = Speech(wiring.provider_settings(new, self.paths), events=self.events)
            previous, self.speech = self.speech, fresh
            await self.speech.start()
            if self._audio is not None:
                self.conversation.speech = self.speech
            self.update_local_endpoints()
            log.info("providers.reconfigured")
            self.events.publish("providers.reconfigured", "providers", "endpoint settings changed")
            # Let turns already using the old registry finish before closing it.
            asyncio.get_running_loop().call_later(60, lambda: asyncio.ensure_future(previous.aclose()))
        await self.refresh_services(restart=True)

    async def aclose(self) -> None:
        with contextlib.suppress(Exception):
            await self.speech.aclose()
        if self._audio is not None:
            with contextlib.suppress(Exception):
                await self.conversation.microphone.aclose()
            with contextlib.suppress(Exception):
                await self.conversation.speaker.settled()
            self.audio.close()

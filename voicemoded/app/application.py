"""The application: every subsystem's service, and what happens between them.

Two things span subsystems and live here: the provider registry follows the supervisor (a speech server
that comes up or goes down is added to or dropped from the endpoints at once), and a settings change
reaches the running parts (a new registry when the endpoints changed, rebuilt service specs and the
webhooks' new settings always).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from voicemoded import wiring
from voicemoded.app.audio import AudioStack
from voicemoded.app.config import Configuration
from voicemoded.app.conversation import Conversations
from voicemoded.app.daemon import Daemon
from voicemoded.app.devices import Devices
from voicemoded.app.providers import Providers
from voicemoded.app.rooms import Rooms
from voicemoded.app.services import Services
from voicemoded.app.statistics import Statistics
from voicemoded.app.tools import Tools
from voicemoded.config import Settings
from voicemoded.events import EventBus
from voicemoded.health import Health
from voicemoded.plugins.loaded import Plugins
from voicemoded.webhooks import Webhooks


@dataclass(frozen=True, slots=True)
class App:
    conversations: Conversations
    services: Services
    providers: Providers
    configuration: Configuration
    statistics: Statistics
    devices: Devices
    daemon: Daemon
    audio: AudioStack
    events: EventBus
    tools: Tools
    """The MCP tools plugins add."""
    plugins: Plugins
    webhooks: Webhooks
    """Delivers selected events once :meth:`Webhooks.run` runs (the composition root starts it)."""
    rooms: Rooms
    """LiveKit rooms on the server the settings name."""

    def health_probes(self) -> dict[str, Callable[[], Health]]:
        """Cheap per-subsystem health for ``status``, read from state the parts already keep."""
        return {
            "config": self.configuration.health,
            "supervisor": self.services.health,
            "providers": self.providers.health,
            "conversation": self.statistics.health,
            "storage": self.statistics.storage_health,
            "plugins": self.plugins.health,
            "webhooks": self.webhooks.health,
        }

    async def start(self) -> None:
        """Begin probing the endpoints; the supervisor's own start-up is the composition root's."""
        await self.providers.start()

    def update_local_endpoints(self) -> None:
        self.providers.set_local_endpoints(self.services.local_endpoints())

    async def follow_services(self) -> None:
        """Keep the provider registry in step with the supervisor: runs until cancelled."""
        self.update_local_endpoints()
        async for event in self.events.subscribe(subsystems=frozenset({"supervisor"})):
            if event.kind == "service.state":
                self.update_local_endpoints()

    async def settings_changed(self, old: Settings, new: Settings) -> None:
        self.webhooks.reconfigure(wiring.webhook_settings(new))
        await self.providers.reconfigure(old, new, self.services.local_endpoints())
        await self.services.refresh(restart=True)

    async def aclose(self) -> None:
        """Stop every supervised child, then close the endpoints' connections and the audio devices."""
        await self.services.stop_all()
        await self.providers.aclose()
        await self.audio.aclose()

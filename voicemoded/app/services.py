"""The supervised speech servers and their models: status, control, logs, installs.

A start or restart answers with the outcome of the attempt it launched: RUNNING is the answer, anything
else (given up, exited) is an ``Unavailable`` error naming why, whichever door asked. An install or a
model choice rebuilds the service specs, so a backend that was missing is usable without a restart of
the daemon. A service a plugin adds is supervised like a built-in one; its install is the plugin's.
"""

from __future__ import annotations

import asyncio
import builtins
from collections.abc import AsyncGenerator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from voicemoded import wiring
from voicemoded.api.errors import NotFound, Unavailable
from voicemoded.app.providers import parse_kind
from voicemoded.engines.install import Installer, InstallStatus, ModelInfo, ModelStore, ProgressCallback
from voicemoded.health import Health
from voicemoded.plugins.loaded import Plugins
from voicemoded.supervisor.spec import ServiceSpec
from voicemoded.supervisor.states import ServiceState
from voicemoded.supervisor.stats import ServiceStatus
from voicemoded.supervisor.supervisor import Supervisor

#: How long a start or restart waits for its attempt's outcome (model loading is the slow part).
START_WAIT = 180.0
#: Log lines a tail shows when the caller asks for none.
DEFAULT_LOG_LINES = 50

SpecSource = Callable[[], builtins.list[ServiceSpec]]
"""Every service spec for the current settings and models (built-in ones, and any a plugin adds)."""


@dataclass(frozen=True, slots=True)
class Service:
    """A service's status with what its spec says about it."""

    status: ServiceStatus
    command: tuple[str, ...]
    memory_limit_bytes: int | None
    url: str
    """Where it answers (the OpenAI API base, or ws:// for LiveKit); "" without a port."""


class Services:
    def __init__(
        self,
        supervisor: Supervisor,
        installer: Installer,
        models: ModelStore,
        specs: SpecSource,
        plugins: Plugins | None = None,
    ) -> None:
        self._supervisor = supervisor
        self._installer = installer
        self._models = models
        self._specs = specs
        self._plugins = plugins if plugins is not None else Plugins()

    @property
    def names(self) -> builtins.list[str]:
        return self._supervisor.names

    def _service(self, status: ServiceStatus) -> Service:
        spec = self._supervisor.spec(status.name)
        url = wiring.service_url(status.name, status.host, status.port)
        return Service(status, spec.command, spec.memory_limit_bytes, url)

    async def list(self) -> builtins.list[Service]:
        statuses = await asyncio.to_thread(self._supervisor.list)  # samples every process tree
        return [self._service(s) for s in statuses]

    async def get(self, name: str) -> Service:
        return self._service(await asyncio.to_thread(self._supervisor.get, name))

    async def start(self, name: str) -> Service:
        """Returns once this start's attempt is RUNNING (ready), or raises with what stopped it."""
        status = await self._supervisor.start_and_wait(name, START_WAIT)
        return self._service(_outcome(status, "start"))

    async def restart(self, name: str) -> Service:
        """Like :meth:`start`: a restart that ends anywhere but RUNNING is an error, not a success."""
        status = await self._supervisor.restart_and_wait(name, START_WAIT)
        return self._service(_outcome(status, "restart"))

    async def stop(self, name: str) -> Service:
        return self._service(await self._supervisor.stop(name))

    def set_autostart(self, name: str, enabled: bool) -> Service:
        return self._service(self._supervisor.set_autostart(name, enabled))

    async def tail_logs(self, name: str, lines: int = 0) -> builtins.list[str]:
        return await self._supervisor.tail_logs(name, lines if lines > 0 else DEFAULT_LOG_LINES)

    def follow_logs(self, name: str, lines: int = 0) -> AsyncGenerator[str, None]:
        return self._supervisor.follow_logs(name, lines if lines > 0 else DEFAULT_LOG_LINES)

    async def reopen_logs(self) -> builtins.list[str]:
        """Reopen every log file (after an outside rotation); returns the files now written."""
        await self._supervisor.reopen_logs()
        return [self._supervisor.get(name).log_path for name in self._supervisor.names]

    def install(self, name: str, progress: ProgressCallback) -> Coroutine[Any, Any, InstallStatus]:
        """Install a service's backend, each line of output to ``progress``; then rebuild the specs.

        The name is checked at once: an unknown one raises here, before anything is under way (a door
        that streams the progress answers it as an error of the call, not as a failed install).
        """
        if name not in self._supervisor.names:
            raise NotFound(
                f"no service named {name!r}", hint=f"services: {', '.join(self._supervisor.names)}"
            )
        return self._install(name, progress)

    async def _install(self, name: str, progress: ProgressCallback) -> InstallStatus:
        if name in self._plugins.service_names():
            await self._plugins.install(name, progress)
            await self.refresh()  # the plugin's factory says whether it is set up now
            missing = self._supervisor.spec(name).not_installed
            return InstallStatus(name, missing is None, hint=missing.hint if missing else "")
        status = await self._installer.install(name, progress)
        await self.refresh()  # a backend that was missing at start-up is usable now
        return status

    async def startup(self) -> None:
        """End a previous run's leftover children, then start the autostart services."""
        await self._supervisor.startup()

    async def stop_all(self) -> None:
        await self._supervisor.stop_all()

    async def refresh(self, *, restart: bool = False) -> None:
        """Rebuild every service spec (after an install, a model choice or a config change)."""
        for spec in self._specs():
            await self._supervisor.replace_spec(spec, restart=restart)

    def local_endpoints(self) -> dict[str, dict[str, str]]:
        """The running speech servers per kind, for the provider registry, with the plugins' endpoints
        (their providers', and their speech services' while those run)."""
        statuses = [
            (s.name, s.host, s.port or 0, s.state is ServiceState.RUNNING) for s in self._supervisor.list()
        ]
        out = wiring.local_endpoints(statuses)
        for kind, endpoints in self._plugins.speech_endpoints(statuses).items():
            out[kind].update(endpoints)
        return out

    # -- models ---------------------------------------------------------------------------------------

    async def models(self, kind: str = "") -> builtins.list[ModelInfo]:
        return await asyncio.to_thread(self._models.list_models, parse_kind(kind))

    async def install_model(self, name: str, progress: ProgressCallback) -> builtins.list[ModelInfo]:
        """Install ``name``; the specs are rebuilt, since Whisper refuses to start without its model."""
        installed = await self._models.install(name, progress)
        await self.refresh()
        return installed

    async def remove_model(self, name: str) -> ModelInfo:
        removed = (await self._models.remove(name))[0]
        await self.refresh()
        return removed

    async def use_model(self, name: str) -> ModelInfo:
        """Make ``name`` the model in use; a new STT model means a whisper restart with it (voices are
        chosen per request, so a TTS choice needs none)."""
        info = await asyncio.to_thread(self._models.use, name)
        if info.kind == "stt":
            await self.refresh(restart=True)
        return info

    def health(self) -> Health:
        services = self._supervisor.list()
        fatal = [s.name for s in services if s.state is ServiceState.FATAL]
        running = [s.name for s in services if s.state is ServiceState.RUNNING]
        if fatal:
            return Health(
                "supervisor",
                "degraded",
                f"gave up on {', '.join(fatal)}; running: {', '.join(running) or 'none'}",
            )
        return Health("supervisor", "ok", f"running: {', '.join(running) or 'none'}")


def _outcome(status: ServiceStatus, verb: str) -> ServiceStatus:
    if status.state is ServiceState.RUNNING:
        return status
    raise Unavailable(
        f"{status.name} did not {verb}: {status.reason or status.state.name.lower()}",
        hint=f"`voicemodectl service logs {status.name}` shows its output",
        fields={"service": status.name, "state": status.state.name},
    )

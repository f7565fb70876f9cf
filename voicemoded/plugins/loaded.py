"""What the daemon got from its plugins: service specs, speech endpoints and MCP tools, ready to use.

The composition root hands these to the parts that use them (supervisor, provider registry, MCP
sessions); nothing here starts anything. A plugin's code keeps running inside the daemon after it
loaded (factories, installers, tool handlers), so every call into it is guarded the same way the load
was: its failure is the plugin's, reported as such, never the daemon's.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from typing import Any

import structlog

from voicemoded.api.errors import FailedPrecondition, InvalidArgument, NotFound, Unavailable, VoicemodeError
from voicemoded.health import Health
from voicemoded.plugins import validate
from voicemoded.plugins.api import (
    GROUP_SERVICES,
    Kind,
    Progress,
    ProviderPlugin,
    ServicePlugin,
    ToolHandler,
    ToolPlugin,
    ToolResult,
    instantiate,
)
from voicemoded.plugins.report import PluginInfo, describe
from voicemoded.supervisor.spec import ServiceSpec

log = structlog.get_logger(__name__)

#: ``(name, host, port, running)`` of a supervised service, as the supervisor lists them.
ServiceStatus = tuple[str, str, int, bool]


@dataclass
class LoadedService:
    entry_point: str
    distribution: str
    plugin: ServicePlugin
    factory: Callable[[], Any] | None = None
    """Called again on each refresh; None when the entry point named the declaration itself."""
    refresh_error: str = ""

    @property
    def name(self) -> str:
        return self.plugin.spec.name

    def refresh(self) -> ServiceSpec:
        """The current spec: the factory's fresh one, or the last good one when the factory fails."""
        if self.factory is None:
            return self.plugin.spec
        try:
            fresh = self._rebuild(self.factory)
        except (Exception, SystemExit) as exc:
            self.refresh_error = describe(exc)
            log.warning("plugin.refresh_failed", plugin=self.entry_point, error=self.refresh_error)
            return self.plugin.spec
        self.plugin, self.refresh_error = fresh, ""
        return fresh.spec

    def _rebuild(self, factory: Callable[[], Any]) -> ServicePlugin:
        fresh = instantiate(factory, GROUP_SERVICES)
        if not isinstance(fresh, ServicePlugin):  # instantiate checked it; this tells the type checker
            raise TypeError(f"expected a ServicePlugin, got {type(fresh).__name__}")
        problems = validate.service_problems(fresh, ())
        if not problems and fresh.spec.name != self.name:
            problems = [f"the service was renamed from {self.name!r} to {fresh.spec.name!r}"]
        if problems:
            raise ValueError("; ".join(problems))
        return fresh


@dataclass(frozen=True)
class LoadedProvider:
    entry_point: str
    plugin: ProviderPlugin


@dataclass(frozen=True)
class LoadedTool:
    """A plugin's MCP tool: its listing (name, description, schema) and a guarded call."""

    entry_point: str
    distribution: str
    name: str
    description: str
    input_schema: dict[str, Any]
    handler: ToolHandler
    validator: Any = field(repr=False)

    @classmethod
    def of(cls, entry_point: str, distribution: str, plugin: ToolPlugin) -> LoadedTool:
        import jsonschema

        schema = json.loads(json.dumps(plugin.input_schema))  # a private copy the plugin cannot change
        return cls(
            entry_point,
            distribution,
            plugin.name,
            plugin.description,
            schema,
            plugin.handler,
            jsonschema.Draft202012Validator(schema),
        )

    def check_arguments(self, arguments: dict[str, Any]) -> None:
        errors = sorted(self.validator.iter_errors(arguments), key=lambda e: list(e.path))
        if errors:
            where = ".".join(str(p) for p in errors[0].path)
            raise InvalidArgument(
                f"{self.name}: {where + ': ' if where else ''}{errors[0].message}",
                hint=f"fix the {where or 'arguments'} per the {self.name} tool's input schema",
            )

    async def call(self, arguments: dict[str, Any]) -> ToolResult:
        """Check the arguments, run the handler, and make sure what it returned can be sent."""
        self.check_arguments(arguments)
        source = self.distribution or self.entry_point
        try:
            result = await self.handler(dict(arguments))
        except VoicemodeError:
            raise
        except Exception as exc:
            log.warning("plugin.tool_failed", tool=self.name, plugin=self.entry_point, exc_info=True)
            raise VoicemodeError(
                f"tool {self.name} failed: {describe(exc)}",
                hint=f"the tool comes from the plugin {source}: see the daemon log, or ask its authors",
                fields={"tool": self.name, "plugin": self.entry_point},
            ) from exc
        if isinstance(result, str):
            return result
        try:
            if not isinstance(result, dict):
                raise TypeError(f"{type(result).__name__} is not a dict or a str")
            json.dumps(result)
        except (TypeError, ValueError) as exc:
            raise VoicemodeError(
                f"tool {self.name} returned something that is not JSON: {describe(exc)}",
                hint=f"the tool comes from the plugin {source}: ask its authors",
                fields={"tool": self.name, "plugin": self.entry_point},
            ) from exc
        return result


class Plugins:
    """Everything that loaded, plus the report of every entry point (loaded, failed, disabled)."""

    def __init__(
        self,
        *,
        report: Iterable[PluginInfo] = (),
        services: Iterable[LoadedService] = (),
        providers: Iterable[LoadedProvider] = (),
        tools: Iterable[LoadedTool] = (),
    ) -> None:
        self._report = tuple(report)
        self.services = tuple(services)
        self.providers = tuple(providers)
        self.tools = tuple(tools)
        self._tools = {t.name: t for t in self.tools}
        self._services = {s.name: s for s in self.services}

    def report(self) -> list[PluginInfo]:
        """Every entry point in load order; a service whose last refresh failed carries that error."""
        refresh = {s.entry_point: s.refresh_error for s in self.services if s.refresh_error}
        return [
            replace(info, error=refresh[info.name])
            if info.state == "loaded" and info.group == GROUP_SERVICES and info.name in refresh
            else info
            for info in self._report
        ]

    def health(self) -> Health:
        """For ``status``: degraded while an entry point failed, so a broken plugin is not missed."""
        report = self.report()
        loaded = [i.name for i in report if i.state == "loaded"]
        failed = [i.name for i in report if i.state == "failed"]
        if failed:
            return Health(
                "plugins", "degraded", f"failed: {', '.join(failed)}; loaded: {', '.join(loaded) or 'none'}"
            )
        if not loaded:
            return Health("plugins", "disabled", "no plugin loaded")
        return Health("plugins", "ok", f"loaded: {', '.join(loaded)}")

    # --- services ----------------------------------------------------------------------------------
    def service_specs(self) -> list[ServiceSpec]:
        """The plugins' service specs, rebuilt now (add them to the built-in ones on every refresh)."""
        return [service.refresh() for service in self.services]

    def service_names(self) -> list[str]:
        return [service.name for service in self.services]

    async def install(self, name: str, progress: Progress) -> None:
        """Run a plugin service's installer; rebuild the specs afterwards (``service_specs``)."""
        service = self._services.get(name)
        if service is None:
            raise NotFound(
                f"no plugin provides the service {name!r}", hint="voicemodectl status lists plugins"
            )
        hook = service.plugin.install
        source = service.distribution or service.entry_point
        if hook is None:
            raise FailedPrecondition(
                f"{name}: the plugin {source} has no installer",
                hint=f"set {name} up as the plugin's documentation says",
                fields={"service": name},
            )
        try:
            await hook(progress)
        except VoicemodeError:
            raise
        except Exception as exc:
            log.warning("plugin.install_failed", service=name, plugin=service.entry_point, exc_info=True)
            raise Unavailable(
                f"installing {name} failed: {describe(exc)}",
                hint=f"the installer comes from the plugin {source}: see the daemon log, or ask its authors",
                fields={"service": name},
            ) from exc

    # --- providers ---------------------------------------------------------------------------------
    def speech_endpoints(self, statuses: Iterable[ServiceStatus] = ()) -> dict[Kind, dict[str, str]]:
        """``{"stt": {name: url}, "tts": {...}}`` to merge into the registry's local endpoints: every
        plugin provider's, and each running plugin service of a speech kind."""
        out: dict[Kind, dict[str, str]] = {"stt": {}, "tts": {}}
        for provider in self.providers:
            for endpoint in provider.plugin.endpoints:
                out[endpoint.kind][provider.plugin.name] = endpoint.base_url
        for name, host, port, running in statuses:
            service = self._services.get(name)
            if service is not None and service.plugin.kind is not None and running and port:
                out[service.plugin.kind][name] = f"http://{host}:{port}/v1"
        return out

    def endpoint_keys(self) -> dict[tuple[Kind, str], str]:
        """The API key of each provider endpoint that has one, by ``(kind, provider name)``."""
        return {
            (endpoint.kind, provider.plugin.name): endpoint.api_key
            for provider in self.providers
            for endpoint in provider.plugin.endpoints
            if endpoint.api_key
        }

    # --- tools -------------------------------------------------------------------------------------
    def tool(self, name: str) -> LoadedTool | None:
        return self._tools.get(name)

    async def call_tool(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        tool = self._tools.get(name)
        if tool is None:
            raise NotFound(f"no plugin provides the tool {name!r}", hint="tools/list names every tool")
        return await tool.call(arguments)

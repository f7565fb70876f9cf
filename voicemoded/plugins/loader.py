"""Finding, loading and checking installed plugins, once, when the daemon starts.

Every entry point of the three groups is looked at; the ones ``VOICEMODE_PLUGINS`` selects are imported
and checked. Nothing a plugin does here can stop the daemon: an import that raises, a wrong type, a bad
schema or a name another part already uses is reported (entry point, distribution, version, error) and
that entry point is skipped; the rest load. Entry points load in a fixed order (group, then name), so
which of two clashing plugins wins does not depend on the order packages were installed in.
"""

from __future__ import annotations

import importlib.metadata
import threading
from collections.abc import Callable, Container, Iterable
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import structlog

from voicemoded.plugins import validate
from voicemoded.plugins.api import (
    GROUPS,
    Declaration,
    ProviderPlugin,
    ServicePlugin,
    ToolPlugin,
    instantiate,
)
from voicemoded.plugins.loaded import LoadedProvider, LoadedService, LoadedTool, Plugins
from voicemoded.plugins.report import PluginInfo, describe
from voicemoded.plugins.selection import ALL, allows, unknown

if TYPE_CHECKING:
    from voicemoded.events import EventBus

log = structlog.get_logger(__name__)

Discover = Callable[[str], Iterable[importlib.metadata.EntryPoint]]

IMPORT_TIMEOUT_S = 5.0
"""How long one plugin may take to import and declare itself before it is reported and skipped."""


class ImportTooSlow(Exception):
    """A plugin's import (or factory) did not finish in time; it runs on in a thread nobody waits for."""


def within(seconds: float, work: Callable[[], Any]) -> Any:
    """``work()``'s result, or :class:`ImportTooSlow` when it takes longer than ``seconds``.

    A plugin's import runs its code, and code can block (a network call, a lock, ``input()``); the daemon
    must start anyway. The work runs in a daemon thread: left behind if it never returns, it does not
    keep the process alive at exit.
    """
    outcome: list[Any] = []
    failure: list[BaseException] = []

    def run() -> None:
        try:
            outcome.append(work())
        except BaseException as exc:  # handed to the caller's thread, which decides
            failure.append(exc)

    thread = threading.Thread(target=run, name="plugin-import", daemon=True)
    thread.start()
    thread.join(seconds)
    if thread.is_alive():
        raise ImportTooSlow(f"did not finish importing within {seconds:g} s (skipped; the daemon went on)")
    if failure:
        raise failure[0]
    return outcome[0]


def installed(group: str) -> list[importlib.metadata.EntryPoint]:
    """The entry points of ``group`` in every distribution on ``sys.path``."""
    return list(importlib.metadata.entry_points(group=group))


def _origin(ep: importlib.metadata.EntryPoint) -> tuple[str, str]:
    dist = getattr(ep, "dist", None)
    if dist is None:
        return "", ""
    try:
        return str(dist.metadata["Name"] or ""), str(dist.version or "")
    except Exception:  # a broken METADATA file names no distribution; the entry point still reports
        return "", ""


class _Loader:
    def __init__(
        self,
        selection: tuple[str, ...],
        builtin_services: Iterable[str],
        builtin_tools: Iterable[str],
        events: EventBus | None,
        import_timeout: float = IMPORT_TIMEOUT_S,
    ) -> None:
        self.selection = selection
        self.import_timeout = import_timeout
        self.events = events
        self.report: list[PluginInfo] = []
        self.services: list[LoadedService] = []
        self.providers: list[LoadedProvider] = []
        self.tools: list[LoadedTool] = []
        self.service_names: set[str] = set(builtin_services)
        self.endpoint_names: set[str] = set(builtin_services)
        """Names of endpoints in the registry: the built-in services', speech services', providers'."""
        self.tool_names: set[str] = set(builtin_tools)

    def load(self, ep: importlib.metadata.EntryPoint, group: str) -> None:
        dist, version = _origin(ep)
        info = PluginInfo(ep.name, group, dist, version, target=ep.value)
        if not allows(self.selection, ep.name):
            self.report.append(replace(info, state="disabled"))
            return
        try:
            obj, declaration = within(self.import_timeout, lambda: self._declared(ep, group))
            provides, problems = self.check(declaration)
        except ImportTooSlow as exc:
            self.failed(info, str(exc))
            return
        except (Exception, SystemExit) as exc:  # a plugin's import runs its code: anything can happen
            self.failed(info, describe(exc))
            return
        if problems:
            self.failed(replace(info, provides=provides), "; ".join(problems))
            return
        info = replace(info, provides=provides)
        self.keep(info, declaration, obj if obj is not declaration else None)
        self.report.append(info)
        log.info("plugin.loaded", plugin=ep.name, group=group, provides=provides, distribution=dist)

    @staticmethod
    def _declared(ep: importlib.metadata.EntryPoint, group: str) -> tuple[object, Declaration]:
        obj = ep.load()
        return obj, instantiate(obj, group)

    def check(self, declaration: Declaration) -> tuple[str, list[str]]:
        if isinstance(declaration, ServicePlugin):
            name = getattr(declaration.spec, "name", "")
            taken: Container[str] = self.service_names
            if declaration.kind is not None:
                taken = self.service_names | self.endpoint_names
            return name, validate.service_problems(declaration, taken)
        if isinstance(declaration, ProviderPlugin):
            return str(declaration.name), validate.provider_problems(declaration, self.endpoint_names)
        return str(declaration.name), validate.tool_problems(declaration, self.tool_names)

    def keep(self, info: PluginInfo, declaration: Declaration, factory: object) -> None:
        make: Callable[[], Any] | None = factory if callable(factory) else None
        if isinstance(declaration, ServicePlugin):
            self.services.append(LoadedService(info.name, info.distribution, declaration, make))
            self.service_names.add(info.provides)
            if declaration.kind is not None:
                self.endpoint_names.add(info.provides)
        elif isinstance(declaration, ProviderPlugin):
            self.providers.append(LoadedProvider(info.name, declaration))
            self.endpoint_names.add(info.provides)
        elif isinstance(declaration, ToolPlugin):
            self.tools.append(LoadedTool.of(info.name, info.distribution, declaration))
            self.tool_names.add(info.provides)

    def failed(self, info: PluginInfo, error: str) -> None:
        info = replace(info, state="failed", error=error)
        self.report.append(info)
        where = f"{info.distribution} {info.version}".strip() or info.target
        log.warning("plugin.failed", plugin=info.name, group=info.group, distribution=where, error=error)
        if self.events is not None:
            self.events.publish(
                "plugin.failed", "plugins", f"plugin {info.name} ({where}) skipped: {error}",
                level="warning", plugin=info.name, group=info.group, distribution=info.distribution,
                version=info.version, error=error,
            )  # fmt: skip


def load_plugins(
    selection: tuple[str, ...] = (ALL,),
    *,
    builtin_services: Iterable[str],
    builtin_tools: Iterable[str],
    events: EventBus | None = None,
    discover: Discover = installed,
    import_timeout: float = IMPORT_TIMEOUT_S,
) -> Plugins:
    """Load what ``selection`` (the ``VOICEMODE_PLUGINS`` value) allows; never raises.

    ``builtin_services`` and ``builtin_tools`` are the names a plugin may not take; ``discover`` lists a
    group's entry points (the installed distributions' by default); a plugin whose import takes longer
    than ``import_timeout`` seconds is reported and skipped.
    """
    loader = _Loader(selection, builtin_services, builtin_tools, events, import_timeout)
    found: set[str] = set()
    for group in GROUPS:
        try:
            entry_points = sorted(discover(group), key=lambda ep: (ep.name, ep.value))
        except Exception as exc:  # unreadable package metadata on sys.path
            loader.failed(PluginInfo("*", group), f"cannot list entry points: {describe(exc)}")
            continue
        for ep in entry_points:
            found.add(ep.name)
            loader.load(ep, group)
    for name in unknown(selection, found):
        loader.failed(PluginInfo(name, ""), "no installed package has an entry point of this name")
    return Plugins(
        report=tuple(loader.report),
        services=tuple(loader.services),
        providers=tuple(loader.providers),
        tools=tuple(loader.tools),
    )

"""What an installed package hands voicemode through an entry point: small, frozen declarations.

A plugin imports everything it needs from here (the service spec types included). An entry point names
one of these objects, or a callable that takes no arguments and returns one. A callable is called again
each time the daemon rebuilds its service specs (after an install, a model choice or a settings
change), so a service can say it is installed once its installer has run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from voicemoded.supervisor.spec import HttpProbe, NotInstalled, RestartPolicy, ServiceSpec, TcpProbe

__all__ = [
    "GROUPS",
    "GROUP_PROVIDERS",
    "GROUP_SERVICES",
    "GROUP_TOOLS",
    "HttpProbe",
    "NotInstalled",
    "Progress",
    "ProviderEndpoint",
    "ProviderPlugin",
    "RestartPolicy",
    "ServicePlugin",
    "ServiceSpec",
    "TcpProbe",
    "ToolPlugin",
]

GROUP_SERVICES = "voicemode.services"
GROUP_PROVIDERS = "voicemode.providers"
GROUP_TOOLS = "voicemode.tools"
GROUPS = (GROUP_SERVICES, GROUP_PROVIDERS, GROUP_TOOLS)

Kind = Literal["stt", "tts"]
KINDS: tuple[Kind, Kind] = ("stt", "tts")

Progress = Callable[[str], Awaitable[None] | None]
"""Where an installer reports what it is doing, one line at a time (shown live by ``service install``)."""
InstallHook = Callable[[Progress], Awaitable[None]]
ToolResult = dict[str, Any] | str
ToolHandler = Callable[[dict[str, Any]], Awaitable[ToolResult]]


@dataclass(frozen=True, slots=True)
class ServicePlugin:
    """A supervised service (group ``voicemode.services``): started, probed, restarted like a built-in."""

    spec: ServiceSpec
    """How to run it. Its ``probe`` is its health check: the service is RUNNING only once it passes."""
    kind: Kind | None = None
    """``stt`` or ``tts`` when the service is an OpenAI-compatible speech server: while it runs, the
    provider registry tries it like a built-in local server, under the service's name."""
    install: InstallHook | None = None
    """Sets the service up for ``voicemodectl service install NAME``; the spec is rebuilt afterwards."""
    description: str = ""


@dataclass(frozen=True, slots=True)
class ProviderEndpoint:
    """One OpenAI-compatible endpoint of a provider."""

    kind: Kind
    base_url: str
    """``http://host:port/v1``; a bare ``http://host:port`` gets ``/v1``, as for user URLs."""
    api_key: str = field(default="", repr=False)
    """Sent as the bearer token to this endpoint only; never logged."""


@dataclass(frozen=True, slots=True)
class ProviderPlugin:
    """STT/TTS endpoints (group ``voicemode.providers``), tried after the user's URLs, before the cloud."""

    name: str
    """The provider's name: how ``tts_provider=NAME`` selects it and how ``provider list`` shows it."""
    endpoints: tuple[ProviderEndpoint, ...]
    description: str = ""


@dataclass(frozen=True, slots=True)
class ToolPlugin:
    """An MCP tool (group ``voicemode.tools``), listed beside the built-in ones."""

    name: str
    """Letters, digits, ``_``, ``-`` or ``.``, at most 64 characters (what MCP clients accept)."""
    description: str
    """One line for the assistant: every byte of it is in the assistant's context."""
    input_schema: Mapping[str, Any]
    """JSON Schema of the arguments, an ``object`` schema; calls are checked against it first."""
    handler: ToolHandler
    """``async (arguments) -> dict | str``. A ``VoicemodeError`` reaches the assistant as it is (message
    and hint); any other exception is reported as the plugin's failure."""


Declaration = ServicePlugin | ProviderPlugin | ToolPlugin

#: The declaration each group's entry points must give.
EXPECTED: dict[str, type[ServicePlugin] | type[ProviderPlugin] | type[ToolPlugin]] = {
    GROUP_SERVICES: ServicePlugin,
    GROUP_PROVIDERS: ProviderPlugin,
    GROUP_TOOLS: ToolPlugin,
}


def instantiate(obj: object, group: str) -> Declaration:
    """The declaration an entry point gave: the object itself, or what its factory returns."""
    expected = EXPECTED[group]
    if not isinstance(obj, expected) and callable(obj) and not isinstance(obj, type):
        obj = obj()
    if not isinstance(obj, expected):
        raise TypeError(f"expected a {expected.__name__} (or a factory of one), got {type(obj).__name__}")
    return obj

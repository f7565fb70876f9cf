"""One OpenAI-compatible endpoint: its identity (a value) and its live state (changed by its owners only).

Identity and state are split so a status snapshot for the API is a frozen copy, and so the registry can
keep an endpoint's breaker and health when the supervisor re-announces the same child. The live state is
frozen to everybody but its two owners, the registry (membership, discovery) and the health tracker
(health, breaker, load), which change it through :func:`update_state` inside their named methods: every
change of health then passes the one place that logs and publishes it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import Literal, TypedDict, Unpack
from urllib.parse import urlsplit, urlunsplit

from voicemoded.api.loopback import is_loopback_address
from voicemoded.providers.breaker import Breaker, BreakerState

Kind = Literal["stt", "tts"]
KINDS: tuple[Kind, Kind] = ("stt", "tts")


class Source(IntEnum):
    """Where an endpoint came from; the value is its priority (lower is tried first)."""

    USER = 0
    LOCAL = 1
    CLOUD = 2

    @property
    def label(self) -> str:
        return self.name.lower()


class Health(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


def normalize_url(url: str) -> str:
    """Canonical base URL: scheme and host lowercased, no trailing slash, ``/v1`` added to a bare host.

    OpenAI-compatible servers serve the API under ``/v1``; users often give just ``http://host:port``.
    """
    raw = url.strip()
    parts = urlsplit(raw)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"not an http(s) URL: {url!r}")
    path = parts.path.rstrip("/") or "/v1"
    return urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


def is_loopback(url: str) -> bool:
    return is_loopback_address(urlsplit(url).hostname or "")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """Identity of an endpoint; equal endpoints share state across registry updates."""

    url: str
    """Normalized base URL (``http://127.0.0.1:8881/v1``)."""
    kind: Kind
    source: Source
    name: str
    """Service name for local children (``piper``), ``openai`` for the cloud, ``host:port`` otherwise."""
    order: int = 0
    """Position in the user's URL list: user URLs are an ordered preference, not a pool."""

    @property
    def priority(self) -> int:
        return int(self.source)

    @property
    def root(self) -> str:
        """Server root, where ``/health`` lives (the base URL without its ``/v1``)."""
        return self.url[: -len("/v1")] if self.url.endswith("/v1") else self.url

    @property
    def local(self) -> bool:
        return is_loopback(self.url)

    def __str__(self) -> str:
        return f"{self.name} ({self.url})"


class Engine(StrEnum):
    """What serves an endpoint, as far as discovery can tell; ``provider=kokoro`` selects by it."""

    UNKNOWN = "unknown"
    OPENAI = "openai"
    KOKORO = "kokoro"
    PIPER = "piper"
    WHISPER = "whisper"


@dataclass(frozen=True, slots=True, eq=False)
class EndpointState:
    """Live state of one endpoint, one object per endpoint for as long as the registry keeps it.

    Read by anyone; written only by the registry and the health tracker (see :func:`update_state`).
    Equality is identity: two states are the same endpoint's only if they are the same object.
    """

    endpoint: Endpoint
    breaker: Breaker
    health: Health = Health.UNKNOWN
    last_error: str = ""
    last_error_at: float = 0.0
    last_timed_out: bool = False
    """The last failure cost a whole timeout (a hung endpoint, not a refused or broken one)."""
    latency: float | None = None
    """Seconds of the last successful probe or request start (headers received)."""
    models: tuple[str, ...] | None = None
    """Discovered model ids; None when not (yet) known."""
    voices: tuple[str, ...] | None = None
    """Discovered voices; None when the endpoint cannot list them."""
    voice_genders: Mapping[str, str] = field(default_factory=dict)
    """``f``/``m`` per voice where the endpoint published it (used to map voices by gender)."""
    voice_languages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """Languages per voice where the endpoint published them (``en-us``; to pick a voice by language)."""
    engine: Engine = Engine.UNKNOWN
    discovered_at: float | None = None
    """When discovery last started (monotonic); None: never, or asked to rediscover."""
    in_flight: int = 0
    """Requests being served here now."""
    served: int = 0
    """Requests routed here; breaks round-robin ties among equal endpoints."""

    def discovery_fresh(self, ttl: float, now: float | None = None) -> bool:
        now = time.monotonic() if now is None else now
        return self.discovered_at is not None and now - self.discovered_at < ttl

    def snapshot(self) -> EndpointStatus:
        ep = self.endpoint
        return EndpointStatus(
            url=ep.url,
            kind=ep.kind,
            source=ep.source.label,
            priority=ep.priority,
            name=ep.name,
            engine=self.engine.value,
            health=self.health.value,
            breaker=self.breaker.state.value,
            last_error=self.last_error,
            latency_ms=None if self.latency is None else round(self.latency * 1000, 1),
            models=self.models or (),
            voices=self.voices or (),
            in_flight=self.in_flight,
            voice_genders=dict(self.voice_genders),
            voice_languages=dict(self.voice_languages),
        )


class StateChange(TypedDict, total=False):
    """The fields of an :class:`EndpointState` its owners change (its endpoint and breaker object stay)."""

    health: Health
    last_error: str
    last_error_at: float
    last_timed_out: bool
    latency: float | None
    models: tuple[str, ...] | None
    voices: tuple[str, ...] | None
    voice_genders: Mapping[str, str]
    voice_languages: Mapping[str, tuple[str, ...]]
    engine: Engine
    discovered_at: float | None
    in_flight: int
    served: int


def update_state(state: EndpointState, **change: Unpack[StateChange]) -> None:
    """Change a live state in place: for the registry and the health tracker only (a test holds this)."""
    for name, value in change.items():
        object.__setattr__(state, name, value)


@dataclass(frozen=True, slots=True)
class EndpointStatus:
    """Frozen view of an endpoint for the API (``provider list`` / ``provider probe``)."""

    url: str
    kind: Kind
    source: str
    priority: int
    name: str
    engine: str
    health: str
    breaker: str
    last_error: str
    latency_ms: float | None
    models: tuple[str, ...] = field(default=())
    voices: tuple[str, ...] = field(default=())
    in_flight: int = 0
    voice_genders: Mapping[str, str] = field(default_factory=dict)
    """``f``/``m`` per voice, as the endpoint published it."""
    voice_languages: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    """The languages of each voice, as the endpoint published them."""

    @property
    def available(self) -> bool:
        return self.breaker != BreakerState.OPEN.value and self.health != Health.UNHEALTHY.value

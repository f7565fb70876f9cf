"""The providers layer's own settings, so it can be built from config, a test or a benchmark alike.

The daemon's wiring (voicemoded/wiring.py) maps ``VOICEMODE_*`` keys onto this dataclass; nothing here reads the
environment. Timeouts are split by what they bound: a connect on loopback either succeeds or is refused at
once, so local endpoints get a short connect timeout and a hung child costs little; the request deadline
bounds the wait for an answer (STT) or for the first audio (TTS); the stream timeout bounds a stall between
two audio chunks.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from voicemoded.providers.breaker import BreakerPolicy
from voicemoded.providers.endpoint import Kind

#: The OpenAI cloud endpoint used when an API key is configured.
OPENAI_BASE_URL = "https://api.openai.com/v1"


@dataclass(frozen=True, slots=True)
class ProviderSettings:
    """Everything the Speech facade needs; one docstring per field says where it comes from."""

    stt_base_urls: tuple[str, ...] = ()
    """User STT endpoints in order (``VOICEMODE_STT_BASE_URLS``); tried before local children and cloud."""
    tts_base_urls: tuple[str, ...] = ()
    """User TTS endpoints in order (``VOICEMODE_TTS_BASE_URLS``)."""
    openai_api_key: str = field(default="", repr=False)
    """``OPENAI_API_KEY``: adds the cloud endpoint; sent only to the OpenAI host, never logged."""
    engine_token: str = field(default="", repr=False)
    """The per-install token of the built-in engines, sent to them only (they require it when bound
    beyond loopback); never logged."""
    engines: frozenset[str] = frozenset()
    """Names of the local endpoints that are the daemon's own engines: the only ones given
    ``engine_token``. Other local endpoints (a plugin's servers) may be anywhere."""
    endpoint_keys: Mapping[tuple[Kind, str], str] = field(default_factory=dict, repr=False)
    """API keys of other local endpoints (plugins' providers) by ``(kind, name)``; never logged."""
    openai_base_url: str = OPENAI_BASE_URL
    """Where the cloud endpoint lives (a proxy or a compatible cloud may replace it)."""
    voices: tuple[str, ...] = ()
    """Preferred TTS voices in order (``VOICEMODE_VOICES``); each endpoint gets the first it offers (or
    the closest mapping, reported). Empty: each endpoint's own default voice."""
    tts_models: tuple[str, ...] = ()
    """Preferred TTS models in order (``VOICEMODE_TTS_MODELS``); empty: each endpoint's default."""
    stt_model: str = ""
    """Preferred STT model (``VOICEMODE_STT_MODEL``); empty: each endpoint's default."""
    local_connect_timeout: float = 0.5
    """Connect timeout for loopback endpoints: a live child accepts at once, a dead one refuses at once."""
    remote_connect_timeout: float = 5.0
    """Connect timeout for user URLs on other hosts and the cloud."""
    request_timeout: float = 30.0
    """Deadline for a transcription, and for the first audio of a synthesis."""
    stream_timeout: float = 10.0
    """Longest stall allowed between two audio chunks of a synthesis."""
    probe_timeout: float = 2.0
    """Deadline of one health probe or discovery call."""
    probe_interval: float = 30.0
    """Seconds between active probes of every endpoint."""
    discovery_ttl: float = 300.0
    """How long discovered models and voices stay fresh."""
    breaker: BreakerPolicy = field(default_factory=BreakerPolicy)
    """Circuit breaker policy shared by all endpoints."""
    max_connections: int = 20
    """Size of the pooled HTTP connection pool shared by every endpoint."""

    def __post_init__(self) -> None:
        for name in (
            "local_connect_timeout",
            "remote_connect_timeout",
            "request_timeout",
            "stream_timeout",
            "probe_timeout",
            "probe_interval",
            "discovery_ttl",
        ):
            value = getattr(self, name)
            if value <= 0:
                raise ValueError(f"{name} must be positive, got {value}")

"""Speech providers: the endpoint registry, health, circuit breakers, failover and the OpenAI client.

The daemon builds one :class:`Speech` from :class:`ProviderSettings` and calls ``synthesize`` /
``transcribe``; the supervisor reports running children through ``set_local_endpoints``.
"""

from voicemoded.providers.breaker import BreakerPolicy, BreakerState
from voicemoded.providers.endpoint import EndpointStatus, Health, Kind, Source
from voicemoded.providers.failover import (
    TTS_FORMAT,
    Speech,
    SpeechInfo,
    SpeechInterrupted,
    Transcription,
)
from voicemoded.providers.settings import ProviderSettings

__all__ = [
    "TTS_FORMAT",
    "BreakerPolicy",
    "BreakerState",
    "EndpointStatus",
    "Health",
    "Kind",
    "ProviderSettings",
    "Source",
    "Speech",
    "SpeechInfo",
    "SpeechInterrupted",
    "Transcription",
]

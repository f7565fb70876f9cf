"""The STT/TTS endpoints: list and probe them, synthesize, transcribe, and follow settings changes.

This service owns the daemon's current :class:`Speech` registry. A change of the endpoint settings
builds a new one; turns already using the old one finish with it (it is closed a minute later), and the
converse loop reads :meth:`Providers.current` at the start of each turn, so nothing is swapped under it.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from typing import cast

import structlog

from voicemoded import wiring
from voicemoded.api.errors import InvalidArgument
from voicemoded.api.paths import Paths
from voicemoded.app.sources import AudioSource, encoded_seconds, load
from voicemoded.audio.format import AudioChunk, AudioFormat
from voicemoded.config import Caller, ConfigManager, Settings
from voicemoded.conversation.params import check_synthesis, default_speed, default_voice
from voicemoded.events import EventBus
from voicemoded.health import Health
from voicemoded.providers import EndpointStatus, Kind, ProviderSettings, Speech, SpeechInfo

log = structlog.get_logger(__name__)

#: How long a replaced registry stays open for the turns still using it.
RETIRE_AFTER = 60.0
#: The only stream format the daemon produces; a caller encodes on its side.
STREAM_FORMATS = ("", "pcm")


def parse_kind(kind: str) -> Kind | None:
    """``stt``, ``tts``, or "" for both; anything else is the caller's mistake, named."""
    if kind not in ("", "stt", "tts"):
        raise InvalidArgument(
            f"unknown kind {kind!r}", hint="use stt, tts or leave it empty", fields={"field": "kind"}
        )
    return cast(Kind, kind) if kind else None


@dataclass(frozen=True, slots=True)
class Voices:
    preferred: tuple[str, ...]
    """The caller's VOICEMODE_VOICES, in order."""
    endpoints: tuple[EndpointStatus, ...]
    """Every TTS endpoint, with the voices it offers."""


@dataclass(frozen=True, slots=True)
class TranscriptionResult:
    text: str
    provider_url: str
    model: str
    audio_seconds: float
    elapsed_seconds: float
    path: str
    """The file transcribed ("" for bytes sent with the request)."""


class Providers:
    def __init__(
        self,
        config: ConfigManager,
        paths: Paths,
        events: EventBus,
        endpoint_keys: Mapping[tuple[Kind, str], str] | None = None,
    ) -> None:
        self._config = config
        self._paths = paths
        self._events = events
        self._keys = dict(endpoint_keys or {})
        """Plugin providers' API keys by ``(kind, name)``: fixed at start, as the plugins are."""
        self._speech = self._build(config.settings)
        self._retired: set[asyncio.Task[None]] = set()

    def _build(self, settings: Settings) -> Speech:
        return Speech(self._provider_settings(settings), events=self._events)

    def _provider_settings(self, settings: Settings) -> ProviderSettings:
        return wiring.provider_settings(settings, self._paths, self._keys)

    def current(self) -> Speech:
        """The registry a new request uses (replaced when the endpoint settings change)."""
        return self._speech

    async def start(self) -> None:
        await self._speech.start()

    async def aclose(self) -> None:
        retired = list(self._retired)
        for task in retired:
            task.cancel()  # each closes its registry on the way out
        await asyncio.gather(*retired, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self._speech.aclose()

    def set_local_endpoints(self, local: Mapping[str, Mapping[str, str]]) -> None:
        """The supervisor's running children per kind, ``{"tts": {"piper": "http://…/v1"}}``."""
        for kind, endpoints in local.items():
            self._speech.set_local_endpoints(cast(Kind, kind), endpoints)

    async def reconfigure(self, old: Settings, new: Settings, local: Mapping[str, Mapping[str, str]]) -> bool:
        """A new registry when the endpoint settings changed (True), told at once which local servers run."""
        if self._provider_settings(old) == self._provider_settings(new):
            return False
        previous, self._speech = self._speech, self._build(new)
        await self._speech.start()
        self.set_local_endpoints(local)
        log.info("providers.reconfigured")
        self._events.publish("providers.reconfigured", "providers", "endpoint settings changed")
        self._retire(previous)
        return True

    def _retire(self, speech: Speech) -> None:
        async def close_later() -> None:
            try:
                await asyncio.sleep(RETIRE_AFTER)
            finally:
                with contextlib.suppress(Exception):
                    await speech.aclose()

        task = asyncio.create_task(close_later(), name="providers.retire")
        self._retired.add(task)
        task.add_done_callback(self._retired.discard)

    # -- requests -------------------------------------------------------------------------------------

    def list(self, kind: str = "") -> tuple[EndpointStatus, ...]:
        return self._speech.list(parse_kind(kind))

    async def probe(self, kind: str = "") -> tuple[EndpointStatus, ...]:
        return await self._speech.probe(parse_kind(kind))

    def voices(self, caller: Caller) -> Voices:
        return Voices(self._config.resolve(caller).settings.voices, self._speech.list("tts"))

    def synthesize(
        self,
        text: str,
        caller: Caller,
        *,
        voice: str = "",
        model: str = "",
        provider: str = "",
        speed: float | None = None,
        instructions: str = "",
        stream_format: str = "",
    ) -> AsyncGenerator[SpeechInfo | AudioChunk, None]:
        """A :class:`SpeechInfo`, then PCM chunks; the caller's default voice and speed fill the gaps.

        Checked before any endpoint is asked. Consume it inside ``contextlib.aclosing``.
        """
        if stream_format not in STREAM_FORMATS:
            raise InvalidArgument(
                f"format {stream_format!r} is not streamed by the daemon",
                hint="ask for pcm (24 kHz mono s16le) and encode on your side, or use --out file.wav",
            )
        check_synthesis(
            text, voice=voice, model=model, provider=provider, instructions=instructions, speed=speed
        )
        settings = self._config.resolve(caller).settings
        return self._speech.synthesize(
            text,
            voice=(voice or default_voice(settings)) or None,
            model=model or None,
            provider=provider or None,
            speed=speed if speed is not None else default_speed(settings),
            instructions=instructions or None,
            language=settings.language or None,
        )

    async def transcribe(
        self,
        source: AudioSource,
        caller: Caller,
        *,
        pcm: AudioFormat | None = None,
        language: str = "",
        model: str = "",
        provider: str = "",
        prompt: str = "",
    ) -> TranscriptionResult:
        """``pcm`` given: the audio is raw PCM in that layout; else an encoded file (WAV, MP3, …)."""
        settings = self._config.resolve(caller).settings
        path, audio = await asyncio.to_thread(load, source, caller.cwd, self._paths.audio)
        upload: bytes | AudioChunk = audio if pcm is None else AudioChunk(audio, pcm)
        started = time.monotonic()
        result = await self._speech.transcribe(
            upload,
            language=language or settings.language or None,
            model=model or settings.stt_model or None,
            provider=provider or None,
            prompt=prompt or None,
        )
        return TranscriptionResult(
            text=result.text,
            provider_url=result.endpoint.url,
            model=result.model,
            audio_seconds=upload.seconds if isinstance(upload, AudioChunk) else encoded_seconds(audio),
            elapsed_seconds=time.monotonic() - started,
            path=path,
        )

    def health(self) -> Health:
        endpoints = self._speech.list()
        missing = [
            k for k in ("stt", "tts") if not any(e.kind == k and e.health != "unhealthy" for e in endpoints)
        ]
        if missing:
            return Health("providers", "degraded", f"no usable {' or '.join(missing)} endpoint yet")
        return Health("providers", "ok", f"{len(endpoints)} endpoints")

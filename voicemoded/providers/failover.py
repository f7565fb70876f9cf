"""The Speech facade: synthesize and transcribe with failover across endpoints.

A request walks its plan in order (:class:`~voicemoded.providers.attempts.Attempts`, the same walk for
both kinds) and moves on when an endpoint fails, but only until the first audio has reached the caller:
after that the person has heard half a sentence, and starting over elsewhere would repeat it, so a broken
stream is raised as :class:`SpeechInterrupted`. Breakers make a dead or hung endpoint cost its timeout
once; afterwards requests skip it for free until a trial says it is back.
"""

from __future__ import annotations

import io
import time
import wave
from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass
from types import TracebackType

import structlog

from voicemoded.api.errors import InvalidArgument, Unavailable, VoicemodeError
from voicemoded.audio.format import AudioChunk, AudioFormat
from voicemoded.engines.text import script_language
from voicemoded.events import EventBus
from voicemoded.providers.attempts import Attempts
from voicemoded.providers.client import AttemptError, EndpointClient
from voicemoded.providers.endpoint import EndpointState, EndpointStatus, Kind
from voicemoded.providers.health import HealthTracker
from voicemoded.providers.plan import Candidate, Plan, check_language, check_speed, plan_stt, plan_tts
from voicemoded.providers.registry import Registry
from voicemoded.providers.settings import ProviderSettings

log = structlog.get_logger(__name__)

#: OpenAI's ``pcm`` response format: 24 kHz mono signed 16-bit little-endian.
TTS_FORMAT = AudioFormat(rate=24_000, width=2, channels=1)

_MAGIC = (
    (b"RIFF", "audio.wav"),
    (b"OggS", "audio.ogg"),
    (b"fLaC", "audio.flac"),
    (b"ID3", "audio.mp3"),
    (b"\xff\xfb", "audio.mp3"),
    (b"\xff\xf3", "audio.mp3"),
    (b"\x1a\x45\xdf\xa3", "audio.webm"),
)


class SpeechInterrupted(Unavailable):
    """The TTS stream broke after audio had been delivered; failover would have repeated speech."""


@dataclass(frozen=True, slots=True)
class SpeechInfo:
    """First item of a synthesis: who speaks, with which voice and model, and what was substituted."""

    endpoint: EndpointStatus
    voice: str
    voice_requested: str
    model: str
    format: AudioFormat
    notes: tuple[str, ...] = ()
    """Human-readable mappings (``af_sky is not offered here; closest female voice is nova``)."""
    failed_over: tuple[tuple[str, str], ...] = ()
    """(endpoint URL, reason) for each endpoint passed over before this one."""
    warnings: tuple[str, ...] = ()
    """What the caller should know about this speech: another voice than usual, and why."""


@dataclass(frozen=True, slots=True)
class Transcription:
    text: str
    endpoint: EndpointStatus
    model: str
    elapsed: float
    """Seconds from the request to the transcript, failover included."""
    notes: tuple[str, ...] = ()
    failed_over: tuple[tuple[str, str], ...] = ()
    avg_logprob: float | None = None
    """Whisper's confidence, when the endpoint reports it (see :class:`~voicemoded.providers.client.Heard`)."""
    no_speech_prob: float | None = None
    language: str = ""
    """The language of the speech: the one asked for, else the one the endpoint detected ("" unknown)."""


def pcm_to_wav(chunk: AudioChunk) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(chunk.format.channels)
        out.setsampwidth(chunk.format.width)
        out.setframerate(chunk.format.rate)
        out.writeframes(chunk.audio)
    return buffer.getvalue()


def audio_upload(audio: bytes | AudioChunk) -> tuple[bytes, str]:
    """The bytes and file name to upload; the name's extension tells the server the container."""
    if isinstance(audio, AudioChunk):
        if not audio.audio:
            raise InvalidArgument("no audio to transcribe", hint="pass a non-empty recording")
        return pcm_to_wav(audio), "audio.wav"
    if not audio:
        raise InvalidArgument("no audio to transcribe", hint="pass a non-empty recording")
    for magic, name in _MAGIC:
        if audio.startswith(magic):
            return audio, name
    raise InvalidArgument(
        "audio bytes are not WAV, MP3, OGG, FLAC or WebM",
        hint="pass raw PCM as an AudioChunk so its rate and width are known",
    )


class Speech:
    """Text to speech and speech to text over every known endpoint; the daemon holds one."""

    def __init__(self, settings: ProviderSettings, events: EventBus | None = None) -> None:
        self.settings = settings
        self.client = EndpointClient(settings)
        self.registry = Registry(settings, self.client, on_error=self._discovery_failed)
        self.health = HealthTracker(settings, self.registry, self.client, events)

    def _discovery_failed(self, state: EndpointState, error: AttemptError) -> None:
        self.health.mark_failure(state, error)

    async def start(self, *, probe: bool = True) -> None:
        """Begin active probing (first round at once, in the background)."""
        if probe:
            self.health.start()

    async def aclose(self) -> None:
        await self.health.aclose()
        await self.registry.aclose()
        await self.client.aclose()

    async def __aenter__(self) -> Speech:
        await self.start()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    def set_local_endpoints(self, kind: Kind, endpoints: Mapping[str, str]) -> None:
        """The supervisor's running children of one kind, ``{"piper": "http://127.0.0.1:8881/v1"}``."""
        self.registry.set_local_endpoints(kind, endpoints)

    def list(self, kind: Kind | None = None) -> tuple[EndpointStatus, ...]:
        states = self.registry.all_states() if kind is None else self.registry.states(kind)
        return tuple(state.snapshot() for state in states)

    async def probe(
        self, kind: Kind | None = None, provider: str | None = None
    ) -> tuple[EndpointStatus, ...]:
        """Probe now (and rediscover models and voices) and return the fresh status."""
        kinds: tuple[Kind, ...] = ("stt", "tts") if kind is None else (kind,)
        states = (
            [s for k in kinds for s in self.registry.select(k, provider)]
            if provider
            else [s for k in kinds for s in self.registry.states(k)]
        )
        self.registry.rediscover(states)
        await self.health.probe_all(states)
        return tuple(state.snapshot() for state in states)

    async def synthesize(
        self,
        text: str,
        voice: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        speed: float | None = None,
        instructions: str | None = None,
        language: str | None = None,
    ) -> AsyncGenerator[SpeechInfo | AudioChunk, None]:
        """Yield a :class:`SpeechInfo`, then 24 kHz mono s16le :class:`AudioChunk` s as they arrive.

        ``language`` (ISO 639) with no ``voice`` picks a voice of that language where one exists; the
        info's warnings say so when none does.

        Consume it inside ``contextlib.aclosing`` (or ``aclose()`` it) when stopping early, so the
        connection is released at once rather than when the generator is collected.
        """
        if not text or not text.strip():
            raise InvalidArgument("no text to speak", hint="pass the text to synthesize")
        check_speed(speed)
        check_language(language)
        # A text in kana or hangul says its language more surely than the caller's setting does.
        language = script_language(text) or language
        voice = voice.strip() if voice and voice.strip() else None
        model = model.strip() if model and model.strip() else None
        states = self.registry.select("tts", provider)
        await self.registry.ensure_discovered(states)
        plan = plan_tts(
            states,
            voice=voice,
            model=model,
            instructions=instructions,
            preferred_voices=self.settings.voices,
            preferred_models=self.settings.tts_models,
            language=language or None,
        )
        attempts = Attempts("tts", plan, self.health)
        for attempt in attempts:
            cand = attempt.candidate
            assert cand.voice is not None
            stream = self.client.stream_speech(
                attempt.endpoint,
                text=text,
                voice=cand.voice.voice,
                model=cand.model,
                speed=speed,
                instructions=instructions,
                frame_bytes=TTS_FORMAT.frame_bytes,
            )
            try:
                with attempt:
                    async for pcm in stream:
                        now = time.monotonic()
                        if not attempt.succeeded:
                            attempt.succeed()
                            yield self._info(plan, cand, attempts.failed_over)
                        yield AudioChunk(pcm, TTS_FORMAT, now)
                    return
            except AttemptError as err:  # only once audio was delivered: before, the walk moves on
                raise SpeechInterrupted(
                    f"TTS stream from {attempt.endpoint} broke after audio was played: {err.reason}",
                    hint="the sentence was cut short; say it again (the next request avoids this endpoint)",
                    fields={"url": attempt.endpoint.url},
                ) from err
            finally:
                await stream.aclose()
        raise attempts.error()

    async def transcribe(
        self,
        audio: bytes | AudioChunk,
        language: str | None = None,
        model: str | None = None,
        provider: str | None = None,
        prompt: str | None = None,
    ) -> Transcription:
        """Transcribe a recording (WAV/MP3/OGG/FLAC/WebM bytes, or PCM as an :class:`AudioChunk`)."""
        started = time.monotonic()
        check_language(language)
        data, filename = audio_upload(audio)
        plan = await self._stt_plan(model, provider, language)
        attempts = Attempts("stt", plan, self.health)
        for attempt in attempts:
            with attempt:
                heard = await self.client.transcribe(
                    attempt.endpoint,
                    audio=data,
                    filename=filename,
                    model=attempt.candidate.model,
                    language=language,
                    prompt=prompt,
                )
                attempt.succeed()
            if attempt.succeeded:
                return Transcription(
                    text=heard.text.strip(),
                    avg_logprob=heard.avg_logprob,
                    no_speech_prob=heard.no_speech_prob,
                    language=language or heard.language,
                    endpoint=attempt.state.snapshot(),
                    model=attempt.candidate.model,
                    elapsed=time.monotonic() - started,
                    notes=attempt.candidate.notes,
                    failed_over=attempts.failed_over,
                )
        raise attempts.error()

    async def stt_is_local(self, model: str | None = None, provider: str | None = None) -> bool:
        """Whether a transcription asked now would go first to an endpoint on this machine.

        The converse loop transcribes speculatively at pauses only where that costs nothing; a remote
        endpoint may charge per request. Asks nothing of any endpoint beyond discovery, and changes no
        breaker: an endpoint cooling down is passed over, as a real request would pass it over.
        """
        try:
            plan = await self._stt_plan(model, provider)
        except VoicemodeError:
            return False  # the transcription itself will say what is wrong, with the answer kept
        # plan_stt refuses a plan without candidates; when all are cooling down the first is tried.
        ready = [c.state for c in plan.candidates if c.state.breaker.ready()]
        return (ready[0] if ready else plan.candidates[0].state).endpoint.local

    async def _stt_plan(self, model: str | None, provider: str | None, language: str | None = None) -> Plan:
        model = model.strip() if model and model.strip() else None
        states = self.registry.select("stt", provider)
        await self.registry.ensure_discovered(states)
        stt_models = (self.settings.stt_model,) if self.settings.stt_model else ()
        return plan_stt(states, model=model, preferred_models=stt_models, language=language)

    def _info(self, plan: Plan, cand: Candidate, failed_over: tuple[tuple[str, str], ...]) -> SpeechInfo:
        assert cand.voice is not None
        warnings = tuple(w for w in (plan.language_warning, plan.voice_warning(cand)) if w)
        return SpeechInfo(
            endpoint=cand.state.snapshot(),
            voice=cand.voice.voice,
            voice_requested=cand.voice.requested,
            model=cand.model,
            format=TTS_FORMAT,
            notes=cand.notes,
            failed_over=failed_over,
            warnings=warnings,
        )

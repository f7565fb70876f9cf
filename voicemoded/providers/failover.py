"""The Speech facade: synthesize and transcribe with failover across endpoints.

A request walks its plan in order and moves on when an endpoint fails, but only until the first audio has
reached the caller: after that the person has heard half a sentence, and starting over elsewhere would
repeat it, so a broken stream is raised as :class:`SpeechInterrupted`. Breakers make a dead or hung
endpoint cost its timeout once; afterwards requests skip it for free until a trial says it is back.
"""

from __future__ import annotations

import builtins
import io
import time
import wave
from collections.abc import AsyncGenerator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType

import structlog

from voicemoded.api.errors import InvalidArgument, Unavailable, VoicemodeError
from voicemoded.audio.format import AudioChunk, AudioFormat
from voicemoded.events import EventBus
from voicemoded.providers.client import AttemptError, EndpointClient
from voicemoded.providers.endpoint import EndpointState, EndpointStatus, Kind
from voicemoded.providers.health import HealthTracker
from voicemoded.providers.plan import (
    Attempt,
    Candidate,
    Plan,
    all_failed,
    check_language,
    check_speed,
    plan_stt,
    plan_tts,
)
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


def _after(candidates: Sequence[Candidate], cand: Candidate) -> EndpointState | None:
    """The endpoint planned after ``cand`` (where a failover goes next), if any."""
    index = candidates.index(cand)
    return candidates[index + 1].state if index + 1 < len(candidates) else None


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
        for state in states:
            state.discovered_at = None
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
    ) -> AsyncGenerator[SpeechInfo | AudioChunk, None]:
        """Yield a :class:`SpeechInfo`, then 24 kHz mono s16le :class:`AudioChunk` s as they arrive.

        Consume it inside ``contextlib.aclosing`` (or ``aclose()`` it) when stopping early, so the
        connection is released at once rather than when the generator is collected.
        """
        if not text or not text.strip():
            raise InvalidArgument("no text to speak", hint="pass the text to synthesize")
        check_speed(speed)
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
        )
        attempts = [Attempt(s, reason, "skipped") for s, reason in plan.skipped]
        for cand in self._admitted(plan.candidates, attempts):
            state = cand.state
            assert cand.voice is not None
            state.in_flight += 1
            state.served += 1
            started = time.monotonic()
            delivered = False
            stream = self.client.stream_speech(
                state.endpoint,
                text=text,
                voice=cand.voice.voice,
                model=cand.model,
                speed=speed,
                instructions=instructions,
                frame_bytes=TTS_FORMAT.frame_bytes,
            )
            try:
                async for pcm in stream:
                    now = time.monotonic()
                    if not delivered:
                        delivered = True
                        self.health.mark_success(state, now - started)
                        yield self._info(cand, attempts)
                    yield AudioChunk(pcm, TTS_FORMAT, now)
                return
            except AttemptError as err:
                self.health.mark_failure(state, err)
                if delivered:
                    raise SpeechInterrupted(
                        f"TTS stream from {state.endpoint} broke after audio was played: {err.reason}",
                        hint="the sentence was cut short; say it again (the next request avoids this endpoint)",
                        fields={"url": state.endpoint.url},
                    ) from err
                attempts.append(Attempt(state, err.reason, "rejected" if err.rejected else "failed"))
                self.health.failover(state, err.reason, _after(plan.candidates, cand))
            except BaseException:
                if not delivered:
                    self.health.release(state)
                raise
            finally:
                state.in_flight -= 1
                await stream.aclose()
        raise all_failed("tts", attempts)

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
        plan = await self._stt_plan(model, provider)
        attempts = [Attempt(s, reason, "skipped") for s, reason in plan.skipped]
        for cand in self._admitted(plan.candidates, attempts):
            state = cand.state
            state.in_flight += 1
            state.served += 1
            attempt_started = time.monotonic()
            try:
                heard = await self.client.transcribe(
                    state.endpoint,
                    audio=data,
                    filename=filename,
                    model=cand.model,
                    language=language,
                    prompt=prompt,
                )
            except AttemptError as err:
                self.health.mark_failure(state, err)
                attempts.append(Attempt(state, err.reason, "rejected" if err.rejected else "failed"))
                self.health.failover(state, err.reason, _after(plan.candidates, cand))
                continue
            except BaseException:
                self.health.release(state)
                raise
            finally:
                state.in_flight -= 1
            self.health.mark_success(state, time.monotonic() - attempt_started)
            return Transcription(
                text=heard.text.strip(),
                avg_logprob=heard.avg_logprob,
                no_speech_prob=heard.no_speech_prob,
                endpoint=state.snapshot(),
                model=cand.model,
                elapsed=time.monotonic() - started,
                notes=cand.notes,
                failed_over=tuple((a.state.endpoint.url, a.reason) for a in attempts),
            )
        raise all_failed("stt", attempts)

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

    async def _stt_plan(self, model: str | None, provider: str | None) -> Plan:
        model = model.strip() if model and model.strip() else None
        states = self.registry.select("stt", provider)
        await self.registry.ensure_discovered(states)
        stt_models = (self.settings.stt_model,) if self.settings.stt_model else ()
        return plan_stt(states, model=model, preferred_models=stt_models)

    def _admitted(
        self, candidates: Sequence[Candidate], attempts: builtins.list[Attempt]
    ) -> Iterator[Candidate]:
        """The candidates whose breakers let a request through, in plan order.

        When every one of them is cooling down, the first whose last failure was quick is tried anyway:
        with nothing else left, answering "circuit open" would refuse the person for the whole cool-down
        over one failed connect to a server that may well be back (a restarted child, a dropped
        connection), while trying costs next to nothing.
        """
        cooling: builtins.list[Candidate] = []
        for cand in candidates:
            if self.health.admit(cand.state):
                yield cand
            else:
                attempts.append(Attempt(cand.state, self._open_reason(cand.state), "skipped"))
                cooling.append(cand)
        if not cooling or len(cooling) < len(candidates):
            return
        for cand in cooling:
            if self.health.force_trial(cand.state):
                log.info("providers.last_resort", endpoint=cand.state.endpoint.url)
                attempts[:] = [a for a in attempts if a.state is not cand.state]
                yield cand
                return

    def _info(self, cand: Candidate, attempts: builtins.list[Attempt]) -> SpeechInfo:
        assert cand.voice is not None
        return SpeechInfo(
            endpoint=cand.state.snapshot(),
            voice=cand.voice.voice,
            voice_requested=cand.voice.requested,
            model=cand.model,
            format=TTS_FORMAT,
            notes=cand.notes,
            failed_over=tuple((a.state.endpoint.url, a.reason) for a in attempts),
        )

    @staticmethod
    def _open_reason(state: EndpointState) -> str:
        breaker = state.breaker
        last = state.last_error or "earlier failures"
        if breaker.state.value == "half_open":
            return f"circuit half-open, a trial request is in flight (last error: {last})"
        return f"circuit open after: {last}; next try in {breaker.retry_in():.0f} s"

"""The converse loop: speak the message, hand the microphone over with no dead time, hear the answer,
transcribe it, and account for every millisecond.

A turn's speaker and microphone are the local devices or, with a LiveKit transport, the assistant's
track and the person's in a room (:mod:`voicemoded.livekit.transport`): the stages do not know which.
One turn at a time owns the devices (:class:`AudioOwner`, FIFO with a wait bound), one per room. The microphone is
subscribed while the message is still playing, and the recorder keeps only audio captured after the
last sample left the speaker, so the answer window opens exactly when playback ends. A cancelled call
(client gone, MCP cancellation) unwinds through ``finally`` blocks that stop playback, close the
microphone and release the devices.

No answer is ever lost: from the moment the person starts speaking the answer is spooled to disk as it
is heard (:mod:`voicemoded.audio.spool`), so a daemon stopped or killed mid-answer leaves a recording.
The spool becomes the saved recording (saving on, or STT failed, or the turn was cut short before a
transcript existed) or is deleted once the transcript exists. A write that fails (full disk, read-only
folder) costs nothing but the file: the transcript is still returned, with a warning saying what could
not be written, and ``status`` shows the failure.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import time
from collections.abc import AsyncGenerator, AsyncIterable, AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import structlog

from voicemoded.api.errors import Unavailable, VoicemodeError
from voicemoded.audio.end_of_turn import TurnVerdict
from voicemoded.audio.endpointing import EndReason
from voicemoded.audio.format import AudioChunk, AudioFormat
from voicemoded.audio.microphone import Microphone, MicSubscription
from voicemoded.audio.owner import AudioOwner
from voicemoded.audio.playback import BargeIn, PlaybackResult, Speaker
from voicemoded.audio.recorder import Listener, Utterance, private_file
from voicemoded.audio.spool import RECORDING, Spool
from voicemoded.audio.turn import ACOUSTIC_CHECK_S, TurnModels, judge
from voicemoded.conversation.journal import Journal, TurnRecord
from voicemoded.conversation.params import TurnParams
from voicemoded.conversation.results import Heard, Spoken, TurnEvent, TurnResult
from voicemoded.events import EventBus
from voicemoded.providers.failover import TTS_FORMAT, Speech, SpeechInfo, Transcription

log = structlog.get_logger(__name__)


Emit = Callable[[TurnEvent], None]
Stage = Callable[[str, str], None]
"""Publishes the turn's stage and its text (a transcript) on the event bus."""

#: Turn events that are also the turn's live stages (``conversation.stage`` events on the bus), by stage.
STAGES = {
    "tts_start": "speaking",
    "playback_end": "spoken",
    "listening": "listening",
    "speech_start": "speech_start",
    "speech_end": "speech_end",
    "transcript": "transcript",
    "done": "done",
}


class Playback(Protocol):
    """Where the message is played: the local speaker, or the assistant's track in a room."""

    async def play(
        self,
        source: AsyncIterable[AudioChunk],
        *,
        chimes: bool = False,
        barge_in: BargeIn | None = None,
        on_first_audio: Callable[[float], None] | None = None,
        expect: AudioFormat | None = None,
    ) -> PlaybackResult: ...


class Capture(Protocol):
    """Where the answer is heard: the local microphone, or the person's track in a room."""

    async def subscribe(self) -> MicSubscription: ...


@dataclass(frozen=True, slots=True)
class Devices:
    """One turn's speaker and microphone; the stages do not know which transport they belong to."""

    speaker: Playback
    microphone: Capture
    room: str = ""
    """The LiveKit room they are in ("" for the local devices)."""
    gone: asyncio.Event | None = None
    """Set when the person left the room: listening ends there, with what was heard so far."""


class Rooms(Protocol):
    """LiveKit rooms as a transport (see :mod:`voicemoded.livekit.transport`)."""

    async def room_for(self, params: TurnParams) -> str: ...

    def owner(self, room: str) -> AudioOwner: ...

    def open(self, room: str, params: TurnParams) -> AbstractAsyncContextManager[Devices]: ...


class Turns(Protocol):
    async def turn(
        self, params: TurnParams, emit: Emit, *, mode: str, client: str = "", cwd: str = ""
    ) -> TurnResult: ...


async def turn_events(
    conversation: Turns, params: TurnParams, *, mode: str, client: str = "", cwd: str = ""
) -> AsyncGenerator[TurnEvent, None]:
    """One turn as a stream of its events, ending with ``done``; the turn's error is raised after them.

    Closing the stream early (the caller hung up, an MCP cancellation) cancels the turn and waits until
    playback and recording have stopped and the devices are free.
    """
    queue: asyncio.Queue[TurnEvent | None] = asyncio.Queue()
    task = asyncio.ensure_future(
        conversation.turn(params, queue.put_nowait, mode=mode, client=client, cwd=cwd)
    )
    task.add_done_callback(lambda _t: queue.put_nowait(None))
    try:
        while (event := await queue.get()) is not None:
            yield event
        task.result()
    finally:
        if not task.done():
            task.cancel()
            await asyncio.wait([task])


class TurnFailed(VoicemodeError):
    """STT failed after the person spoke: the recording is kept and named so it can be retried."""

    code = Unavailable.code


@dataclass(slots=True)
class _Outcomes:
    """Each stage's outcome: the value it returned or, when it was cut short, what it had learnt by
    then (the journal keeps it). The turn's result is built from these once, at its end."""

    spoken: Spoken | None = None
    heard: Heard | None = None


@dataclass(frozen=True, slots=True)
class _Turn:
    """What every stage of one turn works with."""

    turn_id: str
    params: TurnParams
    speech: Speech
    """The registry this turn started with: a reload mid-turn does not switch it."""
    event: Callable[..., None]
    spool: Spool
    queue_wait: float
    outcomes: _Outcomes
    devices: Devices
    stage: Stage


class Conversation:
    """Built once in the composition root; ``turn`` is called per Converse/Speak/Listen request.

    ``speech`` is the provider registry or a function returning the current one: each turn asks it
    once, at its start, so a registry rebuilt on a settings change serves the next turn. ``rooms``
    carries a turn through a LiveKit room instead of the local speaker and microphone.
    """

    def __init__(
        self,
        *,
        owner: AudioOwner,
        speaker: Speaker,
        microphone: Microphone,
        listener: Listener,
        speech: Speech | Callable[[], Speech],
        journal: Journal,
        audio_dir: Path,
        turns: TurnModels | None = None,
        events: EventBus | None = None,
        rooms: Rooms | None = None,
    ) -> None:
        self.owner = owner
        self.speaker = speaker
        self.microphone = microphone
        self.listener = listener
        self._speech = (lambda: speech) if isinstance(speech, Speech) else speech
        self.journal = journal
        self.audio_dir = audio_dir
        self.turns = turns
        self._events = events
        self.rooms = rooms

    @property
    def speech(self) -> Speech:
        """The registry the next turn uses."""
        return self._speech()

    async def turn(
        self, params: TurnParams, emit: Emit, *, mode: str, client: str = "", cwd: str = ""
    ) -> TurnResult:
        speech = self._speech()
        t_call = time.monotonic()
        wall_offset = time.time() - t_call
        turn_id = self.journal.new_turn_id()

        def stage(name: str, text: str = "") -> None:
            # One call that queues for the bus's watchers: the turn never waits for them.
            if self._events is not None:
                self._events.publish(
                    "conversation.stage", "conversation", f"turn {turn_id}: {name}",
                    turn_id=turn_id, stage=name, text=text,
                )  # fmt: skip

        def event(kind: str, at: float | None = None, **kw: object) -> None:
            at = time.monotonic() if at is None else at
            emit(TurnEvent(kind, max(0.0, at - t_call), at + wall_offset, **kw))  # type: ignore[arg-type]
            if (name := STAGES.get(kind)) is not None:
                result = kw.get("result")
                stage(name, str(kw.get("text") or (result.text if isinstance(result, TurnResult) else "")))

        started = time.time()
        meta = {"turn_id": turn_id, "mode": mode, "client": client, "cwd": cwd, "started": f"{started:.3f}"}
        spool = Spool(self.audio_dir / f"{turn_id}.wav", meta={**meta, "message": params.message[:1000]},
                      storage=self.journal.storage)  # fmt: skip
        outcomes = _Outcomes()
        queue_wait, kept, error, cancelled, room = 0.0, "", None, False, ""
        try:
            room = await self._room_for(params)
            owner = self.owner if not room or self.rooms is None else self.rooms.owner(room)
            holder = owner.holder
            if holder is not None and not params.no_wait:
                event("queued", detail=f"waiting for {holder.who}")
            async with owner.hold(
                client or "a caller", wait=not params.no_wait, timeout=params.queue_timeout
            ):
                queue_wait = time.monotonic() - t_call
                async with self._devices(room, params) as devices:
                    if room:
                        event("progress", detail=f"in LiveKit room {room}")
                    turn = _Turn(turn_id, params, speech, event, spool, queue_wait, outcomes, devices, stage)
                    await self._run(turn)
        except BaseException as exc:
            # Cut short (cancelled, the daemon stopping, a failure) before any transcript existed:
            # what was heard is kept whatever the saving setting says.
            # Synchronous (a header fix-up, one fsync, a rename): a cancelled task must not await here.
            kept = str(spool.keep() or "")
            if cancelled := isinstance(exc, asyncio.CancelledError):
                error = "cancelled" + (f"; what was heard is kept in {kept}" if kept else "")
            elif isinstance(exc, VoicemodeError):
                error = exc.message
            stage("error", error or type(exc).__name__)
            raise
        finally:
            result = TurnResult.of(
                turn_id, outcomes.spoken, outcomes.heard, listens=params.listens, queue_wait=queue_wait,
                total=time.monotonic() - t_call, kept=kept, cancelled=cancelled,
            )  # fmt: skip
            record = TurnRecord(
                turn_id, started, mode, message=params.message, text=result.text, end_reason=result.end_reason,
                voice=result.voice, tts_provider=result.tts_provider, stt_provider=result.stt_provider,
                client=client, cwd=cwd, timings=result.timings, recording=result.recording_path or None,
                error=error, warnings=list(result.warnings), room=room,
            )  # fmt: skip
            if (failed := self.journal.append(record)) is not None:
                result = dataclasses.replace(result, warnings=(*result.warnings, failed))
            if self._events is not None:
                self._events.publish(
                    "conversation.turn", "conversation", f"{mode} turn {turn_id}: {error or result.end_reason}",
                    level="warning" if error else "info", turn_id=turn_id, total=f"{result.timings.total:.3f}",
                )  # fmt: skip
        for warning in result.warnings:
            event("progress", detail=f"warning: {warning}")
        event("done", result=result, detail="; ".join(result.warnings))
        return result

    async def _room_for(self, params: TurnParams) -> str:
        if params.transport == "local":
            return ""
        if self.rooms is None:
            raise Unavailable(
                f"transport {params.transport} is not available in this daemon",
                hint="use transport local",
                fields={"param": "transport"},
            )
        return await self.rooms.room_for(params)

    def _devices(self, room: str, params: TurnParams) -> AbstractAsyncContextManager[Devices]:
        if room and self.rooms is not None:
            return self.rooms.open(room, params)
        return contextlib.nullcontext(Devices(self.speaker, self.microphone))

    async def _run(self, turn: _Turn) -> None:
        params, outcomes = turn.params, turn.outcomes
        sub: MicSubscription | None = None
        try:
            if params.listens:
                if self.turns is not None:
                    self.turns.get(params.turn_model)  # loads while the question plays
                # Open the microphone now: it is warm and capturing when the last word leaves the speaker.
                sub = await turn.devices.microphone.subscribe()
            if params.speaks:
                outcomes.spoken = await self._speak(turn, sub)
            if sub is not None:
                played = outcomes.spoken.played if outcomes.spoken is not None else None
                outcomes.heard = await self._listen(turn, sub, played)
        finally:
            if sub is not None:
                await sub.close()

    async def _speak(self, turn: _Turn, sub: MicSubscription | None) -> Spoken:
        params = turn.params
        turn.event("tts_start")
        started = time.monotonic()
        generation_end = started
        info: SpeechInfo | None = None
        ttfa = 0.0
        synth = turn.speech.synthesize(
            params.message,
            voice=params.voice or None,
            model=params.tts_model or None,
            provider=params.tts_provider or None,
            speed=params.speed,
            instructions=params.tts_instructions or None,
            language=params.language or None,
        )

        async def audio() -> AsyncIterator[AudioChunk]:
            nonlocal info, generation_end
            async with contextlib.aclosing(synth):
                async for item in synth:
                    if isinstance(item, SpeechInfo):
                        info = item
                        continue
                    yield item
            generation_end = time.monotonic()

        def first_audio(at: float) -> None:
            nonlocal ttfa
            ttfa = at - started + turn.queue_wait
            who = Spoken.by(info)
            turn.event("first_audio", at, detail=f"{who.provider} voice {who.voice}")

        barge = BargeIn(sub) if params.barge_in and sub is not None else None
        try:
            played = await turn.devices.speaker.play(
                audio(),
                chimes=params.chime_enabled and params.listens,
                barge_in=barge,
                on_first_audio=first_audio,
                expect=TTS_FORMAT,
            )
        except BaseException:
            turn.outcomes.spoken = Spoken.by(info, ttfa=ttfa)
            raise
        playback = 0.0
        if played.started_at is not None and played.ended_at is not None:
            playback = played.ended_at - played.started_at
        turn.event("playback_end", played.ended_at, detail=played.reason)
        if played.reason == "barge_in":
            turn.event("barge_in")
        generation = generation_end - started
        return Spoken.by(info, played=played, ttfa=ttfa, generation=generation, playback=playback)

    async def _listen(self, turn: _Turn, sub: MicSubscription, played: PlaybackResult | None) -> Heard:
        params = turn.params
        playback_end = played.ended_at if played is not None else None
        mic_gap = 0.0

        def on_event(kind: str, at: float) -> None:
            nonlocal mic_gap
            if kind == "listening" and playback_end is not None:
                mic_gap = max(0.0, at - playback_end)
            turn.event(kind, at)

        heard: Heard | None = None
        try:
            utterance, reusable = await self._hear(turn, sub, played, on_event)
            gone = turn.devices.gone is not None and turn.devices.gone.is_set()
            heard = Heard(
                end_reason=_end_reason(utterance, played, gone),
                speech_seconds=utterance.seconds,
                mic_gap=mic_gap,
                record=utterance.ended_at - utterance.listening_at,
                endpoint_delay=utterance.endpoint_delay if utterance.endpoint_delay is not None else 0.0,
            )
            if params.save_audio and utterance.audio:
                path, warnings = await self._save(turn, utterance, heard.warnings)
                heard = dataclasses.replace(heard, recording=path, warnings=warnings)
            silent = gone and utterance.speech_start is None  # left without a word: nothing to read
            if utterance.reason is EndReason.NO_SPEECH or not utterance.audio or silent:
                if utterance.reason is not EndReason.CANCELLED:
                    heard = dataclasses.replace(heard, end_reason="no_speech")
                await asyncio.to_thread(turn.spool.discard)
                return heard
            stt_started = time.monotonic()
            turn.stage("transcribing", "")
            try:
                tr = await self._final_transcript(turn, utterance, reusable)
            except VoicemodeError as exc:
                if not heard.recording:
                    path, warnings = await self._save(turn, utterance, heard.warnings)
                    heard = dataclasses.replace(heard, recording=path, warnings=warnings)
                raise _stt_failed(heard, exc) from exc
            await asyncio.to_thread(turn.spool.discard)  # the transcript exists: an unsaved answer goes
            stt = time.monotonic() - stt_started
            endpoint_delay = heard.endpoint_delay
            if utterance.speech_end is not None:
                endpoint_delay = time.monotonic() - utterance.speech_end
            heard = dataclasses.replace(heard, text=tr.text.strip(), stt_provider=tr.endpoint.url, stt=stt,
                                        endpoint_delay=endpoint_delay, language=tr.language)  # fmt: skip
            turn.event("transcript", text=heard.text, detail=f"turn ended: {utterance.ended_by}")
            return heard
        except BaseException:
            turn.outcomes.heard = heard if heard is not None else Heard(mic_gap=mic_gap)
            raise

    async def _hear(
        self,
        turn: _Turn,
        sub: MicSubscription,
        played: PlaybackResult | None,
        on_event: Callable[[str, float], None],
    ) -> tuple[Utterance, asyncio.Task[Transcription] | None]:
        """Record the answer; with it the transcription made at its last pause, when that one heard it
        all (it is the transcript then: no second STT call)."""
        params = turn.params
        barged = _barged(played)
        # Transcribing at a pause both predicts the end of the turn and, when the turn does end there
        # (by the predictor's verdict or by the silence bound), already is the answer: no second STT call.
        # Each transcription runs as its own task so the recorder dropping a verdict does not waste it.
        # With an end-of-turn model the pause is reported sooner (ACOUSTIC_CHECK_S) and the model hears
        # the voice while STT reads the words: both must say "finished" for the quick end.
        pending: list[tuple[bytes, asyncio.Task[Transcription]]] = []
        config = params.endpoint_config()
        turns = await self.turns.get(params.turn_model) if self.turns is not None else None
        if turns is not None:
            config = dataclasses.replace(config, early_end_s=min(ACOUSTIC_CHECK_S, config.early_end_s))

        predicting = not params.disable_silence_detection and params.stt_at_pauses != "never"
        eager = predicting and (
            params.stt_at_pauses == "always"
            or await turn.speech.stt_is_local(params.stt_model or None, params.stt_provider or None)
        )

        async def predictor(audio: bytes) -> TurnVerdict:
            started = time.monotonic()

            def transcribe() -> Awaitable[Transcription]:
                task = asyncio.ensure_future(self._transcribe(turn, audio))
                pending.append((audio, task))
                return asyncio.shield(task)

            verdict = await judge(audio, transcribe, lambda tr: tr.text, turns, eager=eager)
            log.info(
                "conversation.turn_verdict", text=verdict.text, probability=verdict.probability,
                avg_logprob=verdict.avg_logprob, no_speech_prob=verdict.no_speech_prob,
                seconds=round(time.monotonic() - started, 3),
            )  # fmt: skip
            return verdict

        reusable: asyncio.Task[Transcription] | None = None
        try:
            utterance = await self.listener.record(
                config=config,
                subscription=sub,
                not_before=None if barged or played is None else played.ended_at,
                initial=played.barge_in if played is not None and barged else (),
                predictor=predictor if predicting else None,
                on_event=on_event,
                stop=turn.devices.gone,
                spool=turn.spool,
            )
            reusable = next(
                (t for a, t in reversed(pending) if utterance.audio and a.endswith(utterance.audio)), None
            )
        finally:
            for _, task in pending:
                if task is not reusable:
                    task.cancel()
        return utterance, reusable

    async def _final_transcript(
        self, turn: _Turn, utterance: Utterance, reusable: asyncio.Task[Transcription] | None
    ) -> Transcription:
        payload = utterance.turn_payload
        if isinstance(payload, Transcription):
            return payload
        if reusable is not None:
            with contextlib.suppress(VoicemodeError):
                return await reusable
        return await self._transcribe(turn, utterance.audio)

    async def _save(
        self, turn: _Turn, utterance: Utterance, warnings: tuple[str, ...]
    ) -> tuple[str, tuple[str, ...]]:
        """Keep the answer in the asked format: a WAV is the spool itself, finished; another format is
        encoded and the spool deleted (WAV needs no encoder, so it is also the fallback).

        The path ("" when it could not be written) and ``warnings`` with what could not be written added.
        """
        audio_format, spool = turn.params.audio_format, turn.spool
        if audio_format != "wav":
            path = self.audio_dir / f"{turn.turn_id}.{audio_format}"
            try:
                saved = await asyncio.to_thread(_encode, path, utterance)
            except OSError as exc:
                warnings = (*warnings, self.journal.storage.failed(RECORDING, path, exc))
            except Exception as exc:
                log.warning("conversation.encode_failed", format=audio_format, error=str(exc))
            else:
                self.journal.storage.wrote(RECORDING)
                await asyncio.to_thread(spool.discard)
                return str(saved), warnings
        kept = await asyncio.to_thread(spool.commit, utterance.audio, utterance.spool_offset)
        if kept is None and spool.failure is not None and spool.failure not in warnings:
            warnings = (*warnings, spool.failure)
        return (str(kept) if kept is not None else ""), warnings

    async def _transcribe(self, turn: _Turn, audio: bytes) -> Transcription:
        params = turn.params
        return await turn.speech.transcribe(
            AudioChunk(audio),
            language=params.language or None,
            model=params.stt_model or None,
            provider=params.stt_provider or None,
        )


def _end_reason(utterance: Utterance, played: PlaybackResult | None, gone: bool) -> str:
    """Why listening ended: the person left the room, spoke over the message, or the endpointer's reason."""
    if gone:
        return "person_left"
    return "barge_in" if _barged(played) else str(utterance.reason)


def _barged(played: PlaybackResult | None) -> bool:
    """The person spoke over the message: what they said then is the start of the answer."""
    return played is not None and played.reason == "barge_in"


def _stt_failed(heard: Heard, exc: VoicemodeError) -> TurnFailed:
    path = heard.recording
    kept = f"your answer is saved in {path}" if path else "your answer could not be saved"
    if not path and heard.warnings:
        kept += f" ({heard.warnings[-1]})"
    return TurnFailed(
        f"speech to text failed; {kept}: {exc.message}",
        hint="retry it with `voicemodectl transcribe --last` once an STT endpoint is up "
        "(`voicemodectl provider list` shows their health)",
        fields={"recording": path} if path else {},
    )


def _encode(path: Path, utterance: Utterance) -> Path:
    """The answer in a compressed format; a write that fails leaves no partial file."""
    from voicemoded.audio.codecs import Encoder

    encoder = Encoder(path.suffix.lstrip("."), utterance.format)
    data = encoder.encode(utterance.audio) + encoder.finish()
    with private_file(path) as handle:
        handle.write(data)
    return path

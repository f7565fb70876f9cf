"""The converse loop: speak the message, hand the microphone over with no dead time, hear the answer,
transcribe it, and account for every millisecond.

One turn at a time owns the devices (:class:`AudioOwner`, FIFO with a wait bound). The microphone is
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
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

import structlog

from voicemoded.api.errors import Unavailable, VoicemodeError
from voicemoded.audio.end_of_turn import TurnVerdict
from voicemoded.audio.endpointing import EndReason
from voicemoded.audio.format import AudioChunk
from voicemoded.audio.microphone import Microphone, MicSubscription
from voicemoded.audio.owner import AudioOwner
from voicemoded.audio.playback import BargeIn, PlaybackResult, Speaker
from voicemoded.audio.recorder import Listener, Utterance, private_file
from voicemoded.audio.spool import RECORDING, Spool
from voicemoded.audio.turn import ACOUSTIC_CHECK_S, TurnModels, judge
from voicemoded.conversation.journal import Journal, Timings, TurnRecord
from voicemoded.conversation.params import TurnParams
from voicemoded.events import EventBus
from voicemoded.providers.failover import TTS_FORMAT, Speech, SpeechInfo, Transcription

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class TurnResult:
    turn_id: str
    text: str = ""
    end_reason: str = ""
    tts_provider: str = ""
    stt_provider: str = ""
    voice: str = ""
    tts_model: str = ""
    voice_mapping: str = ""
    recording_path: str = ""
    speech_seconds: float = 0.0
    timings: Timings = field(default_factory=Timings)
    warnings: list[str] = field(default_factory=list)
    """What could not be written (the recording, the journal line): the turn succeeded without it."""


@dataclass(frozen=True, slots=True)
class TurnEvent:
    """``kind``: queued, tts_start, first_audio, playback_end, listening, speech_start, speech_end,
    barge_in, transcript, progress (a warning: what could not be written), done (its ``detail``: the
    warnings). ``t`` is seconds since the call arrived; ``at`` wall-clock time."""

    kind: str
    t: float
    at: float
    detail: str = ""
    text: str = ""
    result: TurnResult | None = None


Emit = Callable[[TurnEvent], None]


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


class Conversation:
    """Built once in the composition root; ``turn`` is called per Converse/Speak/Listen request."""

    def __init__(
        self,
        *,
        owner: AudioOwner,
        speaker: Speaker,
        microphone: Microphone,
        listener: Listener,
        speech: Speech,
        journal: Journal,
        audio_dir: Path,
        turns: TurnModels | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.owner = owner
        self.speaker = speaker
        self.microphone = microphone
        self.listener = listener
        self.speech = speech
        self.journal = journal
        self.audio_dir = audio_dir
        self.turns = turns
        self._events = events

    async def turn(
        self, params: TurnParams, emit: Emit, *, mode: str, client: str = "", cwd: str = ""
    ) -> TurnResult:
        t_call = time.monotonic()
        wall_offset = time.time() - t_call

        def event(kind: str, at: float | None = None, **kw: object) -> None:
            at = time.monotonic() if at is None else at
            emit(TurnEvent(kind, max(0.0, at - t_call), at + wall_offset, **kw))  # type: ignore[arg-type]

        turn_id = self.journal.new_turn_id()
        result = TurnResult(turn_id)
        record = TurnRecord(turn_id, time.time(), mode, message=params.message, client=client, cwd=cwd)
        timings = result.timings
        meta = {
            "turn_id": turn_id,
            "mode": mode,
            "client": client,
            "cwd": cwd,
            "started": f"{record.time:.3f}",
        }
        spool = Spool(self.audio_dir / f"{turn_id}.wav", meta={**meta, "message": params.message[:1000]},
                      storage=self.journal.storage)  # fmt: skip
        try:
            holder = self.owner.holder
            if holder is not None and not params.no_wait:
                event("queued", detail=f"waiting for {holder.who}")
            async with self.owner.hold(
                client or "a caller", wait=not params.no_wait, timeout=params.queue_timeout
            ):
                timings.queue_wait = time.monotonic() - t_call
                await self._run(params, result, event, spool)
        except BaseException as exc:
            # Cut short (cancelled, the daemon stopping, a failure) before any transcript existed:
            # what was heard is kept whatever the saving setting says.
            # Synchronous (a header fix-up, one fsync, a rename): a cancelled task must not await here.
            kept = spool.keep()
            if kept is not None:
                result.recording_path = str(kept)
            if isinstance(exc, asyncio.CancelledError):
                record.error = "cancelled" + (f"; what was heard is kept in {kept}" if kept else "")
                result.end_reason = "cancelled"
            elif isinstance(exc, VoicemodeError):
                record.error = exc.message
            raise
        finally:
            timings.total = time.monotonic() - t_call
            record.text, record.end_reason, record.timings = result.text, result.end_reason, timings
            record.voice, record.tts_provider, record.stt_provider = (
                result.voice,
                result.tts_provider,
                result.stt_provider,
            )
            record.recording = result.recording_path or None
            record.warnings = list(result.warnings)
            if (failed := self.journal.append(record)) is not None:
                result.warnings.append(failed)
            if self._events is not None:
                self._events.publish(
                    "conversation.turn", "conversation", f"{mode} turn {turn_id}: {record.error or result.end_reason}",
                    level="warning" if record.error else "info", turn_id=turn_id, total=f"{timings.total:.3f}",
                )  # fmt: skip
        for warning in result.warnings:
            event("progress", detail=f"warning: {warning}")
        event("done", result=result, detail="; ".join(result.warnings))
        return result

    async def _run(
        self, params: TurnParams, result: TurnResult, event: Callable[..., None], spool: Spool
    ) -> None:
        sub: MicSubscription | None = None
        try:
            if params.listens:
                if self.turns is not None:
                    self.turns.get(params.turn_model)  # loads while the question plays
                # Open the microphone now: it is warm and capturing when the last word leaves the speaker.
                sub = await self.microphone.subscribe()
            playback: PlaybackResult | None = None
            if params.speaks:
                playback = await self._speak(params, result, event, sub)
            if not params.listens:
                result.end_reason = "spoken"
                return
            assert sub is not None
            await self._listen(params, result, event, sub, playback, spool)
        finally:
            if sub is not None:
                await sub.close()

    async def _speak(
        self, params: TurnParams, result: TurnResult, event: Callable[..., None], sub: MicSubscription | None
    ) -> PlaybackResult:
        timings = result.timings
        event("tts_start")
        started = time.monotonic()
        generation_end = [started]
        synth = self.speech.synthesize(
            params.message,
            voice=params.voice or None,
            model=params.tts_model or None,
            provider=params.tts_provider or None,
            speed=params.speed,
            instructions=params.tts_instructions or None,
        )

        async def audio() -> AsyncIterator[AudioChunk]:
            async with contextlib.aclosing(synth):
                async for item in synth:
                    if isinstance(item, SpeechInfo):
                        result.tts_provider = item.endpoint.url
                        result.voice, result.tts_model = item.voice, item.model
                        result.voice_mapping = "; ".join(item.notes)
                        continue
                    yield item
            generation_end[0] = time.monotonic()

        def first_audio(at: float) -> None:
            timings.ttfa = at - started + timings.queue_wait
            event("first_audio", at, detail=f"{result.tts_provider} voice {result.voice}")

        barge = BargeIn(sub) if params.barge_in and sub is not None else None
        playback = await self.speaker.play(
            audio(),
            chimes=params.chime_enabled and params.listens,
            barge_in=barge,
            on_first_audio=first_audio,
            expect=TTS_FORMAT,
        )
        timings.generation = generation_end[0] - started
        if playback.started_at is not None and playback.ended_at is not None:
            timings.playback = playback.ended_at - playback.started_at
        event("playback_end", playback.ended_at, detail=playback.reason)
        if playback.reason == "barge_in":
            event("barge_in")
        return playback

    async def _listen(
        self,
        params: TurnParams,
        result: TurnResult,
        event: Callable[..., None],
        sub: MicSubscription,
        playback: PlaybackResult | None,
        spool: Spool,
    ) -> None:
        timings = result.timings
        playback_end = playback.ended_at if playback is not None else None
        barged = playback is not None and playback.reason == "barge_in"
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
            or await self.speech.stt_is_local(params.stt_model or None, params.stt_provider or None)
        )

        async def predictor(audio: bytes) -> TurnVerdict:
            started = time.monotonic()

            def transcribe() -> Awaitable[Transcription]:
                task = asyncio.ensure_future(self._transcribe(params, audio))
                pending.append((audio, task))
                return asyncio.shield(task)

            verdict = await judge(audio, transcribe, lambda tr: tr.text, turns, eager=eager)
            log.info(
                "conversation.turn_verdict", text=verdict.text, probability=verdict.probability,
                avg_logprob=verdict.avg_logprob, no_speech_prob=verdict.no_speech_prob,
                seconds=round(time.monotonic() - started, 3),
            )  # fmt: skip
            return verdict

        def on_event(kind: str, at: float) -> None:
            if kind == "listening" and playback_end is not None:
                timings.mic_gap = max(0.0, at - playback_end)
            event(kind, at)

        reusable: asyncio.Task[Transcription] | None = None
        try:
            utterance = await self.listener.record(
                config=config,
                subscription=sub,
                not_before=None if barged else playback_end,
                initial=playback.barge_in if playback is not None and barged else (),
                predictor=predictor if predicting else None,
                on_event=on_event,
                spool=spool,
            )
            reusable = next(
                (t for a, t in reversed(pending) if utterance.audio and a.endswith(utterance.audio)), None
            )
        finally:
            for _, task in pending:
                if task is not reusable:
                    task.cancel()
        result.end_reason = "barge_in" if barged else str(utterance.reason)
        result.speech_seconds = utterance.seconds
        timings.record = utterance.ended_at - utterance.listening_at
        if utterance.endpoint_delay is not None:
            timings.endpoint_delay = utterance.endpoint_delay
        if params.save_audio and utterance.audio:
            result.recording_path = await self._save(utterance, spool, params.audio_format, result)
        if utterance.reason is EndReason.NO_SPEECH or not utterance.audio:
            result.end_reason = (
                "no_speech" if utterance.reason is not EndReason.CANCELLED else result.end_reason
            )
            await asyncio.to_thread(spool.discard)
            return
        stt_started = time.monotonic()
        try:
            tr = await self._final_transcript(params, utterance, reusable)
        except VoicemodeError as exc:
            path = result.recording_path or await self._save(utterance, spool, params.audio_format, result)
            result.recording_path = path
            kept = f"your answer is saved in {path}" if path else "your answer could not be saved"
            if not path and result.warnings:
                kept += f" ({result.warnings[-1]})"
            raise TurnFailed(
                f"speech to text failed; {kept}: {exc.message}",
                hint="retry it with `voicemodectl transcribe --last` once an STT endpoint is up "
                "(`voicemodectl provider list` shows their health)",
                fields={"recording": path} if path else {},
            ) from exc
        await asyncio.to_thread(spool.discard)  # the transcript exists: an unsaved answer goes
        timings.stt = time.monotonic() - stt_started
        if utterance.speech_end is not None:
            timings.endpoint_delay = time.monotonic() - utterance.speech_end
        result.text = tr.text.strip()
        result.stt_provider = tr.endpoint.url
        event("transcript", text=result.text, detail=f"turn ended: {utterance.ended_by}")

    async def _final_transcript(
        self, params: TurnParams, utterance: Utterance, reusable: asyncio.Task[Transcription] | None
    ) -> Transcription:
        payload = utterance.turn_payload
        if isinstance(payload, Transcription):
            return payload
        if reusable is not None:
            with contextlib.suppress(VoicemodeError):
                return await reusable
        return await self._transcribe(params, utterance.audio)

    async def _save(self, utterance: Utterance, spool: Spool, audio_format: str, result: TurnResult) -> str:
        """Keep the answer in the asked format: a WAV is the spool itself, finished; another format is
        encoded and the spool deleted (WAV needs no encoder, so it is also the fallback). "" when it
        could not be written: the warning is in ``result``."""
        if audio_format != "wav":
            path = self.audio_dir / f"{result.turn_id}.{audio_format}"
            try:
                saved = await asyncio.to_thread(_encode, path, utterance)
            except OSError as exc:
                result.warnings.append(self.journal.storage.failed(RECORDING, path, exc))
            except Exception as exc:
                log.warning("conversation.encode_failed", format=audio_format, error=str(exc))
            else:
                self.journal.storage.wrote(RECORDING)
                await asyncio.to_thread(spool.discard)
                return str(saved)
        kept = await asyncio.to_thread(spool.commit, utterance.audio, utterance.spool_offset)
        if kept is None and spool.failure is not None and spool.failure not in result.warnings:
            result.warnings.append(spool.failure)
        return str(kept) if kept is not None else ""

    async def _transcribe(self, params: TurnParams, audio: bytes) -> Transcription:
        return await self.speech.transcribe(
            AudioChunk(audio),
            language=params.language or None,
            model=params.stt_model or None,
            provider=params.stt_provider or None,
        )


def _encode(path: Path, utterance: Utterance) -> Path:
    """The answer in a compressed format; a write that fails leaves no partial file."""
    from voicemoded.audio.codecs import Encoder

    encoder = Encoder(path.suffix.lstrip("."), utterance.format)
    data = encoder.encode(utterance.audio) + encoder.finish()
    with private_file(path) as handle:
        handle.write(data)
    return path

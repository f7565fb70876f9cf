"""Record one answer: listen on the microphone, endpoint it, hand back the utterance and its timings.

The recorder reads a :class:`MicSubscription` (the converse loop usually subscribes before playback
ends, so nothing is lost at the hand-over) and feeds the :class:`Endpointer` in audio time. Timings are
monotonic capture times of samples, not of the moment Python saw them, so "last voiced sample ->
result" can be measured honestly.

Cancelling the task closes the subscription in ``finally``; when it was the last one the stream
closes and the device is free again at once. A softer stop (``stop`` event) returns what was heard
with reason ``cancelled``.

Given a :class:`Spool`, the recorder writes the answer to it from the moment speech starts (with the
pre-roll), so a daemon that dies mid-answer leaves what was said on disk; the caller decides the
spool's fate once the turn is over.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
import wave
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import structlog

from voicemoded.audio.end_of_turn import PauseHistory, TurnVerdict
from voicemoded.audio.endpointing import EndpointConfig, Endpointer, EndpointEvent, EndReason
from voicemoded.audio.format import SPEECH_FORMAT, AudioChunk, AudioFormat
from voicemoded.audio.microphone import Microphone, MicSubscription
from voicemoded.audio.processing import MicProcessor
from voicemoded.audio.spool import Spool
from voicemoded.events import EventBus

log = structlog.get_logger(__name__)


TurnPredictor = Callable[[bytes], Awaitable[TurnVerdict]]
"""Given the utterance so far (16 kHz mono int16), say whether the person has finished."""

EventCallback = Callable[[str, float], None]
"""Called with ("listening" | "speech_start" | "speech_end", monotonic time of the sample)."""


@dataclass(slots=True)
class Utterance:
    """What the person said, with when they said it (monotonic seconds)."""

    audio: bytes
    reason: EndReason
    listening_at: float
    """Capture time of the first sample listened to."""
    ended_at: float
    """When the recorder decided the turn was over (just before returning)."""
    speech_start: float | None = None
    speech_end: float | None = None
    """Capture time just after the last voiced frame."""
    format: AudioFormat = SPEECH_FORMAT
    path: Path | None = None
    turn_payload: object = None
    """What the turn predictor returned when it ended the turn (reuse it: it is already the transcript)."""
    pauses: list[float] = field(default_factory=list)
    ended_by: str = ""
    """Which rule ended the turn: the end of turn's ("words and voice finished", "words finished",
    "opener only", "words unfinished", "silence" for the bound) or, for any other end, the reason."""
    spool_offset: int | None = None
    """Where ``audio`` starts in the spool the recorder wrote (None: no spool holds it)."""

    @property
    def seconds(self) -> float:
        return self.format.seconds_for(len(self.audio))

    @property
    def endpoint_delay(self) -> float | None:
        """Last voiced sample -> decision: the dead time the person waits for."""
        return None if self.speech_end is None else self.ended_at - self.speech_end


@contextlib.contextmanager
def private_file(path: Path) -> Iterator[BinaryIO]:
    """A new file only its owner can read; a write that fails (full disk) leaves no partial file."""
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC, 0o600)
    try:
        with open(fd, "wb") as handle:
            yield handle
    except BaseException:
        with contextlib.suppress(OSError):
            path.unlink()
        raise


def write_wav(path: Path, pcm: bytes, fmt: AudioFormat = SPEECH_FORMAT) -> Path:
    """A recording only its owner can read; a write that fails (full disk) leaves no partial file."""
    with private_file(path) as handle, wave.open(handle, "wb") as wav:
        wav.setnchannels(fmt.channels)
        wav.setsampwidth(fmt.width)
        wav.setframerate(fmt.rate)
        wav.writeframes(pcm)
    return path


class Listener:
    """Records utterances from one microphone with one default endpointing configuration."""

    def __init__(
        self, mic: Microphone, config: EndpointConfig | None = None, *, events: EventBus | None = None
    ) -> None:
        self.mic = mic
        self.config = config or EndpointConfig()
        self._events = events
        self.history = PauseHistory(self.config.turn.history)
        """This person's recent pauses: the end of turn waits out pauses as long as theirs."""

    async def record(
        self,
        *,
        config: EndpointConfig | None = None,
        subscription: MicSubscription | None = None,
        not_before: float | None = None,
        initial: Sequence[AudioChunk] = (),
        predictor: TurnPredictor | None = None,
        on_event: EventCallback | None = None,
        stop: asyncio.Event | None = None,
        save_to: Path | None = None,
        spool: Spool | None = None,
    ) -> Utterance:
        """Listen until the endpointer ends the turn.

        ``subscription``: an already-open microphone subscription (kept open afterwards); without it
        the microphone is opened here and released on return. ``not_before`` drops audio captured
        before that monotonic time (the tail of our own playback). ``initial`` is audio already heard
        (barge-in) that starts the utterance. ``spool`` (unopened) receives the answer as it is heard.
        """
        cfg = config or self.config
        own = subscription is None
        sub = subscription or await self.mic.subscribe()
        try:
            return await self._record(
                cfg, sub, not_before, initial, predictor, on_event, stop, save_to, spool
            )
        finally:
            if own:
                await sub.close()

    async def _record(
        self,
        cfg: EndpointConfig,
        sub: MicSubscription,
        not_before: float | None,
        initial: Sequence[AudioChunk],
        predictor: TurnPredictor | None,
        on_event: EventCallback | None,
        stop: asyncio.Event | None,
        save_to: Path | None,
        spool: Spool | None,
    ) -> Utterance:
        ep = Endpointer(cfg, recent_pause_s=self.history.longest)
        # The cleaner learns the room (noise suppression) and the level (gain control) from what was
        # heard before the window opened, so the answer's first words are already clean.
        cleaner = MicProcessor(cfg.processing) if cfg.processing.enabled else None
        audio = bytearray()
        before = bytearray()  # heard before the window: it only teaches the noise gate the room
        keep_before = _bytes(cfg.noise_window_s)
        fed = 0
        t0: float | None = None
        deadline = time.monotonic() + cfg.max_listen_s + 5.0
        verdict_task: asyncio.Task[TurnVerdict] | None = None
        verdict_pause = 0
        pauses: list[float] = []
        end: EndpointEvent | None = None
        spool_start: int | None = None  # where the spool starts in ``audio``
        spooled = 0  # how much of ``audio`` the spool has

        def emit(kind: str, at: float) -> None:
            log.debug("audio.listen_event", kind=kind, at=at)
            if on_event is not None:
                on_event(kind, at)

        def mono(audio_t: float) -> float:
            assert t0 is not None
            return t0 + audio_t

        pending = list(initial)
        try:
            while end is None:
                if stop is not None and stop.is_set():
                    end = ep.force_end(EndReason.CANCELLED)
                    break
                chunk: AudioChunk | None
                if pending:
                    chunk = pending.pop(0)
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        end = ep.force_end(EndReason.MAX_DURATION)
                        break
                    async with asyncio.timeout(remaining):
                        chunk = await self._next(sub, stop)
                    if chunk is None:
                        continue
                pcm = chunk.audio
                if not_before is not None and chunk.timestamp < not_before:
                    skip = cfg_bytes(chunk.format, not_before - chunk.timestamp)
                    before += pcm[:skip]
                    del before[: max(0, len(before) - keep_before)]
                    if skip >= len(pcm):
                        continue
                    pcm = pcm[skip:]
                    chunk = AudioChunk(pcm, chunk.format, not_before)
                if t0 is None:
                    t0 = chunk.timestamp
                    emit("listening", t0)
                    heard_before = bytes(before) if cleaner is None else cleaner.process(bytes(before))
                    start = len(heard_before) % ep.frame_bytes
                    for at in range(start, len(heard_before), ep.frame_bytes):
                        ep.prime(heard_before[at : at + ep.frame_bytes])
                audio += pcm if cleaner is None else cleaner.process(pcm)
                while end is None and len(audio) - fed >= ep.frame_bytes:
                    for ev in ep.feed(bytes(audio[fed : fed + ep.frame_bytes])):
                        if ev.kind == "speech_start":
                            emit("speech_start", mono(ev.at))
                            if spool is not None and spool_start is None:
                                # From the pre-roll the utterance will keep; all of it without endpointing.
                                pre = _bytes(max(0.0, ev.at - cfg.pre_roll_s)) if cfg.silence_detection else 0
                                spool_start = spooled = min(pre, len(audio))
                                spool.open()
                        elif ev.kind == "pause" and predictor is not None:
                            if verdict_task is not None:
                                verdict_task.cancel()
                            cut = (
                                len(audio)
                                if ep.last_voiced_end is None
                                else _bytes(ep.last_voiced_end + cfg.tail_s)
                            )
                            verdict_task = asyncio.ensure_future(predictor(bytes(audio[:cut])))
                            verdict_pause = ev.pause_id
                        elif ev.kind == "resume":
                            pauses.append(ev.pause_s)
                            if verdict_task is not None:  # its audio is no longer the whole answer
                                verdict_task.cancel()
                                verdict_task = None
                        elif ev.kind == "end":
                            end = ev
                    fed += ep.frame_bytes
                if spool is not None and spool_start is not None and spooled < len(audio):
                    spool.write(bytes(audio[spooled:]))
                    spooled = len(audio)
                if end is None and verdict_task is not None and verdict_task.done():
                    task, verdict_task = verdict_task, None
                    if not task.cancelled() and task.exception() is None:
                        end = ep.hear(verdict_pause, task.result())
        finally:
            if verdict_task is not None:
                verdict_task.cancel()
        ended_at = time.monotonic()
        if t0 is None:
            t0 = ended_at
            emit("listening", t0)
        speech_start = mono(ep.speech_start) if ep.speech_start is not None else None
        speech_end = mono(ep.last_voiced_end) if ep.last_voiced_end is not None else None
        if speech_end is not None:
            emit("speech_end", speech_end)
        reason = end.reason if end and end.reason else EndReason.CANCELLED
        if reason is EndReason.SILENCE:
            self.history.add(pauses)
        cut, cut_end = self._slice(len(audio), ep, cfg, reason)
        utt = Utterance(
            audio=bytes(audio[cut:cut_end]), reason=reason,
            listening_at=t0, ended_at=ended_at, speech_start=speech_start, speech_end=speech_end,
            turn_payload=ep.turn.payload if reason is EndReason.SILENCE else None, pauses=pauses,
            ended_by=ep.ended_by or str(reason),
            spool_offset=cut - spool_start if spool_start is not None and cut >= spool_start else None,
        )  # fmt: skip
        if save_to is not None and utt.audio:
            utt.path = await asyncio.to_thread(write_wav, save_to, utt.audio)
        log.info(
            "audio.utterance", reason=str(utt.reason), ended_by=utt.ended_by, seconds=round(utt.seconds, 3),
            endpoint_delay=utt.endpoint_delay, pauses=[round(p, 3) for p in utt.pauses],
            path=str(utt.path) if utt.path else None,
        )  # fmt: skip
        if self._events is not None:
            self._events.publish(
                "audio.utterance", "audio", f"turn ended: {utt.reason}", reason=str(utt.reason),
                seconds=f"{utt.seconds:.3f}",
            )  # fmt: skip
        return utt

    @staticmethod
    async def _next(sub: MicSubscription, stop: asyncio.Event | None) -> AudioChunk | None:
        """The next chunk, or None if ``stop`` was set first (so a soft stop is noticed at once)."""
        if stop is None:
            return await sub.read()
        read = asyncio.ensure_future(sub.read())
        halt = asyncio.ensure_future(stop.wait())
        try:
            done, _ = await asyncio.wait({read, halt}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            halt.cancel()
        if read in done:
            return read.result()
        read.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await read
        return None

    @staticmethod
    def _slice(size: int, ep: Endpointer, cfg: EndpointConfig, reason: EndReason) -> tuple[int, int]:
        """The part of the ``size`` bytes heard that is the answer, as (start, end) offsets."""
        if reason == EndReason.NO_SPEECH or ep.speech_start is None:
            return (0, 0) if reason == EndReason.NO_SPEECH else (0, size)
        if not cfg.silence_detection:
            return 0, size
        start = _bytes(max(0.0, ep.speech_start - cfg.pre_roll_s))
        end = _bytes((ep.last_voiced_end or ep.elapsed) + cfg.tail_s)
        return min(start, size), min(end, size)


def _bytes(seconds: float) -> int:
    return SPEECH_FORMAT.bytes_for(seconds)


def cfg_bytes(fmt: AudioFormat, seconds: float) -> int:
    return fmt.bytes_for(seconds)

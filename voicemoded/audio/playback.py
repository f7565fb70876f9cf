"""Streaming playback that starts on the first chunk and knows when the last sample left the speaker.

Audio flows source -> feeder task -> a byte buffer -> PortAudio's callback thread. Playback starts as
soon as the first chunk arrives while the rest is still being synthesized; a late chunk makes the
callback play silence (counted as an underrun) instead of stopping the stream.

Control does not queue behind audio: ``interrupt()`` (or the ``stop`` event, or barge-in, or task
cancellation) raises a flag the callback checks before taking any audio, drops everything buffered and
aborts the stream, the same priority lane pipecat gives system frames over data frames.

The end of playback is the DAC time PortAudio reports for the last block plus that block's length, not
the moment the callback ran out of data: the converse loop opens the answer window exactly there. The
stream itself plays silence a little longer (``CLOSE_MARGIN_S``) before it is closed: when the callback
thread was held up (a busy machine, another thread holding the interpreter), the last samples leave the
speaker later than predicted, and closing at the prediction cut them off.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import pyaudio
import structlog

from voicemoded.api.errors import Unavailable, VoicemodeError
from voicemoded.audio.chimes import Overlay, end_chime, mix, start_chime
from voicemoded.audio.devices import AudioBackend, RateConverter, Route, open_format
from voicemoded.audio.endpointing import EndpointConfig, Endpointer
from voicemoded.audio.format import AudioChunk, AudioFormat
from voicemoded.audio.microphone import MicSubscription
from voicemoded.events import EventBus

log = structlog.get_logger(__name__)

StopReason = Literal["completed", "stopped", "barge_in", "cancelled", "empty"]

STALL_S = 3.0
"""A playing stream whose callback has not run for this long is dead: the sound server went away under
it (PortAudio's ALSA path then simply stops calling back), so playback ends with a clear error."""

CLOSE_MARGIN_S = 0.25
"""Silence a finished stream plays after the predicted end before it is closed (see the module doc)."""


@dataclass(slots=True)
class PlaybackResult:
    reason: StopReason
    started_at: float | None = None
    """Predicted time the first sample reached the speaker."""
    ended_at: float | None = None
    """Predicted time the last sample left the speaker (or when it was cut off)."""
    seconds: float = 0.0
    """Audio handed to the device."""
    underruns: int = 0
    barge_in: list[AudioChunk] = field(default_factory=list)
    """Speech heard during playback, pre-roll included: the start of the answer."""


@dataclass(frozen=True, slots=True)
class BargeIn:
    """Listen during playback; speech stops playback and becomes the start of the answer.

    Only sensible with a headset or echo cancellation: an open speaker next to the microphone makes the
    assistant interrupt itself, which is why the daemon keeps it off by default.
    """

    subscription: MicSubscription
    config: EndpointConfig = field(
        default_factory=lambda: EndpointConfig(start_s=0.15, initial_silence_s=3600.0, max_listen_s=3600.0)
    )


class _Buffer:
    """Bytes between the feeder and the callback thread, plus the control flags the callback obeys."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.data = bytearray()
        self.finished = False
        self.abort = False

    def take(self, n: int) -> bytes:
        with self.lock:
            out = bytes(self.data[:n])
            del self.data[:n]
            return out


class Speaker:
    """The output device: plays one stream at a time (the :class:`AudioOwner` enforces that)."""

    def __init__(
        self,
        backend: AudioBackend,
        device: str | int | None = None,
        *,
        events: EventBus | None = None,
        block_ms: int = 20,
        reopen_wait_s: float = 8.0,
    ) -> None:
        self.backend = backend
        self.reopen_wait_s = reopen_wait_s
        """How long a speaker that played before is waited for when it cannot be opened: a sound server
        restarting (PipeWire/PulseAudio, a USB re-plug) takes a few seconds to offer its devices again."""
        self._played = False
        self.device_spec = device
        self.route: Route | None = None
        """Where the last message went: the PortAudio device and any sound-server device."""
        self.block_ms = block_ms
        self._events = events
        self._current: tuple[_Buffer, asyncio.Event, asyncio.AbstractEventLoop] | None = None
        self._lingering: tuple[Any, float, asyncio.TimerHandle] | None = None
        """The last finished stream, playing its margin of silence: (stream, when it closes, its timer)."""

    async def settled(self) -> None:
        """Wait until the last finished stream has played its margin and is closed."""
        lingering = self._lingering
        if lingering is not None:
            await asyncio.sleep(max(0.0, lingering[1] - time.monotonic()))
            if self._lingering is lingering:
                self._close_lingering()

    def _close_lingering(self) -> None:
        lingering, self._lingering = self._lingering, None
        if lingering is not None:
            stream, _, timer = lingering
            timer.cancel()
            self.backend.close_stream(stream)

    @property
    def is_open(self) -> bool:
        """A stream is open: a message playing, or the last one playing its margin of silence."""
        return self._current is not None or self._lingering is not None

    async def _device(self, expect: AudioFormat) -> tuple[Route, AudioFormat]:
        """Where to play and the format to open it in, waiting for a speaker that played before (a
        headset chosen by name and plugged back in is found again here, by its name)."""
        deadline = time.monotonic() + (self.reopen_wait_s if self._played else 0.0)
        delay = 0.05
        while True:
            try:
                route = await asyncio.to_thread(self.backend.resolve, "output", self.device_spec)
                fmt = await asyncio.to_thread(open_format, self.backend, route.device, "output", expect)
                return route, fmt
            except VoicemodeError as exc:
                if time.monotonic() + delay > deadline:
                    raise
                log.warning("audio.output_reopen_failed", error=str(exc), retry_in=delay)
            await asyncio.to_thread(self.backend.refresh)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)

    def interrupt(self) -> None:
        """Stop what is playing now, from any thread or task."""
        current = self._current
        if current is not None:
            buf, wake, loop = current
            with buf.lock:
                buf.abort = True
                buf.data.clear()
            loop.call_soon_threadsafe(wake.set)

    async def play(
        self,
        source: AsyncIterable[AudioChunk] | Iterable[AudioChunk],
        *,
        chimes: bool = False,
        stop: asyncio.Event | None = None,
        barge_in: BargeIn | None = None,
        on_first_audio: Callable[[float], None] | None = None,
        expect: AudioFormat | None = None,
    ) -> PlaybackResult:
        """Play ``source`` to the end (or until stopped); returns when the last sample was heard.

        With ``expect`` (the format the source will most likely yield) the device is opened while the
        first chunk is still being made, so it plays the moment it arrives; any other format still plays.
        """
        chunks = _aiter(source)
        coming: asyncio.Future[AudioChunk | None] = asyncio.ensure_future(anext(chunks, None))
        # The last message has been heard by now (its margin only covers a late callback): close its
        # stream at once, before opening this one, rather than make this one wait for the margin.
        self._close_lingering()
        first: AudioChunk | None = None
        if expect is None:
            first = await coming
            if first is None:
                return PlaybackResult("empty")
            expect = first.format
        loop = asyncio.get_running_loop()
        # Until the stream is playing, a failure or a cancellation undoes what was set up so far.
        with contextlib.ExitStack() as undo:
            undo.callback(coming.cancel)
            route, dev_fmt = await self._device(expect)
            device = route.device
            buf = _Buffer()
            done: asyncio.Future[float] = loop.create_future()
            result = PlaybackResult("completed")
            frames = max(1, dev_fmt.rate * self.block_ms // 1000)
            bps = dev_fmt.bytes_per_second
            latency = [0.0]
            # Bytes handed to the device since the first sample (silence fills of underruns included): the
            # end of playback is the first sample's DAC time plus that, which does not drift with the
            # per-callback latency estimate the way "now + latency" at the last callback does.
            emitted = [0]
            settling = [False]
            called = [time.monotonic()]

            def callback(_in: bytes | None, count: int, info: Any, status: int) -> tuple[bytes, int]:
                # PortAudio may ask for another block size than the one we opened with: give exactly that.
                need = count * dev_fmt.frame_bytes
                now = called[0] = time.monotonic()
                dac, cur = info.get("output_buffer_dac_time", 0.0), info.get("current_time", 0.0)
                ahead = dac - cur if dac and cur and 0 <= dac - cur < 1.0 else latency[0]
                if buf.abort:
                    return b"\0" * need, pyaudio.paAbort
                data = buf.take(need)
                if data and result.started_at is None:
                    result.started_at = now + ahead
                    if on_first_audio is not None:
                        loop.call_soon_threadsafe(on_first_audio, result.started_at)
                if len(data) < need:
                    if buf.finished and not buf.data:
                        if not done.done() and not settling[0]:
                            settling[0] = True
                            start = result.started_at if result.started_at is not None else now + ahead
                            end = start + (emitted[0] + len(data)) / bps
                            loop.call_soon_threadsafe(_settle, done, end)
                        # Not paComplete: PortAudio's ALSA path drops the last ~40 ms it still holds when a
                        # callback completes the stream. Silence follows the message until play() closes the
                        # stream at the predicted end, so every sample of the message is heard.
                        return data + b"\0" * (need - len(data)), pyaudio.paContinue
                    if result.started_at is not None:
                        result.underruns += 1
                    data += b"\0" * (need - len(data))
                if result.started_at is not None:
                    emitted[0] += need
                return data, pyaudio.paContinue

            stream = await asyncio.to_thread(
                self.backend.open_stream, route, format=pyaudio.paInt16, channels=dev_fmt.channels,
                rate=dev_fmt.rate, output=True, output_device_index=device.index, frames_per_buffer=frames,
                stream_callback=callback, start=False,
            )  # fmt: skip
            undo.callback(self.backend.close_stream, stream)
            self._played, self.route = True, route
            latency[0] = float(stream.get_output_latency())
            if first is None:
                first = await coming
                if first is None:
                    return PlaybackResult("empty")
            # The first chunk is in the buffer before the stream starts: PortAudio fills the device's
            # buffer at start, and silence it took then would play ahead of the first word.
            feed = _Feeder(first.format, dev_fmt, buf, chimes, result)
            feed.push(first.audio)
            # Interruptible from here: the first audio (and on_first_audio) comes as soon as it starts.
            interrupted = asyncio.Event()
            self._current = (buf, interrupted, loop)
            undo.callback(setattr, self, "_current", None)
            called[0] = time.monotonic()  # the stall clock starts with the stream, not while TTS warmed up
            await asyncio.to_thread(stream.start_stream)
            undo.pop_all()  # playing: from here the stream is closed by the ``finally`` below
        feeder = asyncio.create_task(feed.rest(chunks))
        watchers: list[asyncio.Future[Any]] = [done, asyncio.ensure_future(interrupted.wait())]
        stalled = asyncio.ensure_future(_watch_stall(called))
        watchers.append(stalled)
        if stop is not None:
            watchers.append(asyncio.ensure_future(stop.wait()))
        barge_task = None
        if barge_in is not None:
            barge_task = asyncio.create_task(_watch_barge_in(barge_in, time.monotonic()))
            watchers.append(barge_task)
        log.info("audio.playback_started", device=route.name, rate=dev_fmt.rate)
        try:
            await asyncio.wait(watchers, return_when=asyncio.FIRST_COMPLETED)
            if stalled.done() and not done.done():
                result.reason = "stopped"
                raise Unavailable(
                    f"the speaker {route.name!r} stopped playing {emitted[0] / bps:.1f} s into the message: "
                    "the sound server went away under it",
                    hint="the next message opens the speaker again once the sound server is back",
                )
            if done.done():
                end = done.result()
                await asyncio.sleep(max(0.0, end - time.monotonic()))
                result.ended_at = end
            else:
                result.reason = "barge_in" if barge_task is not None and barge_task.done() else "stopped"
                if barge_task is not None and barge_task.done() and not barge_task.cancelled():
                    result.barge_in = barge_task.result()
        except asyncio.CancelledError:
            result.reason = "cancelled"
            raise
        finally:
            if result.ended_at is None:
                with buf.lock:
                    buf.abort = True
                    buf.data.clear()
                result.ended_at = time.monotonic()
            self._current = None
            for w in watchers[1:]:
                w.cancel()
            feeder.cancel()
            if result.reason == "completed":
                close_at = result.ended_at + CLOSE_MARGIN_S
                timer = loop.call_later(max(0.0, close_at - time.monotonic()), self._close_lingering)
                self._lingering = (stream, close_at, timer)
            else:
                self.backend.close_stream(stream)
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await feeder
            log.info(
                "audio.playback_ended", reason=result.reason, seconds=round(result.seconds, 3),
                underruns=result.underruns,
            )  # fmt: skip
        return result


class _Feeder:
    """Converts the source's chunks to the device format and appends them to the playback buffer."""

    def __init__(
        self, src: AudioFormat, dev_fmt: AudioFormat, buf: _Buffer, chimes: bool, result: PlaybackResult
    ) -> None:
        self.conv = RateConverter(src, dev_fmt)
        self.intro = Overlay(start_chime(dev_fmt) if chimes else b"")
        self.dev_fmt, self.buf, self.chimes, self.result = dev_fmt, buf, chimes, result

    def push(self, pcm: bytes, *, last: bool = False) -> None:
        pcm = self.intro.apply(self.conv.process(pcm, last=last))
        with self.buf.lock:
            if not self.buf.abort:
                self.buf.data += pcm
        self.result.seconds += self.dev_fmt.seconds_for(len(pcm))

    async def rest(self, chunks: AsyncIterable[AudioChunk]) -> None:
        """Everything after the first chunk, then the end: trailing silence cut, the end chime mixed in."""
        async for chunk in chunks:
            if chunk.format != self.conv.src:
                self.push(b"", last=True)
                self.conv = RateConverter(chunk.format, self.dev_fmt)
            self.push(chunk.audio)
        self.push(b"", last=True)
        buf, dev_fmt = self.buf, self.dev_fmt
        tail = self.intro.remainder()
        with buf.lock:
            if tail:
                buf.data += tail
            # Trailing silence is dead time before the microphone opens: stop at the last audible sample.
            trimmed = _audible_end(buf.data, dev_fmt)
            self.result.seconds -= dev_fmt.seconds_for(len(buf.data) - trimmed)
            del buf.data[trimmed:]
            if self.chimes:
                # The "your turn" chime sounds under the last words, not after them.
                chime = end_chime(dev_fmt)
                offset = max(0, len(buf.data) - len(chime))
                buf.data[offset:] = mix(bytes(buf.data[offset:]), chime)
            buf.finished = True


async def _watch_barge_in(barge: BargeIn, since: float) -> list[AudioChunk]:
    """Return the speech heard (with pre-roll) as soon as the endpointer says someone started talking."""
    ep = Endpointer(barge.config)
    kept: deque[AudioChunk] = deque()
    pcm = bytearray()
    t0: float | None = None
    while True:
        chunk = await barge.subscription.read()
        if chunk.timestamp < since:
            continue
        t0 = chunk.timestamp if t0 is None else t0
        kept.append(chunk)
        while kept and kept[0].end < chunk.timestamp - 3.0:
            kept.popleft()
        pcm += chunk.audio
        while len(pcm) >= ep.frame_bytes:
            frame, pcm = bytes(pcm[: ep.frame_bytes]), pcm[ep.frame_bytes :]
            for ev in ep.feed(frame):
                if ev.kind == "speech_start":
                    start = t0 + ev.at - barge.config.pre_roll_s
                    return [c for c in kept if c.end > start]


def _audible_end(data: bytearray, fmt: AudioFormat, *, threshold: int = 80, keep_s: float = 0.02) -> int:
    """Byte length up to the last sample above ``threshold`` (-52 dBFS) plus a short fade, whole frames."""
    import numpy as np

    look = min(len(data), fmt.bytes_for(1.0))
    start = len(data) - look
    start -= start % fmt.frame_bytes
    samples = np.frombuffer(bytes(data[start:]), dtype="<i2")
    loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > threshold)
    if loud.size == 0:
        return start if start > 0 else len(data)
    end = start + (int(loud[-1]) // fmt.channels + 1) * fmt.frame_bytes + fmt.bytes_for(keep_s)
    return min(len(data), end)


async def _watch_stall(called: list[float]) -> None:
    """Return once the playback callback has not run for :data:`STALL_S`."""
    while True:
        idle = time.monotonic() - called[0]
        if idle > STALL_S:
            log.warning("audio.output_stalled", idle=round(idle, 2))
            return
        await asyncio.sleep(max(0.05, STALL_S - idle))


def _settle(fut: asyncio.Future[float], value: float) -> None:
    if not fut.done():
        fut.set_result(value)


async def _aiter(source: AsyncIterable[AudioChunk] | Iterable[AudioChunk]) -> Any:
    if isinstance(source, AsyncIterable):
        async for chunk in source:
            yield chunk
    else:
        for chunk in source:
            yield chunk

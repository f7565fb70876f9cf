"""The microphone as one task with a reconnect loop, shared by whoever is listening.

The device is open only while someone subscribes (privacy, and other programs may want it), and stays
open across the hand-over from playback to listening: the converse loop subscribes before playback
ends, so the first sample after the speaker falls silent is already captured (no open latency at all).

A stream that errors, or goes silent for ``stall_timeout`` (a USB mic pulled, a sound server restarted:
PortAudio often just stops calling back), is closed and reopened with capped backoff while subscribers
keep waiting. A sound-server device chosen by name that goes away (a USB headset unplugged) is lost
too, although the server moves the stream to another device and it goes on: it is reopened on the
device chosen once that is back. If no device exists at the first open, subscribers get
:class:`NoDevice` at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator
from typing import Any, Protocol

import pyaudio
import structlog

from voicemoded.api.errors import NotFound, Unavailable, VoicemodeError
from voicemoded.audio.devices import AudioBackend, DeviceInfo, RateConverter, Route, open_format
from voicemoded.audio.format import SPEECH_FORMAT, AudioChunk, AudioFormat
from voicemoded.events import EventBus, Level

log = structlog.get_logger(__name__)

PRESENCE_CHECK_S = 0.5
"""How often a stream on a sound-server device chosen by name checks that the device is still there."""


class ChunkSource(Protocol):
    """Where a subscription's chunks come from (this machine's microphone, a person in a room): told
    when the subscription closes, so it stops offering to it."""

    async def _unsubscribe(self, sub: MicSubscription) -> None: ...


class MicSubscription:
    """One listener's view of the microphone: an async iterator of 16 kHz chunks (or ``fmt``)."""

    def __init__(self, mic: ChunkSource, maxsize: int) -> None:
        self._mic = mic
        self._queue: deque[AudioChunk] = deque(maxlen=maxsize)
        self._wakeup = asyncio.Event()
        self._error: BaseException | None = None
        self.dropped = 0
        self.closed = False

    def offer(self, chunk: AudioChunk) -> None:
        if len(self._queue) == self._queue.maxlen:
            self.dropped += 1
        self._queue.append(chunk)
        self._wakeup.set()

    def fail(self, error: BaseException) -> None:
        self._error = error
        self._wakeup.set()

    async def read(self) -> AudioChunk:
        """The next chunk; raises the device error if the microphone could not be opened at all."""
        while not self._queue:
            if self._error is not None:
                raise self._error
            if self.closed:
                raise EOFError("microphone subscription closed")
            self._wakeup.clear()
            await self._wakeup.wait()
        return self._queue.popleft()

    def drain(self) -> list[AudioChunk]:
        """Everything queued so far, without waiting."""
        out = list(self._queue)
        self._queue.clear()
        return out

    def __aiter__(self) -> AsyncIterator[AudioChunk]:
        return self._iter()

    async def _iter(self) -> AsyncIterator[AudioChunk]:
        while True:
            yield await self.read()

    async def close(self) -> None:
        if not self.closed:
            self.closed = True
            self._wakeup.set()
            await self._mic._unsubscribe(self)

    async def __aenter__(self) -> MicSubscription:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Microphone:
    """Owns the input stream; ``subscribe()`` opens it, the last ``close()`` frees the device."""

    def __init__(
        self,
        backend: AudioBackend,
        device: str | int | None = None,
        *,
        fmt: AudioFormat = SPEECH_FORMAT,
        block_ms: int = 10,
        events: EventBus | None = None,
        stall_timeout: float = 1.0,
        backoff_initial: float = 0.05,
        backoff_max: float = 2.0,
    ) -> None:
        self.backend = backend
        self.device_spec = device
        self.format = fmt
        self.block_ms = block_ms
        self._events = events
        self._stall_timeout = stall_timeout
        self._backoff = (backoff_initial, backoff_max)
        self._subs: set[MicSubscription] = set()
        self._task: asyncio.Task[None] | None = None
        self._stream: pyaudio.Stream | None = None
        self._last_callback = 0.0
        self.device: DeviceInfo | None = None
        self.route: Route | None = None
        """Where the current (or last) stream went: the PortAudio device and any sound-server device."""
        self.opened_at: float | None = None
        """Monotonic time the current stream delivered its first block (None while closed)."""
        self.reopens = 0
        self._first_block = asyncio.Event()

    @property
    def is_open(self) -> bool:
        return self._stream is not None

    async def subscribe(self, maxsize: int = 3000) -> MicSubscription:
        """Start receiving chunks; opens the device for the first subscriber."""
        sub = MicSubscription(self, maxsize)
        self._subs.add(sub)
        if self._task is None or self._task.done():
            self._first_block.clear()
            self._task = asyncio.create_task(self._run(), name="microphone")
        return sub

    async def wait_open(self, timeout: float = 5.0) -> float:
        """Wait until audio flows; returns the monotonic time of the first block."""
        async with asyncio.timeout(timeout):
            await self._first_block.wait()
        assert self.opened_at is not None
        return self.opened_at

    async def _unsubscribe(self, sub: MicSubscription) -> None:
        self._subs.discard(sub)
        if not self._subs and self._task is not None:
            task, self._task = self._task, None
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def aclose(self) -> None:
        for sub in list(self._subs):
            await sub.close()

    # the device task ----------------------------------------------------------------------------

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        delay = self._backoff[0]
        first = True
        try:
            while self._subs:
                try:
                    await asyncio.to_thread(self._open, loop)
                except VoicemodeError as exc:
                    if first:
                        for sub in list(self._subs):
                            sub.fail(exc)
                        self._publish("audio.device_missing", str(exc), level="error")
                        return
                    log.warning("audio.input_reopen_failed", error=str(exc), retry_in=delay)
                    await asyncio.to_thread(self.backend.refresh)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff[1])
                    continue
                except OSError as exc:
                    if first:
                        error = Unavailable(
                            f"input device {self.device_name!r} could not be opened: {exc}",
                            hint="another program may hold it; pick another with VOICEMODE_INPUT_DEVICE",
                        )
                        for sub in list(self._subs):
                            sub.fail(error)
                        self._publish("audio.device_failed", str(error), level="error")
                        return
                    log.warning("audio.input_open_failed", error=str(exc), retry_in=delay)
                    await asyncio.sleep(delay)
                    delay = min(delay * 2, self._backoff[1])
                    continue
                if not first:
                    self.reopens += 1
                    self._publish("audio.device_reopened", f"microphone {self.device_name} is back")
                first = False
                delay = self._backoff[0]
                lost = await self._watch()
                self._publish("audio.device_lost", f"microphone {self.device_name} {lost}", level="warning")
                await asyncio.to_thread(self._close)  # a lost device's close is the one that may block
        finally:
            self._close()

    async def _watch(self) -> str:
        """Return, saying why, when the stream stops delivering audio (error, or silence from PortAudio
        itself) or the sound-server device it was sent to goes away."""
        checked = time.monotonic()
        while True:
            await asyncio.sleep(self._stall_timeout / 4)
            stream = self._stream
            if stream is None or not stream.is_active():
                return "stopped delivering audio"
            if time.monotonic() - self._last_callback > self._stall_timeout:
                return "stopped delivering audio"
            route, due = self.route, time.monotonic() - checked >= PRESENCE_CHECK_S
            if due and route is not None and route.target is not None:
                checked = time.monotonic()
                if not await asyncio.to_thread(self.backend.present, route):
                    return "is gone"

    def _open(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            route = self.backend.resolve("input", self.device_spec)
        except NotFound:
            self.backend.refresh()
            route = self.backend.resolve("input", self.device_spec)
        device = route.device
        dev_fmt = open_format(self.backend, device, "input", self.format)
        converter = RateConverter(dev_fmt, self.format)
        frames = max(1, dev_fmt.rate * self.block_ms // 1000)
        dur = frames / dev_fmt.rate

        def callback(data: bytes | None, count: int, info: Any, status: int) -> tuple[None, int]:
            now = time.monotonic()
            self._last_callback = now
            adc, cur = info.get("input_buffer_adc_time", 0.0), info.get("current_time", 0.0)
            stamp = now + (adc - cur) if adc and cur and -1.0 < adc - cur <= 0 else now - dur
            if data:
                pcm = converter.process(data)
                if pcm:
                    loop.call_soon_threadsafe(self._dispatch, AudioChunk(pcm, self.format, stamp))
            return None, pyaudio.paContinue

        self._last_callback = time.monotonic()
        self._stream = self.backend.open_stream(
            route, format=pyaudio.paInt16, channels=dev_fmt.channels, rate=dev_fmt.rate, input=True,
            input_device_index=device.index, frames_per_buffer=frames, stream_callback=callback,
        )  # fmt: skip
        self.device, self.route = device, route
        log.info("audio.input_opened", device=route.name, rate=dev_fmt.rate, block_ms=self.block_ms)

    def _dispatch(self, chunk: AudioChunk) -> None:
        if not self._first_block.is_set():
            self.opened_at = time.monotonic()
            self._first_block.set()
        for sub in self._subs:
            sub.offer(chunk)

    def _close(self) -> None:
        stream, self._stream = self._stream, None
        if stream is not None:
            self.backend.close_stream(stream)
            log.info("audio.input_closed", device=self.device_name)
        self.opened_at = None
        self._first_block.clear()

    @property
    def device_name(self) -> str:
        if self.route is not None:
            return self.route.name
        return self.device.name if self.device else str(self.device_spec or "default")

    def _publish(self, kind: str, message: str, level: Level = "info") -> None:
        if self._events is not None:
            self._events.publish(kind, "audio", message, level=level, device=self.device_name)

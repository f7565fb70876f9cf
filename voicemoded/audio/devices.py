"""PyAudio, owned in one place: device listing, selection, and streams that come back by themselves.

PortAudio is not safe to poke from several threads at once and enumerates devices only when it
initialises, so one :class:`AudioBackend` holds the only ``pyaudio.PyAudio`` instance and a lock, and
re-initialises it (when no stream is open) to see a device that was plugged in later.

On a PulseAudio/PipeWire desktop PortAudio lists only ALSA's ``pulse`` and ``default``; the sound
server's own sinks and sources (:mod:`voicemoded.audio.pulse`) are listed beside them, chosen by name or
part of their description, and reached through ALSA's ``pulse`` device (a :class:`Route`).

Streams run in callback mode: PortAudio's own thread hands us blocks and we never block the event loop.
The microphone (:class:`Microphone`) is one asyncio task with a reconnect loop, like a satellite's mic
task: if the device vanishes or stops delivering audio, it is reopened with backoff while the
subscribers keep waiting, instead of failing the conversation.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pyaudio
import soxr
import structlog

from voicemoded.api.errors import FailedPrecondition, NotFound
from voicemoded.audio.format import AudioFormat
from voicemoded.audio.pulse import ServerDevice, SoundServer

log = structlog.get_logger(__name__)

Direction = Literal["input", "output"]

_ENV_HINT = {"input": "VOICEMODE_INPUT_DEVICE", "output": "VOICEMODE_OUTPUT_DEVICE"}
_WHAT = {"input": "connect a microphone", "output": "connect a speaker or headphones"}


class NoDevice(FailedPrecondition):
    """There is no usable audio device in one direction; the message says which and what to do."""

    def __init__(self, direction: Direction, detail: str) -> None:
        super().__init__(
            f"no {direction} device: {detail}",
            hint=f"{_WHAT[direction]} or set {_ENV_HINT[direction]}; `voicemodectl devices` lists them",
            fields={"direction": direction},
        )
        self.direction = direction


@dataclass(frozen=True, slots=True)
class DeviceInfo:
    """One PortAudio device as the user sees it in ``voicemodectl devices``."""

    index: int
    name: str
    max_input_channels: int
    max_output_channels: int
    default_rate: int
    host_api: str
    is_default_input: bool = False
    is_default_output: bool = False
    description: str = ""
    """The sound server's description of one of its devices; empty for PortAudio's own."""
    server_device: bool = False
    """A sink or source of the sound server (index -1): streams reach it through ALSA's ``pulse``."""

    def usable(self, direction: Direction) -> bool:
        return (self.max_input_channels if direction == "input" else self.max_output_channels) > 0

    @classmethod
    def from_server(cls, d: ServerDevice, host_api: str) -> DeviceInfo:
        inputs, outputs = (d.channels, 0) if d.direction == "input" else (0, d.channels)
        return cls(
            -1, d.name, inputs, outputs, d.rate, host_api,
            is_default_input=d.is_default and d.direction == "input",
            is_default_output=d.is_default and d.direction == "output",
            description=d.description, server_device=True,
        )  # fmt: skip


_ROUTE_ENV = {"input": "PULSE_SOURCE", "output": "PULSE_SINK"}
ROUTE_DEVICES = ("pulse", "default")
"""PortAudio devices a stream to a sound-server device is opened on, in order of preference."""


@dataclass(frozen=True, slots=True)
class Route:
    """Where a stream goes: the PortAudio device it opens and, for a sound-server device, that device."""

    direction: Direction
    device: DeviceInfo
    target: DeviceInfo | None = None

    @property
    def name(self) -> str:
        return self.target.name if self.target is not None else self.device.name

    @property
    def env(self) -> dict[str, str]:
        """What libpulse reads while the stream connects, to send it to ``target``."""
        return {_ROUTE_ENV[self.direction]: self.target.name} if self.target is not None else {}


def environment_target(direction: Direction) -> str:
    """The sound-server device this process's own environment sends unrouted streams to ("" if none)."""
    return os.environ.get(_ROUTE_ENV[direction], "")


@contextlib.contextmanager
def _environment(values: Mapping[str, str]) -> Iterator[None]:
    saved = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _quiet_stderr(enabled: bool) -> Iterator[None]:
    """Hide the JACK/ALSA probe chatter PortAudio prints to fd 2 while it enumerates devices."""
    if not enabled:
        yield
        return
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


CLOSE_WAIT_S = 3.0
"""The most a stream's close may take before it is left to its own thread."""


class AudioBackend:
    """The daemon's one PortAudio session.

    ``quiet`` silences PortAudio's probe output during (re)initialisation; the daemon passes True so
    its log is not full of JACK messages on machines without JACK.
    """

    def __init__(self, *, quiet: bool = True, server: SoundServer | None = None) -> None:
        self._quiet = quiet
        self.server = server if server is not None else SoundServer()
        self.lock = threading.RLock()
        self._pa: pyaudio.PyAudio | None = None
        self._open_streams = 0

    @property
    def pa(self) -> pyaudio.PyAudio:
        with self.lock:
            if self._pa is None:
                with _quiet_stderr(self._quiet):
                    self._pa = pyaudio.PyAudio()
            return self._pa

    @property
    def open_streams(self) -> int:
        """Streams open right now (the devices are free when this is 0)."""
        return self._open_streams

    def refresh(self) -> bool:
        """Re-enumerate devices; only possible while no stream is open (PortAudio invalidates them)."""
        with self.lock:
            if self._open_streams or self._pa is None:
                return self._pa is None
            self._pa.terminate()
            self._pa = None
            _ = self.pa
            return True

    def close(self) -> None:
        with self.lock:
            if self._pa is not None:
                self._pa.terminate()
                self._pa = None

    def devices(self) -> list[DeviceInfo]:
        with self.lock:
            pa = self.pa
            default_in = _default_index(pa, "input")
            default_out = _default_index(pa, "output")
            out = []
            for i in range(pa.get_device_count()):
                d = pa.get_device_info_by_index(i)
                out.append(
                    DeviceInfo(
                        index=i,
                        name=str(d["name"]),
                        max_input_channels=int(d["maxInputChannels"]),
                        max_output_channels=int(d["maxOutputChannels"]),
                        default_rate=int(d["defaultSampleRate"]),
                        host_api=str(pa.get_host_api_info_by_index(int(d["hostApi"]))["name"]),
                        is_default_input=i == default_in,
                        is_default_output=i == default_out,
                    )
                )
            return out

    def select(self, direction: Direction, spec: str | int | None = None) -> DeviceInfo:
        """Pick a device by index, by exact name, by name substring, or the system default.

        An exact name wins over a substring match so "mic" can be told apart from "mic_sink".
        """
        devices = [d for d in self.devices() if d.usable(direction)]
        if not devices:
            raise NoDevice(direction, "the system reports none")
        if spec is None or spec == "" or spec == "default":
            for d in devices:
                if d.is_default_input if direction == "input" else d.is_default_output:
                    return d
            return devices[0]
        if isinstance(spec, int) or spec.isdigit():
            idx = int(spec)
            for d in devices:
                if d.index == idx:
                    return d
            raise NoDevice(direction, f"no {direction} device has index {idx}")
        exact = [d for d in devices if d.name.lower() == spec.lower()]
        partial = [d for d in devices if spec.lower() in d.name.lower()]
        if exact or partial:
            return (exact or partial)[0]
        raise _not_found(direction, spec, devices)

    def server_devices(self) -> list[DeviceInfo]:
        """The sound server's sinks and sources (none without a server to ask)."""
        view = self.server.view()
        return [] if view is None else [DeviceInfo.from_server(d, view.label) for d in view.devices]

    def all_devices(self) -> list[DeviceInfo]:
        """What ``voicemodectl devices`` lists: the sound server's devices, then PortAudio's."""
        return [*self.server_devices(), *self.devices()]

    def resolve(self, direction: Direction, spec: str | int | None = None) -> Route:
        """Where a stream named by ``spec`` goes.

        The default, an index, or a PortAudio device's exact name keep to PortAudio (as :meth:`select`);
        otherwise the sound server's devices are matched by exact name, exact description, then part of
        either (microphones before sink monitors), before part of a PortAudio name: on a desktop the
        server's device is the one that works, its ALSA card being the server's.
        """
        if spec is None or isinstance(spec, int) or spec in ("", "default") or spec.isdigit():
            return Route(direction, self.select(direction, spec))
        devices = [d for d in self.devices() if d.usable(direction)]
        wanted = spec.lower()
        for d in devices:
            if d.name.lower() == wanted:
                return Route(direction, d)
        served = [d for d in self.server_devices() if d.usable(direction)]
        target = _match_server(served, wanted)
        if target is not None:
            return Route(direction, _route_device(direction, devices), target)
        for d in devices:
            if wanted in d.name.lower():
                return Route(direction, d)
        if not devices and not served:
            raise NoDevice(direction, "the system reports none")
        raise _not_found(direction, spec, [*served, *devices])

    def present(self, route: Route) -> bool:
        """Whether a routed stream's sound-server device is still there (the server moves the streams
        of a device that goes away to another one, so the stream itself goes on)."""
        if route.target is None:
            return True
        names = self.server.names(route.direction)
        return names is None or route.target.name in names

    def open_stream(self, route: Route | None = None, **kwargs: Any) -> pyaudio.Stream:
        """``pyaudio.PyAudio.open``, sent to ``route``'s sound-server device when it has one."""
        with self.lock, _environment(route.env if route is not None else {}):
            stream = self.pa.open(**kwargs)
            self._open_streams += 1
            return stream

    def close_stream(self, stream: pyaudio.Stream, *, abort: bool = True) -> None:
        """Stop and close; ``abort`` drops buffered audio at once (what cancellation wants).

        Bounded: PortAudio's close of a stream whose sound server died under it can block for good
        (its ALSA thread stuck in the dead server's plugin). After :data:`CLOSE_WAIT_S` the stream is
        left to its thread, said in the log, and the session goes on under a fresh lock, so the daemon
        and the next stream are not held by it. The stream still counts as open: PortAudio is never
        re-initialised under a close in progress.
        """
        lock, closed = self.lock, threading.Event()

        def close() -> None:
            with lock:
                try:
                    if abort:
                        # PyAudio has no abort(); closing an active stream aborts it in Pa_CloseStream.
                        stream.close()
                    else:
                        stream.stop_stream()
                        stream.close()
                except OSError as exc:
                    log.warning("audio.stream_close_failed", error=str(exc))
                finally:
                    self._open_streams = max(0, self._open_streams - 1)
                    closed.set()

        threading.Thread(target=close, name="audio-close", daemon=True).start()
        if closed.wait(CLOSE_WAIT_S):
            return
        log.error(
            "audio.stream_close_hung",
            waited_s=CLOSE_WAIT_S,
            hint="the sound server went away under an open stream; the stream is left behind "
            "(`voicemodectl daemon restart` frees it)",
        )
        if self.lock is lock:
            self.lock = threading.RLock()

    def supports_rate(self, device: DeviceInfo, direction: Direction, rate: int, channels: int) -> bool:
        with self.lock:
            kwargs: dict[str, Any] = {"rate": rate}
            if direction == "input":
                kwargs |= {
                    "input_device": device.index,
                    "input_channels": channels,
                    "input_format": pyaudio.paInt16,
                }
            else:
                kwargs |= {
                    "output_device": device.index,
                    "output_channels": channels,
                    "output_format": pyaudio.paInt16,
                }
            try:
                return bool(self.pa.is_format_supported(**kwargs))
            except ValueError:
                return False


def _match_server(devices: list[DeviceInfo], wanted: str) -> DeviceInfo | None:
    """Exact name, exact description, then part of either; a real microphone before a sink's monitor."""
    ranked = sorted(devices, key=lambda d: d.name.endswith(".monitor"))
    for test in (
        lambda d: d.name.lower() == wanted,
        lambda d: d.description.lower() == wanted,
        lambda d: wanted in d.name.lower() or wanted in d.description.lower(),
    ):
        for d in ranked:
            if test(d):
                return d
    return None


def _route_device(direction: Direction, devices: list[DeviceInfo]) -> DeviceInfo:
    """The PortAudio device that reaches the sound server (ALSA's ``pulse``, else ``default``)."""
    for name in ROUTE_DEVICES:
        for d in devices:
            if d.name == name:
                return d
    raise NoDevice(
        direction,
        "PortAudio lists no ALSA 'pulse' or 'default' device to reach the sound server's devices through",
    )


def _not_found(direction: Direction, spec: str, devices: list[DeviceInfo]) -> NotFound:
    names = ", ".join(
        f"{d.name} ({d.description})" if d.description and d.description != d.name else d.name
        for d in devices
    )
    return NotFound(
        f"no {direction} device matches {spec!r}",
        hint=f"available: {names}; `voicemodectl devices` lists them",
        fields={"direction": direction, "device": spec},
    )


def _default_index(pa: pyaudio.PyAudio, direction: Direction) -> int:
    try:
        info = (
            pa.get_default_input_device_info()
            if direction == "input"
            else pa.get_default_output_device_info()
        )
    except OSError:
        return -1
    return int(info["index"])


class RateConverter:
    """Streaming int16 rate + channel conversion with soxr, filter state kept across blocks."""

    def __init__(self, src: AudioFormat, dst: AudioFormat) -> None:
        self.src, self.dst = src, dst
        self._stream = (
            soxr.ResampleStream(src.rate, dst.rate, dst.channels, dtype="int16", quality="HQ")
            if src.rate != dst.rate
            else None
        )

    def process(self, pcm: bytes, *, last: bool = False) -> bytes:
        if self._stream is None and self.src.channels == self.dst.channels:
            return pcm
        frames = np.frombuffer(pcm, dtype="<i2").reshape(-1, self.src.channels)
        if self.src.channels != self.dst.channels:
            if self.dst.channels == 1:
                frames = frames.mean(axis=1).round().astype(np.int16).reshape(-1, 1)
            else:
                frames = np.repeat(frames[:, :1], self.dst.channels, axis=1)
        if self._stream is None:
            return frames.astype("<i2").tobytes()
        out = self._stream.resample_chunk(np.ascontiguousarray(frames), last=last)
        return np.asarray(out, dtype="<i2").tobytes()


def open_format(
    backend: AudioBackend, device: DeviceInfo, direction: Direction, wanted: AudioFormat
) -> AudioFormat:
    """The format to open the device in: the one we want if the device takes it, else its own rate.

    PulseAudio takes any rate; a raw ALSA ``hw:`` device often takes only 44.1/48 kHz and 1-2 channels,
    in which case soxr does the conversion on our side.
    """
    channels = wanted.channels
    limit = device.max_input_channels if direction == "input" else device.max_output_channels
    if limit and channels > limit:
        channels = limit
    if backend.supports_rate(device, direction, wanted.rate, channels):
        return AudioFormat(rate=wanted.rate, width=2, channels=channels)
    if backend.supports_rate(device, direction, device.default_rate, channels):
        return AudioFormat(rate=device.default_rate, width=2, channels=channels)
    raise FailedPrecondition(
        f"{direction} device {device.name!r} accepts neither {wanted.rate} Hz nor {device.default_rate} Hz",
        hint="choose another device with VOICEMODE_INPUT_DEVICE / VOICEMODE_OUTPUT_DEVICE",
    )

"""A real livekit-server for tests and benchmarks, with the config and key the daemon would generate,
and the person who joins its rooms (:class:`Person`, the LiveKit rtc SDK).

The binary is found the way the daemon finds it (``VOICEMODE_LIVEKIT_SERVER_PATH``, PATH, the pinned
build cache); where there is none, :func:`absent_reason` says what would provide one.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import os
import random
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from voicemoded.livekit.binary import PINNED_VERSION, cache_folder, find_server, pinned_binary
from voicemoded.livekit.config import CONFIG_FILE_NAME, ServerConfig, write_config
from voicemoded.livekit.credentials import KEYS_FILE_NAME, LiveKitAccess, ensure_keys, ensure_private_folder
from voicemoded.testing.endpoint import RATE as ENDPOINT_RATE
from voicemoded.testing.endpoint import SpeechEndpoint
from voicemoded.testing.ports import free_port
from voicemoded.testing.processes import stop_group
from voicemoded.testing.sounds import riff

START_TIMEOUT = 20.0
RTC_PORTS = 20
"""UDP ports per test server: a handful of participants each take one."""


@dataclass(frozen=True, slots=True)
class LiveKitServer:
    """A running livekit-server and what a client needs to use it."""

    url: str
    """``ws://127.0.0.1:<port>``."""
    api_key: str
    api_secret: str = field(repr=False)
    port: int
    process: subprocess.Popen[bytes]
    log: Path
    """The server's stdout and stderr."""
    config: Path
    rtc_ports: tuple[int, int]

    @property
    def http_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def access(self) -> LiveKitAccess:
        """What the daemon's room calls take, for this server."""
        return LiveKitAccess(url=self.url, api_key=self.api_key, api_secret=self.api_secret, managed=True)

    def output(self) -> str:
        return self.log.read_text(errors="replace") if self.log.is_file() else ""


def server_binary() -> Path | None:
    """The livekit-server the daemon would run here, or None."""
    return find_server(
        os.environ.get("VOICEMODE_LIVEKIT_SERVER_PATH", ""),
        cache_folder(os.environ.get("VOICEMODE_LIVEKIT_CACHE", "")),
    )


def absent_reason() -> str:
    """Why there is no server here, for a test's skip message."""
    cache = cache_folder(os.environ.get("VOICEMODE_LIVEKIT_CACHE", ""))
    return (
        "no livekit-server on this machine (not at VOICEMODE_LIVEKIT_SERVER_PATH, not on PATH, not built in "
        f"{pinned_binary(cache).parent}); with Go >= 1.26 `voicemodectl service install livekit` or "
        f"scripts/setup.sh builds {PINNED_VERSION}"
    )


def free_udp_range(width: int = RTC_PORTS) -> tuple[int, int]:
    """``width`` consecutive UDP ports on 127.0.0.1 that nothing holds right now."""
    for _ in range(200):
        start = random.randrange(20000, 32000)
        if all(_udp_free(port) for port in range(start, start + width)):
            return start, start + width - 1
    raise RuntimeError(f"no {width} consecutive free UDP ports found")


def _udp_free(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


@contextlib.contextmanager
def running_livekit(folder: Path, *, port: int | None = None, redis: str = "") -> Iterator[LiveKitServer]:
    """Start livekit-server on 127.0.0.1 from a generated config in ``folder``; stop it on exit.

    Servers started in one folder share its key, as the nodes of one deployment (sharing ``redis``) must.
    """
    binary = server_binary()
    if binary is None:
        raise FileNotFoundError(absent_reason())
    ensure_private_folder(folder)
    key, secret = ensure_keys(folder / KEYS_FILE_NAME)
    http_port = port or free_port()
    rtc_ports = free_udp_range()
    config = ServerConfig(port=http_port, key_file=folder / KEYS_FILE_NAME, rtc_ports=rtc_ports, redis=redis)
    config_path = folder / f"{http_port}-{CONFIG_FILE_NAME}"
    write_config(config_path, config)
    log = folder / f"livekit-{http_port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(binary), "--config", str(config_path)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    server = LiveKitServer(
        url=f"ws://127.0.0.1:{http_port}",
        api_key=key,
        api_secret=secret,
        port=http_port,
        process=process,
        log=log,
        config=config_path,
        rtc_ports=rtc_ports,
    )
    try:
        wait_answering(server)
        yield server
    finally:
        stop_group(process)


def wait_answering(server: LiveKitServer, timeout: float = START_TIMEOUT) -> None:
    """Until ``GET /`` says OK (the node is registered); the server's output if it exits or never does."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise RuntimeError(f"livekit-server exited with {server.process.returncode}:\n{server.output()}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(server.http_url + "/", timeout=1.0).text == "OK":
                return
        time.sleep(0.05)
    raise TimeoutError(f"livekit-server did not answer within {timeout:g} s:\n{server.output()}")


# -- the person in a room ---------------------------------------------------------------------------

ROOM_RATE = 48_000
"""What the person hears and sends: WebRTC's own rate, so the SDK resamples nothing."""
ROOM_FRAME = 480
"""10 ms frames, the unit WebRTC works in."""
LOUD = 1000
"""A frame whose peak passes this is speech or a tone, not silence or the decoder's comfort noise."""


@dataclass(frozen=True, slots=True)
class HeardFrame:
    """One frame as the person received it."""

    at: float
    """Arrival (monotonic)."""
    samples: np.ndarray
    peak: int
    track: str
    """The track it came on: the assistant publishes a new one each turn."""
    sender: str
    """The identity of the participant who published it."""

    @property
    def seconds(self) -> float:
        return len(self.samples) / ROOM_RATE


class Person:
    """A participant who hears every audio track in the room and answers into their own microphone.

    Every frame heard is kept with its arrival, per track; a track stops being heard when it is
    unsubscribed (the assistant left), as a browser stops playing it. ``subscribe=False`` joins without
    subscribing to anything, as a client that only talks.
    """

    def __init__(self, url: str, token: str, *, subscribe: bool = True) -> None:
        from livekit import rtc

        self.url, self._token, self._subscribe = url, token, subscribe
        self._creates: tuple[LiveKitAccess, str] | None = None
        self.room = rtc.Room()
        self.source = rtc.AudioSource(ROOM_RATE, 1)
        self._frames: list[HeardFrame] = []
        self._lock = threading.Lock()
        """Frames are added on the room's event loop; a benchmark reads them from another thread."""
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self.reconnects = 0
        """How often the SDK got a dropped connection back (the server restarted, say)."""

    @classmethod
    def joining(cls, server: LiveKitServer, room: str, identity: str = "person", **options: Any) -> Person:
        """The person joining ``room`` on ``server`` (created if it does not exist yet)."""
        person = cls(server.url, join_token(server, room, identity), **options)
        person._creates = (server.access, room)
        return person

    async def __aenter__(self) -> Person:
        from livekit import rtc

        from voicemoded.livekit.rooms import RoomClient

        if self._creates is not None:
            access, room = self._creates
            await RoomClient(access).create(room)
        self.room.on("track_subscribed", self._subscribed)
        self.room.on("track_unsubscribed", self._unsubscribed)
        self.room.on("reconnected", self._reconnected)
        await self.room.connect(self.url, self._token, rtc.RoomOptions(auto_subscribe=self._subscribe))
        track = rtc.LocalAudioTrack.create_audio_track("mic", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        await self.room.local_participant.publish_track(track, options)
        return self

    async def __aexit__(self, *exc: object) -> None:
        for task in self._tasks.values():
            task.cancel()
        await asyncio.gather(*self._tasks.values(), return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(self.room.disconnect(), 5)
        await self.source.aclose()

    @property
    def connected(self) -> bool:
        from livekit import rtc

        return self.room.connection_state == rtc.ConnectionState.CONN_CONNECTED

    # -- hearing ------------------------------------------------------------------------------------

    def _subscribed(self, track: Any, _publication: object, sender: Any) -> None:
        self._tasks[track.sid] = asyncio.create_task(self._hear(track, sender.identity))

    def _reconnected(self) -> None:
        self.reconnects += 1

    def _unsubscribed(self, track: Any, *_: object) -> None:
        task = self._tasks.pop(track.sid, None)
        if task is not None:
            task.cancel()

    async def _hear(self, track: Any, sender: str) -> None:
        from livekit import rtc

        async for event in rtc.AudioStream(track, sample_rate=ROOM_RATE, num_channels=1):
            samples = np.frombuffer(event.frame.data, dtype=np.int16).copy()
            peak = int(np.abs(samples.astype(np.int32)).max(initial=0))
            with self._lock:
                self._frames.append(HeardFrame(time.monotonic(), samples, peak, track.sid, sender))

    def frames(self, since: float = 0.0, until: float = math.inf) -> list[HeardFrame]:
        """The frames that arrived between ``since`` and ``until`` (monotonic)."""
        with self._lock:
            return [f for f in self._frames if since <= f.at <= until]

    def voiced_seconds(self) -> float:
        return sum(f.seconds for f in self.frames() if f.peak > LOUD)

    def heard_from(self, sender: str) -> bool:
        return any(f.peak > LOUD and f.sender == sender for f in self.frames())

    def last_track(self) -> np.ndarray:
        """Everything heard on the last track that carried sound, in one array."""
        frames = self.frames()
        voiced = [f.track for f in frames if f.peak > LOUD]
        if not voiced:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate([f.samples for f in frames if f.track == voiced[-1]])

    async def message_heard(self, timeout: float = 15.0, quiet_s: float = 0.4) -> None:
        """Until sound came and then stopped for ``quiet_s``."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            voiced = [f.at for f in self.frames() if f.peak > LOUD]
            if voiced and time.monotonic() - voiced[-1] > quiet_s:
                return
            await asyncio.sleep(0.05)
        raise AssertionError(f"the message never ended (heard {self.voiced_seconds():.2f} s voiced)")

    # -- speaking -----------------------------------------------------------------------------------

    async def say(
        self, pcm: bytes, rate: int, *, silence_s: float = 0.0, hush: Callable[[], bool] | None = None
    ) -> float:
        """Send ``pcm`` (16-bit mono at ``rate``), then silence for ``silence_s`` or until ``hush()``, as
        a microphone goes on sending after the words; return when the last sample of ``pcm`` left.

        The source queues ahead of real time, so ``pcm`` has left when its queue has played out.
        """
        import soxr
        from livekit import rtc

        samples = np.frombuffer(pcm, dtype=np.int16)
        if len(samples) and rate != ROOM_RATE:
            samples = soxr.resample(samples, rate, ROOM_RATE).astype(np.int16)
        padding = -len(samples) % ROOM_FRAME
        samples = np.concatenate([samples, np.zeros(padding, dtype=np.int16)])
        for at in range(0, len(samples), ROOM_FRAME):
            frame = samples[at : at + ROOM_FRAME].tobytes()
            await self.source.capture_frame(rtc.AudioFrame(frame, ROOM_RATE, 1, ROOM_FRAME))
        await self.source.wait_for_playout()
        left = time.monotonic() - padding / ROOM_RATE
        silence = rtc.AudioFrame(bytes(ROOM_FRAME * 2), ROOM_RATE, 1, ROOM_FRAME)
        deadline = time.monotonic() + silence_s
        while time.monotonic() < deadline and not (hush is not None and hush()):
            await self.source.capture_frame(silence)
        self.source.clear_queue()
        return left

    @contextlib.asynccontextmanager
    async def sounding(self, hz: float = 440.0, longest_s: float = 60.0) -> AsyncIterator[None]:
        """This person sends a steady tone until the block ends."""
        t = np.arange(int(ROOM_RATE * longest_s)) / ROOM_RATE
        pcm = (np.sin(2 * np.pi * hz * t) * 10000).astype(np.int16).tobytes()
        player = asyncio.create_task(self.say(pcm, ROOM_RATE))
        try:
            yield
        finally:
            player.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await player


def join_token(server: LiveKitServer, room: str, identity: str) -> str:
    """A token that lets ``identity`` join ``room`` on ``server``."""
    from livekit import api

    grants = api.VideoGrants(room_join=True, room=room)
    access = api.AccessToken(server.api_key, server.api_secret)
    return access.with_identity(identity).with_grants(grants).to_jwt()


# -- a message whose every stretch says where it is -------------------------------------------------


def chirp(seconds: float, rate: int, low: float = 300.0, high: float = 3000.0) -> bytes:
    """``seconds`` of a sine rising from ``low`` to ``high`` Hz, 16-bit mono PCM at ``rate``."""
    t = np.arange(int(rate * seconds)) / rate
    phase = 2 * np.pi * (low * t + (high - low) * t * t / (2 * seconds))
    return (8000 * np.sin(phase)).astype("<i2").tobytes()


class ChirpEndpoint(SpeechEndpoint):
    """A speech endpoint whose speech is a chirp instead of a steady tone: any stretch of what a listener
    heard tells where in the message it was, so a clipped start or end shows as such."""

    def set_tone(self, seconds: float) -> None:
        pcm = chirp(seconds, ENDPOINT_RATE)
        self._audio.update(pcm=pcm, wav=riff(pcm, ENDPOINT_RATE))


def where_in_chirp(heard: np.ndarray, seconds: float, window_s: float = 0.03) -> tuple[float, float]:
    """Where in a chirp of ``seconds`` the sound ``heard`` (at ``ROOM_RATE``) begins and ends.

    Its first and last ``window_s`` are found in the chirp by cross-correlation, so neither the silence
    around it nor the receiver's jitter buffer stretching it in time moves the answer.
    """
    sent = np.frombuffer(chirp(seconds, ROOM_RATE), dtype=np.int16).astype(np.float64)
    loud = np.flatnonzero(np.abs(heard.astype(np.int32)) > LOUD)
    window = int(ROOM_RATE * window_s)
    if len(loud) == 0 or loud[-1] + 1 - loud[0] < window:
        raise AssertionError(f"no stretch of the chirp was heard ({len(loud)} loud samples)")
    first, last = int(loud[0]), int(loud[-1]) + 1

    def offset(part: np.ndarray) -> float:
        return int(np.argmax(np.correlate(sent, part.astype(np.float64), "valid"))) / ROOM_RATE

    return offset(heard[first : first + window]), offset(heard[last - window : last]) + window_s

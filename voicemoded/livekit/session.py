"""The assistant in one LiveKit room: its voice published through an ``AudioSource``, the person's voice
heard through an ``AudioStream``, each shaped like the local speaker and microphone.

The converse loop plays into :class:`RoomSpeaker` and subscribes to :class:`RoomMicrophone` exactly as it
does with the local devices, so endpointing, end of turn, STT, the spool and the journal run unchanged.
The room microphone delivers a steady clock of 16 kHz audio: while the person sends nothing (no track yet,
muted) it delivers silence, so the endpointer's silence bounds hold as they do on a real microphone.

The person hears the whole message: its first frame waits (a bounded while) until their client has
subscribed to the assistant's freshly published track, since the server forwards nothing before that,
and the assistant leaves the room only once its last frame has had the time to play on their side.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from typing import TYPE_CHECKING, Any

import structlog

from voicemoded.api.errors import Unavailable, VoicemodeError, quote
from voicemoded.audio.format import SPEECH_FORMAT, AudioChunk, AudioFormat
from voicemoded.audio.microphone import MicSubscription
from voicemoded.audio.playback import BargeIn, PlaybackResult, StopReason

if TYPE_CHECKING:
    from livekit import rtc

log = structlog.get_logger(__name__)

ASSISTANT = "voicemode-assistant"
"""The identity the daemon joins a room with; every other participant is a person."""

ROOM_FORMAT = AudioFormat(rate=48_000, width=2, channels=1)
"""What the assistant publishes: WebRTC's own rate, so the SDK resamples nothing."""
FRAME_S = 0.01
"""One frame handed to the source: 10 ms, the unit WebRTC works in."""
GAP_S = 0.1
"""No audio from the person for this long is filled with silence (the microphone's clock keeps going)."""
RECONNECT_S = 10.0
"""How long the SDK may try to get a dropped connection back before the turn ends with an error. The
SDK itself keeps trying for longer; a supervised server is usually back in a second or two, but a
loaded machine has taken over three, and a turn given up then loses what the person was about to say."""
SUBSCRIBE_WAIT_S = 1.0
"""How long the first frame waits for the person's client to subscribe to the assistant's new track
(usually a tenth of a second after joining); a client that never does is logged, not waited for again."""
LINGER_S = 0.2
"""How long the assistant stays after its last frame left: the person's client still holds that audio
in its jitter buffer, and the assistant leaving unsubscribes the track with whatever it held."""


def room_lost(room: str, reason: str) -> Unavailable:
    return Unavailable(
        f"the connection to LiveKit room {quote(room)} was lost: {reason}",
        hint="the next turn connects again; `voicemodectl service status livekit` shows the local server",
        fields={"room": room},
    )


class RoomSpeaker:
    """Plays a stream of audio into the assistant's published track."""

    def __init__(
        self,
        source: rtc.AudioSource,
        lost: Callable[[], VoicemodeError | None],
        heard: Callable[[], Awaitable[None]] | None = None,
    ) -> None:
        self._source = source
        self._lost = lost
        self._heard = heard
        self.drained_at: float | None = None
        """When the last frame of the last completed playback left (monotonic)."""

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
        """Capture ``source`` into the room and return once the source has drained (the last frame was
        sent). ``started_at``/``ended_at`` are when the first frame was captured and the last one left.

        Chimes and barge-in belong to a person next to a speaker; in a room their own client plays what
        it wants, so both are not used here.
        """
        from livekit import rtc

        from voicemoded.audio.resample import Resampler

        frame_bytes = ROOM_FORMAT.bytes_for(FRAME_S)
        pending = bytearray()
        resampler: Resampler | None = None
        started_at: float | None = None
        sent = 0
        reason: StopReason = "completed"

        async def send(pcm: bytes) -> None:
            nonlocal started_at, sent
            if started_at is None and self._heard is not None:
                await self._heard()  # what is sent before the person subscribes never reaches them
            samples = len(pcm) // ROOM_FORMAT.width
            await self._source.capture_frame(rtc.AudioFrame(pcm, ROOM_FORMAT.rate, 1, samples))
            sent += len(pcm)
            if started_at is None:
                started_at = time.monotonic()
                if on_first_audio is not None:
                    on_first_audio(started_at)

        try:
            async for chunk in _aiter(source):
                if (error := self._lost()) is not None:
                    raise error
                if stop is not None and stop.is_set():
                    reason = "stopped"
                    break
                if resampler is None or resampler.src != chunk.format:
                    if resampler is not None:
                        pending += resampler.flush()
                    resampler = Resampler(chunk.format, ROOM_FORMAT)
                pending += resampler.process(chunk.audio)
                while len(pending) >= frame_bytes:
                    await send(bytes(pending[:frame_bytes]))
                    del pending[:frame_bytes]
            if reason == "completed" and resampler is not None:
                pending += resampler.flush()
                if pending:
                    await send(bytes(pending).ljust(frame_bytes, b"\0"))
            await self._source.wait_for_playout()
        except BaseException:
            self._source.clear_queue()
            raise
        if (error := self._lost()) is not None:
            raise error
        if started_at is None:
            return PlaybackResult("empty")
        self.drained_at = time.monotonic()
        return PlaybackResult(reason, started_at, self.drained_at, sent / ROOM_FORMAT.bytes_for(1.0))


class RoomMicrophone:
    """The person's voice as microphone subscriptions of 16 kHz mono chunks."""

    def __init__(self, room: str) -> None:
        self._room = room
        self._subs: set[MicSubscription] = set()
        self._heard_until = time.monotonic()
        self._error: VoicemodeError | None = None
        self.paused = False
        """While the connection is down no silence is made up."""

    async def subscribe(self, maxsize: int = 3000) -> MicSubscription:
        sub = MicSubscription(self, maxsize)
        if self._error is not None:
            sub.fail(self._error)
        self._subs.add(sub)
        return sub

    async def _unsubscribe(self, sub: MicSubscription) -> None:
        """A subscription closing (this is a :class:`~voicemoded.audio.microphone.ChunkSource`)."""
        self._subs.discard(sub)

    def offer(self, pcm: bytes, fmt: AudioFormat = SPEECH_FORMAT) -> None:
        now = time.monotonic()
        chunk = AudioChunk(pcm, fmt, max(self._heard_until, now - fmt.seconds_for(len(pcm))))
        self._heard_until = chunk.timestamp + fmt.seconds_for(len(pcm))
        for sub in self._subs:
            sub.offer(chunk)

    def fill(self) -> None:
        """Silence for the time nothing came, so a quiet or absent person still passes time."""
        gap = time.monotonic() - self._heard_until
        if gap >= GAP_S and not self.paused:
            self.offer(bytes(SPEECH_FORMAT.bytes_for(gap)))

    def fail(self, error: VoicemodeError) -> None:
        self._error = error
        for sub in self._subs:
            sub.fail(error)


class RoomSession:
    """One connection of the assistant to one room, for one turn."""

    def __init__(self, room: str) -> None:
        from livekit import rtc

        self.name = room
        self.room = rtc.Room()
        self.source = rtc.AudioSource(ROOM_FORMAT.rate, ROOM_FORMAT.channels)
        self.microphone = RoomMicrophone(room)
        self.speaker = RoomSpeaker(self.source, lambda: self._lost, self.subscribed)
        self._publication: rtc.LocalTrackPublication | None = None
        self._subscription_waited = False
        self.person: str | None = None
        self._lost: VoicemodeError | None = None
        self._present = asyncio.Event()
        self.gone = asyncio.Event()
        """Set when the person leaves: the turn ends its listening with what it heard."""
        self._hearing = False
        self._giving_up: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def connect(self, url: str, token: str, *, attempts: int = 2) -> None:
        """Join and publish the assistant's track; a failed connection is tried once more."""
        from livekit import rtc

        self.room.on("participant_connected", self._joined)
        self.room.on("participant_disconnected", self._left)
        self.room.on("track_subscribed", self._track)
        self.room.on("disconnected", self._disconnected)
        self.room.on("reconnecting", self._reconnecting)
        self.room.on("reconnected", self._reconnected)
        for attempt in range(attempts):
            try:
                await self.room.connect(url, token, rtc.RoomOptions(auto_subscribe=True))
                break
            except rtc.ConnectError as exc:
                if attempt + 1 == attempts:
                    raise Unavailable(
                        f"could not join LiveKit room {quote(self.name)} at {url}: {exc.message}",
                        hint="check that the server runs (`voicemodectl service status livekit`) and "
                        "that its UDP/TCP media ports are reachable",
                        fields={"room": self.name, "url": url},
                    ) from None
                log.warning("livekit.connect_retry", room=self.name, error=exc.message)
                await asyncio.sleep(0.3)
        track = rtc.LocalAudioTrack.create_audio_track("assistant", self.source)
        options = rtc.TrackPublishOptions(source=rtc.TrackSource.SOURCE_MICROPHONE)
        self._publication = await self.room.local_participant.publish_track(track, options)
        for participant in self.room.remote_participants.values():
            self._joined(participant)
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    self._track(publication.track, publication, participant)
        self._spawn(self._clock())
        log.info("livekit.joined", room=self.name, person=self.person)

    async def wait_person(self, timeout: float) -> None:
        """Return once a person is in the room; nobody within ``timeout`` seconds is an error."""
        try:
            async with asyncio.timeout(timeout):
                await self._present.wait()
        except TimeoutError:
            raise Unavailable(
                f"nobody joined LiveKit room {quote(self.name)} within {timeout:g} s",
                hint="join the room first (`voicemodectl room token ROOM IDENTITY` makes a join token)",
                fields={"room": self.name},
            ) from None

    async def subscribed(self) -> None:
        """Until someone subscribed to the assistant's track, at most ``SUBSCRIBE_WAIT_S`` once a turn.

        The track is published as the turn joins; the person's client subscribes a moment later, and
        the server forwards nothing to them before that, so a message started at once loses its start.
        """
        if self._publication is None or self._subscription_waited:
            return
        self._subscription_waited = True
        started = time.monotonic()
        try:
            async with asyncio.timeout(SUBSCRIBE_WAIT_S):
                await self._publication.wait_for_subscription()
        except TimeoutError:
            log.warning(
                "livekit.not_subscribed", room=self.name, person=self.person, waited_s=SUBSCRIBE_WAIT_S
            )
            return
        waited = round((time.monotonic() - started) * 1000)
        log.debug("livekit.subscribed", room=self.name, person=self.person, waited_ms=waited)

    async def aclose(self) -> None:
        """Leave the room, once the person has had the time to hear the last of the assistant."""
        drained = self.speaker.drained_at
        if drained is not None and self._lost is None:
            await asyncio.sleep(max(0.0, drained + LINGER_S - time.monotonic()))
        if self._giving_up is not None:
            self._giving_up.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await self.room.disconnect()
        with contextlib.suppress(Exception):
            await self.source.aclose()

    # -- the room's events --------------------------------------------------------------------------

    def _joined(self, participant: Any) -> None:
        if participant.identity != ASSISTANT and self.person is None:
            self.person = participant.identity
            self._present.set()

    def _left(self, participant: Any) -> None:
        from livekit import rtc

        if self.room.connection_state != rtc.ConnectionState.CONN_CONNECTED:
            return  # our connection is down (the SDK is reconnecting): nobody left
        if participant.identity == self.person:
            log.info("livekit.person_left", room=self.name, person=self.person)
            self.gone.set()

    def _track(self, track: Any, publication: Any, participant: Any) -> None:
        from livekit import rtc

        self._joined(participant)
        audio = track.kind == rtc.TrackKind.KIND_AUDIO
        if participant.identity == self.person and audio and not self._hearing:
            self._hearing = True  # their first audio track is their voice
            self._spawn(self._hear(track))

    def _reconnecting(self) -> None:
        """The SDK resumes, then rebuilds, a dropped connection; a turn waits for that a little while.
        Meanwhile no silence is made up: the person may be speaking on the other side of the gap."""
        log.warning("livekit.reconnecting", room=self.name)
        self.microphone.paused = True
        if self._giving_up is None:
            reason = f"no answer from the server for {RECONNECT_S:g} s"
            self._giving_up = asyncio.get_running_loop().call_later(
                RECONNECT_S, lambda: self._disconnected(reason)
            )

    def _reconnected(self) -> None:
        """A full reconnect subscribes the person's track anew: hear that one."""
        log.info("livekit.reconnected", room=self.name)
        if self._giving_up is not None:
            self._giving_up.cancel()
            self._giving_up = None
        self.microphone.paused = False
        self._hearing = False
        for participant in self.room.remote_participants.values():
            for publication in participant.track_publications.values():
                if publication.track is not None:
                    self._track(publication.track, publication, participant)

    def _disconnected(self, reason: Any) -> None:
        if self._lost is None:
            self._lost = room_lost(self.name, str(reason))
            self.microphone.fail(self._lost)

    def _spawn(self, work: Any) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(work)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _hear(self, track: rtc.Track) -> None:
        from livekit import rtc

        stream = rtc.AudioStream(track, sample_rate=SPEECH_FORMAT.rate, num_channels=1)
        try:
            async for event in stream:
                self.microphone.offer(bytes(event.frame.data))
        finally:
            await stream.aclose()

    async def _clock(self) -> None:
        while True:
            await asyncio.sleep(GAP_S / 2)
            self.microphone.fill()


async def _aiter(source: AsyncIterable[AudioChunk] | Iterable[AudioChunk]) -> Any:
    if isinstance(source, AsyncIterable):
        async for chunk in source:
            yield chunk
    else:
        for chunk in source:
            yield chunk

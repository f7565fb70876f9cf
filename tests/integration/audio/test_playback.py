"""Streaming playback on the virtual speaker, checked by recording the speaker's monitor."""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import pytest

from tests.integration.audio.conftest import pulse_clients, transcribe, wait_for
from voicemoded.audio.devices import AudioBackend
from voicemoded.audio.endpointing import EndpointConfig
from voicemoded.audio.format import AudioChunk, AudioFormat
from voicemoded.audio.microphone import Microphone
from voicemoded.audio.playback import CLOSE_MARGIN_S, BargeIn, Speaker
from voicemoded.audio.recorder import Listener
from voicemoded.testing.person import Voice
from voicemoded.testing.rig import VirtualAudioRig

pytestmark = pytest.mark.audio


def a440(seconds: float, fmt: AudioFormat) -> bytes:
    """A steady 440 Hz tone (mono int16): every sample of it is audible."""
    t = np.arange(round(seconds * fmt.rate)) / fmt.rate
    return (np.sin(2 * np.pi * 440 * t) * 8000).astype("<i2").tobytes()


def chunks(pcm: bytes, fmt: Any, seconds: float = 0.25) -> list[AudioChunk]:
    step = fmt.bytes_for(seconds)
    return [AudioChunk(pcm[i : i + step], fmt) for i in range(0, len(pcm), step)]


def loud_span(pcm: bytes, threshold: int = 500) -> float:
    samples = np.abs(np.frombuffer(pcm, dtype="<i2"))
    loud = np.flatnonzero(samples > threshold)
    return 0.0 if loud.size == 0 else (loud[-1] - loud[0]) / 16_000


async def test_played_message_is_what_the_speaker_monitor_hears(
    rig: VirtualAudioRig, backend: AudioBackend, voice: Voice, whisper: Any
) -> None:
    speech = voice.say("The weather today is sunny and warm.")
    with rig.record_speaker() as recording:
        result = await Speaker(backend).play(chunks(speech.pcm, speech.format), chimes=True)
        heard = recording.stop()
    assert result.reason == "completed" and result.underruns == 0
    assert result.started_at is not None and result.ended_at is not None
    assert abs((result.ended_at - result.started_at) - speech.seconds) < 0.15
    assert loud_span(heard) >= speech.seconds - 0.3
    text = transcribe(whisper, heard).lower()
    assert "weather" in text and "sunny" in text, text


async def test_every_sample_of_the_message_is_played(rig: VirtualAudioRig, backend: AudioBackend) -> None:
    """The end of a message is not clipped: the monitor hears as many tone samples as were sent."""
    fmt = AudioFormat(24_000, 2, 1)
    tone = a440(0.6, fmt)
    with rig.record_speaker() as recording:
        result = await Speaker(backend).play(chunks(tone, fmt, seconds=0.1))
        await asyncio.sleep(0.3)
        heard = recording.stop()
    assert result.reason == "completed"
    samples = np.flatnonzero(np.frombuffer(heard, dtype="<i2"))
    assert samples.size, "nothing was heard"
    heard_s = (samples[-1] - samples[0] + 1) / 16_000
    assert heard_s >= 0.6 - 0.005, f"only {heard_s:.3f} s of the 0.600 s tone reached the speaker"


def hold_the_interpreter(seconds: float) -> None:
    """Keep every other thread of this process (PortAudio's callback among them) waiting ``seconds``."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(seconds * 5)
    try:
        until = time.monotonic() + seconds
        while time.monotonic() < until:
            pass
    finally:
        sys.setswitchinterval(interval)


async def test_a_held_up_speaker_still_plays_the_end_of_the_message(
    rig: VirtualAudioRig, backend: AudioBackend
) -> None:
    """When the callback thread is held up, the last samples leave later than predicted: the stream
    stays open past the prediction, so they are still heard (only the one block the device ran dry
    on is lost, not the end)."""
    fmt = AudioFormat(24_000, 2, 1)
    tone = a440(0.6, fmt)
    speaker = Speaker(backend)

    async def hold_up() -> None:
        await asyncio.sleep(0.3)
        hold_the_interpreter(0.2)

    with rig.record_speaker() as recording:
        holder = asyncio.create_task(hold_up())
        result = await speaker.play(chunks(tone, fmt, seconds=0.1))
        await holder
        await speaker.settled()
        await asyncio.sleep(0.3)  # the monitor hears the last samples a little after the sink played them
        heard = recording.stop()
    assert result.reason == "completed" and result.ended_at is not None and result.started_at is not None
    assert result.ended_at - result.started_at == pytest.approx(0.6, abs=0.01), "the prediction is unchanged"
    samples = np.frombuffer(heard, dtype="<i2").astype(np.float64)
    tone_seconds = float((samples**2).sum()) / (8000**2 / 2) / 16_000
    assert tone_seconds >= 0.6 - 0.03, f"only {tone_seconds:.3f} s of the 0.600 s tone was heard"


async def test_a_message_right_after_another_does_not_wait_for_its_close_margin(
    rig: VirtualAudioRig, backend: AudioBackend
) -> None:
    """The stream of a finished message stays open a margin past its end; the next message closes it at
    once instead of waiting for the margin to run out."""
    fmt = AudioFormat(24_000, 2, 1)
    speaker = Speaker(backend)
    first = await speaker.play(chunks(a440(0.3, fmt), fmt, seconds=0.1))
    assert first.reason == "completed" and backend.open_streams == 1, "the margin keeps it open"
    second = await speaker.play(chunks(a440(0.3, fmt), fmt, seconds=0.1))
    assert second.reason == "completed" and second.started_at is not None and first.ended_at is not None
    # Waiting for the margin would start the second message after first.ended_at + CLOSE_MARGIN_S.
    assert second.started_at < first.ended_at + CLOSE_MARGIN_S - 0.1
    await speaker.settled()
    assert backend.open_streams == 0


async def test_the_speaker_opens_while_the_first_chunk_is_made(
    rig: VirtualAudioRig, backend: AudioBackend
) -> None:
    """With the expected format known, the device is ready when the first chunk arrives; a chunk in
    another format still plays whole, and a source that fails first leaves the device free."""
    fmt, expected = AudioFormat(16_000, 2, 1), AudioFormat(24_000, 2, 1)
    tone = a440(0.5, fmt)
    open_when_made: list[int] = []

    async def slow_tts() -> AsyncIterator[AudioChunk]:
        await asyncio.sleep(0.3)
        open_when_made.append(backend.open_streams)
        for chunk in chunks(tone, fmt, seconds=0.1):
            yield chunk

    speaker = Speaker(backend)
    with rig.record_speaker() as recording:
        result = await speaker.play(slow_tts(), expect=expected)
        await speaker.settled()
        await asyncio.sleep(0.3)  # the monitor hears the last samples a little after the sink played them
        heard = recording.stop()
    assert open_when_made == [1], "the speaker was not open before the first chunk"
    assert result.reason == "completed" and backend.open_streams == 0
    samples = np.flatnonzero(np.frombuffer(heard, dtype="<i2"))
    assert samples.size and (samples[-1] - samples[0] + 1) / 16_000 >= 0.5 - 0.005

    async def failing_tts() -> AsyncIterator[AudioChunk]:
        await asyncio.sleep(0.1)
        raise RuntimeError("no TTS endpoint")
        yield  # pragma: no cover

    with pytest.raises(RuntimeError, match="no TTS endpoint"):
        await Speaker(backend).play(failing_tts(), expect=expected)
    assert backend.open_streams == 0
    empty = await Speaker(backend).play(_nothing(), expect=expected)
    assert empty.reason == "empty" and backend.open_streams == 0


async def _nothing() -> AsyncIterator[AudioChunk]:
    return
    yield  # pragma: no cover


async def test_playback_starts_on_the_first_chunk_while_the_rest_is_made(
    backend: AudioBackend, voice: Voice
) -> None:
    speech = voice.say("First sentence. Second sentence arrives later.")
    parts = chunks(speech.pcm, speech.format, seconds=0.5)
    first_audio = asyncio.Event()

    async def slow_tts() -> AsyncIterator[AudioChunk]:
        yield parts[0]
        # The rest is only "synthesized" once the first chunk is audible.
        await asyncio.wait_for(first_audio.wait(), 5)
        for part in parts[1:]:
            yield part

    result = await Speaker(backend).play(slow_tts(), on_first_audio=lambda _t: first_audio.set())
    assert result.reason == "completed"
    # Everything up to the last audible sample is played; trailing silence is trimmed (dead time).
    assert speech.seconds - 0.3 < result.seconds <= speech.seconds + 0.01


async def test_cancel_mid_playback_stops_and_frees_the_speaker(
    rig: VirtualAudioRig, backend: AudioBackend, voice: Voice
) -> None:
    speech = voice.say("This is a long message that nobody will hear until the end of it.")
    started = asyncio.Event()
    task = asyncio.create_task(
        Speaker(backend).play(chunks(speech.pcm, speech.format), on_first_audio=lambda _t: started.set())
    )
    await asyncio.wait_for(started.wait(), 5)
    assert pulse_clients(rig, "sink-inputs")
    t = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - t < 0.1 + 0.15  # requirement: 100 ms; margin for a loaded machine
    await wait_for(lambda: not pulse_clients(rig, "sink-inputs"), timeout=2)


async def test_interrupt_overtakes_queued_audio(backend: AudioBackend, voice: Voice) -> None:
    speech = voice.say("Queued audio should never play after an interrupt arrives.")
    speaker = Speaker(backend)
    started = asyncio.Event()
    task = asyncio.create_task(
        speaker.play(chunks(speech.pcm, speech.format), on_first_audio=lambda _t: started.set())
    )
    await asyncio.wait_for(started.wait(), 5)
    t = time.monotonic()
    speaker.interrupt()
    result = await asyncio.wait_for(task, 1)
    assert result.reason == "stopped"
    assert time.monotonic() - t < 0.25
    assert result.ended_at is not None and result.started_at is not None
    assert result.ended_at - result.started_at < speech.seconds - 1.0


async def test_the_microphone_is_listening_the_moment_playback_ends(
    rig: VirtualAudioRig, backend: AudioBackend, mic: Microphone, voice: Voice
) -> None:
    speech = voice.say("Tell me something.")
    sub = await mic.subscribe()
    try:
        await mic.wait_open()
        result = await Speaker(backend).play(chunks(speech.pcm, speech.format))
        assert result.ended_at is not None
        listening: list[float] = []
        utt = await Listener(mic).record(
            subscription=sub, not_before=result.ended_at, on_event=lambda k, t: listening.append(t),
            config=EndpointConfig(initial_silence_s=0.3),
        )  # fmt: skip
    finally:
        await sub.close()
    assert abs(utt.listening_at - result.ended_at) < 0.02


async def test_barge_in_stops_playback_and_starts_the_answer(
    rig: VirtualAudioRig, backend: AudioBackend, mic: Microphone, voice: Voice, whisper: Any
) -> None:
    message = voice.say("Here is a rather long explanation that goes on and on about many different things.")
    interruption = voice.say("Stop, that is enough.")
    sub = await mic.subscribe()
    try:
        await mic.wait_open()
        started = asyncio.Event()
        play = asyncio.create_task(
            Speaker(backend).play(
                chunks(message.pcm, message.format),
                barge_in=BargeIn(sub),
                on_first_audio=lambda _t: started.set(),
            )
        )
        await asyncio.wait_for(started.wait(), 5)
        # The person interrupts a moment into the message, as people do: the barge-in detector has heard
        # the quiet room first (speech in its very first frames has no noise floor to stand out from).
        await asyncio.sleep(0.5)
        person = asyncio.create_task(rig.play_into_mic(interruption.pcm, interruption.format))
        result = await asyncio.wait_for(play, 10)
        assert result.reason == "barge_in"
        assert result.barge_in
        assert result.ended_at is not None and result.started_at is not None
        assert result.ended_at - result.started_at < message.seconds - 1.0
        utt = await Listener(mic).record(subscription=sub, initial=result.barge_in)
        await person
    finally:
        await sub.close()
    text = transcribe(whisper, utt.audio).lower()
    assert "stop" in text and "enough" in text, text

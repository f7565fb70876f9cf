"""Two callers take turns on the real devices; Silero works as the detector behind the same interface."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from tests.integration.audio.conftest import transcribe
from voicemoded.audio.devices import AudioBackend
from voicemoded.audio.endpointing import EndpointConfig, EndReason
from voicemoded.audio.format import AudioChunk
from voicemoded.audio.microphone import Microphone
from voicemoded.audio.owner import AudioOwner
from voicemoded.audio.playback import PlaybackResult, Speaker
from voicemoded.audio.recorder import Listener
from voicemoded.testing.person import Voice, trim
from voicemoded.testing.rig import VirtualAudioRig, has_sound_card

pytestmark = pytest.mark.audio


async def test_two_callers_are_served_one_after_the_other_in_order(
    rig: VirtualAudioRig, backend: AudioBackend, voice: Voice, whisper: Any
) -> None:
    owner = AudioOwner()
    speaker = Speaker(backend)
    results: dict[str, PlaybackResult] = {}
    # Words Whisper cannot write as digits ("one" once came back as "1").
    first = voice.say("The red apple speaks first.")
    second = voice.say("The yellow banana waits for its turn.")

    async def caller(name: str, text_pcm: bytes, fmt: Any) -> None:
        async with owner.hold(name):
            results[name] = await speaker.play([AudioChunk(text_pcm, fmt)])

    with rig.record_speaker() as recording:
        one = asyncio.create_task(caller("one", first.pcm, first.format))
        await asyncio.sleep(0)  # "one" arrives first
        two = asyncio.create_task(caller("two", second.pcm, second.format))
        await asyncio.gather(one, two)
        heard = recording.stop()
    a, b = results["one"], results["two"]
    assert a.ended_at is not None and b.started_at is not None
    assert b.started_at >= a.ended_at  # no interleaved audio
    text = transcribe(whisper, heard).lower()
    assert 0 <= text.find("apple") < text.find("banana"), text


async def test_silero_detector_endpoints_the_same_answer(
    rig: VirtualAudioRig, mic: Microphone, voice: Voice, tmp_path: Path
) -> None:
    speech = voice.say("Silero hears this sentence too.")
    listening = asyncio.Event()

    async def person() -> None:
        await asyncio.wait_for(listening.wait(), 5)
        await rig.play_into_mic(speech.pcm, speech.format)

    task = asyncio.create_task(person())
    utt = await Listener(mic, EndpointConfig(vad="silero")).record(
        on_event=lambda kind, _t: listening.set() if kind == "listening" else None
    )
    await task
    assert utt.reason == EndReason.SILENCE
    assert utt.speech_start is not None and utt.speech_end is not None
    # The voiced span, not the clip: Piper pads its speech with near-silence.
    assert utt.speech_end - utt.speech_start > trim(speech).seconds - 0.35


def test_has_sound_card_reads_the_kernel_and_the_sound_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, rig: VirtualAudioRig
) -> None:
    cards = tmp_path / "cards"
    cards.write_text("--- no soundcards ---\n")
    monkeypatch.delenv("PULSE_SERVER", raising=False)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    assert not has_sound_card(cards)
    monkeypatch.setenv("PULSE_SERVER", rig.server)  # a reachable sound server counts
    assert has_sound_card(cards)
    monkeypatch.delenv("PULSE_SERVER")
    cards.write_text(" 0 [PCH            ]: HDA-Intel - HDA Intel PCH\n")
    assert has_sound_card(cards)

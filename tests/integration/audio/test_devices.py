"""Device listing, selection, the no-device error, and a microphone that comes back by itself."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from voicemoded.api.errors import NotFound
from voicemoded.audio.devices import AudioBackend
from voicemoded.audio.format import SPEECH_FORMAT
from voicemoded.audio.microphone import Microphone
from voicemoded.audio.recorder import Listener
from voicemoded.testing.person import Voice
from voicemoded.testing.rig import VirtualAudioRig

pytestmark = pytest.mark.audio


def test_lists_the_virtual_devices_with_defaults(backend: AudioBackend) -> None:
    devices = backend.devices()
    names = [d.name for d in devices]
    assert {"speaker", "speaker_monitor", "mic", "mic_sink", "default"} <= set(names)
    assert sum(d.is_default_input for d in devices) == 1
    assert all(d.default_rate > 0 and d.host_api for d in devices)


def test_selects_by_exact_name_substring_index_or_default(backend: AudioBackend) -> None:
    assert backend.select("input", "mic").name == "mic"  # exact beats "mic_sink"
    assert backend.select("input", "MONITOR").name == "speaker_monitor"
    speaker = backend.select("output", "speaker")
    assert backend.select("output", speaker.index) == speaker
    assert backend.select("output", str(speaker.index)) == speaker
    assert backend.select("input", None).is_default_input
    with pytest.raises(NotFound) as err:
        backend.select("input", "usb headset")
    assert "usb headset" in str(err.value) and "voicemodectl devices" in err.value.hint


async def test_records_from_a_device_chosen_by_name(
    rig: VirtualAudioRig, backend: AudioBackend, voice: Voice
) -> None:
    speech = voice.say("Testing the named microphone.")
    mic = Microphone(backend, "mic")
    sub = await mic.subscribe()
    try:
        await mic.wait_open()
        assert mic.device is not None and mic.device.name == "mic"
        person = asyncio.create_task(rig.play_into_mic(speech.pcm, speech.format))
        utt = await Listener(mic).record(subscription=sub)
        await person
    finally:
        await sub.close()
    assert utt.reason == "silence" and utt.seconds > 1.0


_NO_DEVICE = """
import asyncio, json
from voicemoded.audio.devices import AudioBackend
from voicemoded.audio.microphone import Microphone
from voicemoded.api.errors import VoicemodeError

async def main():
    backend = AudioBackend()
    mic = Microphone(backend)
    sub = await mic.subscribe()
    try:
        await asyncio.wait_for(sub.read(), 5)
    except VoicemodeError as exc:
        print(json.dumps({"type": type(exc).__name__, "message": exc.message, "hint": exc.hint,
                          "devices": len(backend.devices())}))
    await sub.close()

asyncio.run(main())
"""


def test_no_device_at_all_says_so_plainly(tmp_path: Path) -> None:
    """This machine without the rig: no sound card, no sound server, so PortAudio lists nothing."""
    env = {k: v for k, v in os.environ.items() if k not in ("PULSE_SERVER", "ALSA_CONFIG_PATH")}
    env.update(HOME=str(tmp_path), XDG_RUNTIME_DIR=str(tmp_path), JACK_NO_START_SERVER="1")
    done = subprocess.run(
        [sys.executable, "-c", _NO_DEVICE], env=env, capture_output=True, text=True, timeout=60, check=True
    )
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["devices"] == 0
    assert report["type"] == "NoDevice"
    assert report["message"].startswith("no input device")
    assert "connect a microphone" in report["hint"] and "VOICEMODE_INPUT_DEVICE" in report["hint"]


async def test_a_vanished_microphone_is_reopened_by_itself(
    rig: VirtualAudioRig, backend: AudioBackend, voice: Voice
) -> None:
    """The sound server restarts under an open stream (PipeWire/PulseAudio restart, USB re-plug)."""
    mic = Microphone(backend, stall_timeout=0.3, backoff_max=0.2)
    sub = await mic.subscribe()
    try:
        await mic.wait_open()
        await asyncio.to_thread(rig.restart)
        # The subscriber just keeps reading; audio flows again once the microphone task reopened it.
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 10
        while mic.reopens == 0:
            assert loop.time() < deadline, "microphone was not reopened within 10 s"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(sub.read(), 0.5)
        speech = voice.say("I am back.")
        person = asyncio.create_task(rig.play_into_mic(speech.pcm, speech.format))
        utt = await Listener(mic).record(subscription=sub)
        await person
    finally:
        await sub.close()
    assert mic.reopens == 1
    assert utt.reason == "silence" and utt.format == SPEECH_FORMAT and utt.seconds > 0.5

"""The sound server's own devices: listed by name and description, chosen by part of either, streams
sent to them, and a headset unplugged and plugged back in (a null sink unloaded and loaded again) that
is picked up again by itself."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from voicemoded.api.errors import NotFound
from voicemoded.audio.devices import ROUTE_DEVICES, AudioBackend
from voicemoded.audio.format import AudioChunk, AudioFormat
from voicemoded.audio.microphone import Microphone
from voicemoded.audio.playback import Speaker
from voicemoded.audio.pulse import SoundServer
from voicemoded.audio.recorder import Listener
from voicemoded.events import EventBus
from voicemoded.testing.daemon import daemon_handle
from voicemoded.testing.person import Voice
from voicemoded.testing.rig import MonitorRecording, VirtualAudioRig

pytestmark = pytest.mark.audio

SINK = "usb_headset"
DESCRIPTION = "USB Headset"


class Headset:
    """A virtual USB headset: a null sink (its monitor is the headset's microphone) that can be unplugged."""

    def __init__(self, rig: VirtualAudioRig) -> None:
        self.env = {**os.environ, **rig.env, "HOME": str(rig.home)}
        self.module = ""

    def pactl(self, *args: str) -> str:
        done = subprocess.run(["pactl", *args], env=self.env, capture_output=True, text=True, timeout=5)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def plug(self) -> None:
        self.module = self.pactl(
            "load-module", "module-null-sink", f"sink_name={SINK}", "norewinds=1",
            f"sink_properties=\"device.description='{DESCRIPTION}'\"",
        )  # fmt: skip

    def unplug(self) -> None:
        if self.module:
            self.pactl("unload-module", self.module)
            self.module = ""

    def record(self, fmt: AudioFormat) -> MonitorRecording:
        """What the headset's earpiece plays."""
        return MonitorRecording(self.env, fmt, SINK)

    async def speak(self, pcm: bytes, fmt: AudioFormat) -> None:
        """The person talking into the headset's microphone."""
        proc = await asyncio.create_subprocess_exec(
            "pacat", "--raw", "--latency-msec=100", f"--rate={fmt.rate}", f"--channels={fmt.channels}",
            "--format=s16le", "-d", SINK, stdin=asyncio.subprocess.PIPE, env=self.env,
        )  # fmt: skip
        assert proc.stdin is not None
        proc.stdin.write(pcm)
        await proc.stdin.drain()
        proc.stdin.close()
        await proc.wait()


@pytest.fixture
def headset(rig: VirtualAudioRig) -> Iterator[Headset]:
    h = Headset(rig)
    h.plug()
    yield h
    h.unplug()


def loudness(pcm: bytes) -> int:
    samples = np.frombuffer(pcm, dtype="<i2")
    return int(np.abs(samples.astype(np.int32)).max()) if samples.size else 0


def test_lists_the_sound_servers_devices_by_name_and_description(
    headset: Headset, backend: AudioBackend
) -> None:
    everything = backend.all_devices()
    listed = {d.name: d for d in everything if d.server_device}
    sink, source = listed[SINK], listed[f"{SINK}.monitor"]
    assert (sink.description, sink.host_api, sink.index, sink.server_device) == (
        DESCRIPTION, "PulseAudio", -1, True,
    )  # fmt: skip
    assert sink.usable("output") and not sink.usable("input")
    assert source.usable("input") and DESCRIPTION in source.description
    assert listed["speaker"].is_default_output and listed["mic.monitor"].is_default_input
    assert everything[: len(listed)] == list(listed.values()), "the sound server's come first"
    assert {"default", "speaker", "mic"} <= {d.name for d in everything[len(listed) :]}, "PortAudio's stay"


def test_a_pactl_without_json_still_lists_the_devices_by_name(headset: Headset, tmp_path: Path) -> None:
    """pactl before PulseAudio 16 has no ``-f json``: the short lists give the names (and defaults)."""
    old = tmp_path / "pactl"
    old.write_text(
        '#!/bin/sh\n[ "$1" = -f ] && { echo "pactl: invalid option -- \'f\'" >&2; exit 1; }\nexec pactl "$@"\n'
    )
    old.chmod(0o755)
    view = SoundServer(str(old)).view()
    assert view is not None and view.label == "PulseAudio"
    by_name = {(d.name, d.direction): d for d in view.devices}
    assert by_name[(SINK, "output")].description == SINK
    assert by_name[("speaker", "output")].is_default and by_name[("mic.monitor", "input")].is_default
    assert by_name[(f"{SINK}.monitor", "input")].channels == 2


def test_no_sound_server_means_portaudios_list_alone(tmp_path: Path) -> None:
    """No pactl to ask (a machine without PulseAudio or PipeWire): PortAudio's devices are the list."""
    backend = AudioBackend(server=SoundServer(str(tmp_path / "no-pactl")))
    try:
        assert backend.server_devices() == [] and backend.all_devices() == backend.devices()
    finally:
        backend.close()


def test_chooses_a_sound_server_device_by_part_of_its_name_or_description(
    headset: Headset, backend: AudioBackend
) -> None:
    out = backend.resolve("output", "usb head")
    assert out.target is not None and out.target.name == SINK
    assert out.device.name in ROUTE_DEVICES and out.env == {"PULSE_SINK": SINK}
    mic = backend.resolve("input", "usb_HEADSET")
    assert mic.target is not None and mic.target.name == f"{SINK}.monitor"
    assert mic.env == {"PULSE_SOURCE": f"{SINK}.monitor"}
    # PortAudio's own names, indexes and the default are still PortAudio's.
    assert backend.resolve("input", "mic").target is None
    assert backend.resolve("output", None).target is None


def test_an_unknown_name_is_an_error_listing_what_exists(headset: Headset, backend: AudioBackend) -> None:
    with pytest.raises(NotFound) as err:
        backend.resolve("output", "bluetooth speaker")
    assert "bluetooth speaker" in err.value.message
    assert f"{SINK} ({DESCRIPTION})" in err.value.hint and "speaker" in err.value.hint
    assert f"{SINK}.monitor" not in err.value.hint, "only output devices are offered for output"


async def test_the_speaker_plays_on_the_headset_chosen_by_name(
    headset: Headset, backend: AudioBackend, rig: VirtualAudioRig, voice: Voice
) -> None:
    speech = voice.say("Can you hear me in the headset?")
    speaker = Speaker(backend, DESCRIPTION)
    in_headset, in_room = headset.record(speech.format), rig.record_speaker(speech.format)
    result = await speaker.play([AudioChunk(speech.pcm, speech.format)])
    await speaker.settled()
    heard, room = in_headset.stop(), in_room.stop()
    assert result.reason == "completed" and speaker.route is not None and speaker.route.name == SINK
    assert loudness(heard) > 3000 and loudness(room) < 100


async def test_an_unplugged_headset_speaker_is_played_to_again_once_it_is_back(
    headset: Headset, backend: AudioBackend, voice: Voice
) -> None:
    speech = voice.say("One more time.")
    speaker = Speaker(backend, SINK, reopen_wait_s=0.3)
    assert (await speaker.play([AudioChunk(speech.pcm, speech.format)])).reason == "completed"
    await speaker.settled()
    headset.unplug()
    with pytest.raises(NotFound) as err:
        await speaker.play([AudioChunk(speech.pcm, speech.format)])
    assert SINK in err.value.message and "speaker" in err.value.hint
    headset.plug()
    heard = headset.record(speech.format)
    result = await speaker.play([AudioChunk(speech.pcm, speech.format)])
    await speaker.settled()
    assert result.reason == "completed" and loudness(heard.stop()) > 3000


async def test_an_unplugged_headset_microphone_is_picked_up_again_when_plugged_back(
    headset: Headset, backend: AudioBackend, voice: Voice
) -> None:
    """The server moves the stream of a vanished source to another one; the microphone notices the
    device is gone, waits for it, and records from it again once it is back."""
    events = EventBus()
    mic = Microphone(backend, DESCRIPTION, events=events, stall_timeout=0.3, backoff_max=0.2)
    sub = await mic.subscribe()
    loop = asyncio.get_running_loop()

    async def until(what: str, condition: Callable[[], bool]) -> None:
        deadline = loop.time() + 10
        while not condition():
            assert loop.time() < deadline, f"{what} within 10 s"
            sub.drain()
            await asyncio.sleep(0.05)

    try:
        await mic.wait_open()
        assert mic.route is not None and mic.route.name == f"{SINK}.monitor"
        headset.unplug()
        await until("the lost headset noticed", lambda: not mic.is_open)
        await asyncio.sleep(0.5)
        assert mic.reopens == 0, "not reopened on another device while the headset is away"
        headset.plug()
        await until("the headset reopened", lambda: mic.reopens == 1)
        speech = voice.say("I am back on the headset.")
        person = asyncio.create_task(headset.speak(speech.pcm, speech.format))
        sub.drain()
        utt = await Listener(mic).record(subscription=sub)
        await person
    finally:
        await sub.close()
    assert utt.reason == "silence" and utt.seconds > 0.8
    kinds = [(e.kind, e.message) for e in events.recent() if e.kind.startswith("audio.device")]
    assert kinds == [
        ("audio.device_lost", f"microphone {SINK}.monitor is gone"),
        ("audio.device_reopened", f"microphone {SINK}.monitor is back"),
    ]


def test_devices_shows_the_headset_chosen_by_name_and_an_unknown_one(
    headset: Headset, rig: VirtualAudioRig
) -> None:
    for daemon in daemon_handle():
        daemon.env.update(rig.env)
        daemon.start({"VOICEMODE_OUTPUT_DEVICE": "headset", "VOICEMODE_INPUT_DEVICE": "no such mic"})
        listed = daemon.ctl("--json", "devices")
        report = json.loads(listed.stdout)
        by_name = {d["name"]: d for d in report["devices"]}
        assert by_name[SINK]["description"] == DESCRIPTION and by_name[SINK]["selected_output"]
        assert "no such mic" in report["input_error"] and f"{SINK}.monitor" in report["input_error"]
        assert listed.returncode != 0
        table = daemon.ctl("devices").stdout
        [row] = [line for line in table.splitlines() if line.startswith(f"-      {SINK} ")]
        assert DESCRIPTION in row and row.rstrip().endswith("speaker")

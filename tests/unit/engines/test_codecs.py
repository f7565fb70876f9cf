"""Codecs and the streaming resampler on real audio: a tone, encoded and decoded by PyAV and soxr."""

from __future__ import annotations

import io
import wave

import numpy as np
import pytest

from voicemoded.api.errors import InvalidArgument
from voicemoded.audio import codecs
from voicemoded.audio.format import SPEECH_FORMAT, AudioFormat
from voicemoded.audio.resample import Resampler, resample

SOURCE = AudioFormat(rate=24_000)


def tone(seconds: float = 1.0, rate: int = 24_000, freq: float = 440.0, channels: int = 1) -> bytes:
    t = np.arange(int(seconds * rate)) / rate
    mono = (0.5 * 32767 * np.sin(2 * np.pi * freq * t)).astype(np.int16)
    return np.repeat(mono[:, None], channels, axis=1).tobytes()


def dominant_frequency(pcm: bytes, rate: int) -> float:
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    spectrum = np.abs(np.fft.rfft(samples))
    return float(np.fft.rfftfreq(len(samples), 1 / rate)[spectrum.argmax()])


@pytest.mark.parametrize("fmt", codecs.ALL_FORMATS)
def test_encode_then_decode_keeps_duration_and_pitch(fmt: str) -> None:
    pcm = tone(1.0)
    data = codecs.encode(pcm, fmt, SOURCE)
    decoded = codecs.decode(data, pcm_format=SOURCE if fmt == "pcm" else None)
    # Lossy codecs add a little priming/padding; the length stays within 100 ms.
    assert SPEECH_FORMAT.seconds_for(len(decoded)) == pytest.approx(1.0, abs=0.1)
    assert dominant_frequency(decoded, 16_000) == pytest.approx(440, abs=5)


@pytest.mark.parametrize("fmt", ["mp3", "opus", "aac", "flac", "wav", "webm"])
def test_encoder_is_incremental(fmt: str) -> None:
    """Bytes leave before finish(): what lets TTS stream sentence by sentence."""
    encoder = codecs.Encoder(fmt, SOURCE)
    pcm = tone(2.0)
    early = b"".join(encoder.encode(pcm[i : i + 4800]) for i in range(0, len(pcm), 4800))
    assert len(early) > 0
    whole = early + encoder.finish()
    assert SPEECH_FORMAT.seconds_for(len(codecs.decode(whole))) == pytest.approx(2.0, abs=0.1)


def test_streamed_wav_header_is_readable_by_the_wave_module() -> None:
    data = codecs.encode(tone(0.5), "wav", SOURCE)
    with wave.open(io.BytesIO(data)) as reader:
        assert reader.getframerate() == 24_000
        assert len(reader.readframes(1_000_000)) == 24_000


def test_opus_encodes_at_a_rate_it_supports() -> None:
    encoder = codecs.Encoder("opus", AudioFormat(rate=22_050))
    assert encoder.rate == 24_000
    data = encoder.encode(tone(1.0, rate=22_050)) + encoder.finish()
    assert SPEECH_FORMAT.seconds_for(len(codecs.decode(data))) == pytest.approx(1.0, abs=0.1)


def test_decode_to_a_requested_format() -> None:
    stereo = tone(1.0, rate=44_100, channels=2)
    data = codecs.encode(stereo, "flac", AudioFormat(rate=44_100, channels=2))
    out = codecs.decode(data, target=AudioFormat(rate=48_000, channels=2))
    assert len(out) == pytest.approx(48_000 * 4, abs=4 * 10)


def test_raw_pcm_is_resampled() -> None:
    out = codecs.decode(tone(1.0, rate=8_000), pcm_format=AudioFormat(rate=8_000))
    assert len(out) == pytest.approx(32_000, abs=20)
    assert dominant_frequency(out, 16_000) == pytest.approx(440, abs=5)


@pytest.mark.parametrize("data", [b"", b"not audio at all" * 100])
def test_undecodable_input_is_invalid_argument(data: bytes) -> None:
    with pytest.raises(InvalidArgument) as info:
        codecs.decode(data)
    assert "wav, mp3" in info.value.hint


def test_unknown_encode_format_names_the_valid_ones() -> None:
    with pytest.raises(InvalidArgument) as info:
        codecs.Encoder("ogg", SOURCE)
    assert "mp3" in info.value.hint and "pcm" in info.value.hint


def test_streaming_resampler_matches_one_shot_and_accepts_odd_cuts() -> None:
    pcm = tone(1.0, rate=22_050)
    src, dst = AudioFormat(rate=22_050), AudioFormat(rate=24_000)
    streaming = Resampler(src, dst)
    out = b"".join(streaming.process(pcm[i : i + 1001]) for i in range(0, len(pcm), 1001)) + streaming.flush()
    whole = resample(pcm, src, dst)
    assert len(out) == len(whole) == pytest.approx(48_000, abs=4)
    assert np.abs(np.frombuffer(out, "<i2").astype(int) - np.frombuffer(whole, "<i2")).max() <= 2


def test_resampler_mixes_channels() -> None:
    left = np.full(100, 1000, dtype=np.int16)
    right = np.full(100, 3000, dtype=np.int16)
    stereo = np.stack([left, right], axis=1).tobytes()
    mono = Resampler(AudioFormat(channels=2), AudioFormat(channels=1)).process(stereo)
    assert set(np.frombuffer(mono, "<i2")) == {2000}


def test_same_format_passes_through() -> None:
    resampler = Resampler(SOURCE, SOURCE)
    assert resampler.passthrough
    assert resampler.process(b"\x01\x02\x03") == b"\x01\x02"
    assert resampler.process(b"\x04") == b"\x03\x04"

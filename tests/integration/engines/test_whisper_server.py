"""The STT server with the real tiny.en model: every input format, every response format, silence."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from tests.integration.engines.conftest import transcribe
from voicemoded.audio import codecs
from voicemoded.audio.format import AudioFormat
from voicemoded.testing.engines import EngineProcess
from voicemoded.testing.words import word_error_rate

pytestmark = [pytest.mark.engines, pytest.mark.slow]

PIPER_PCM = AudioFormat(rate=24_000)


def test_health_and_models(whisper: EngineProcess) -> None:
    import httpx

    assert httpx.get(f"{whisper.url}/health").json()["status"] == "ok"
    ids = [m["id"] for m in httpx.get(f"{whisper.url}/v1/models").json()["data"]]
    assert ids == ["tiny.en", "whisper-1"]


@pytest.mark.parametrize(
    ("fmt", "filename", "content_type"),
    [
        ("wav", "clip.wav", "audio/wav"),
        ("mp3", "clip.mp3", "audio/mpeg"),
        ("opus", "clip.ogg", "audio/ogg"),
        ("webm", "clip.webm", "audio/webm"),
        ("flac", "clip.flac", "audio/flac"),
    ],
)
def test_each_container_decodes(
    whisper: EngineProcess, piper_sentence: tuple[str, bytes], fmt: str, filename: str, content_type: str
) -> None:
    text, pcm = piper_sentence
    data = codecs.encode(pcm, fmt, PIPER_PCM)
    response = transcribe(whisper, data, filename, content_type)
    assert response.status_code == 200, response.text
    assert word_error_rate(text, response.json()["text"]) <= 0.10, response.json()["text"]


def test_a_clip_longer_than_the_window_is_decoded_whole(
    whisper: EngineProcess, piper_sentence: tuple[str, bytes]
) -> None:
    # Short answers are encoded on a shortened window; one over 29 s takes the full 30 s window and more.
    text, pcm = piper_sentence
    repeats = int(np.ceil(34.0 / PIPER_PCM.seconds_for(len(pcm))))
    gap = b"\0\0" * (PIPER_PCM.rate // 2)
    response = transcribe(
        whisper, (pcm + gap) * repeats, "clip.pcm", "application/octet-stream", sample_rate="24000"
    )
    assert response.status_code == 200, response.text
    assert word_error_rate(" ".join([text] * repeats), response.json()["text"]) <= 0.15, response.json()[
        "text"
    ]


def test_raw_pcm_with_sample_rate_field(whisper: EngineProcess, piper_sentence: tuple[str, bytes]) -> None:
    text, pcm = piper_sentence
    response = transcribe(whisper, pcm, "clip.pcm", "application/octet-stream", sample_rate="24000")
    assert response.status_code == 200, response.text
    assert word_error_rate(text, response.json()["text"]) <= 0.10


def test_language_auto_means_detect(whisper: EngineProcess, piper_sentence: tuple[str, bytes]) -> None:
    """whisper.cpp clients send language=auto; it is not an error."""
    text, pcm = piper_sentence
    response = transcribe(
        whisper, pcm, "clip.pcm", "application/octet-stream", sample_rate="24000", language="auto"
    )
    assert response.status_code == 200, response.text
    assert word_error_rate(text, response.json()["text"]) <= 0.10


def test_raw_pcm_rate_from_content_type(whisper: EngineProcess, piper_sentence: tuple[str, bytes]) -> None:
    text, pcm = piper_sentence
    response = transcribe(whisper, pcm, "clip", "audio/L16;rate=24000")
    assert response.status_code == 200, response.text
    assert word_error_rate(text, response.json()["text"]) <= 0.10


def test_raw_pcm_without_rate_is_rejected(whisper: EngineProcess, piper_sentence: tuple[str, bytes]) -> None:
    response = transcribe(whisper, piper_sentence[1], "clip.pcm", "audio/pcm")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "sample_rate"


@pytest.mark.parametrize(
    "noise_dbfs",
    [None, -65.0, -35.0],
    ids=["digital-silence", "hiss-below-floor", "loud-noise-no-speech"],
)
def test_no_speech_gives_empty_text(whisper: EngineProcess, noise_dbfs: float | None) -> None:
    rate = 16_000
    if noise_dbfs is None:
        samples = np.zeros(rate * 3, dtype=np.int16)
    else:
        amplitude = 32768 * 10 ** (noise_dbfs / 20)
        samples = np.random.default_rng(7).normal(0, amplitude, rate * 3).clip(-32768, 32767).astype(np.int16)
    wav = codecs.encode(samples.tobytes(), "wav", AudioFormat(rate=rate))
    response = transcribe(whisper, wav, "quiet.wav", "audio/wav", response_format="verbose_json")
    assert response.status_code == 200, response.text
    assert response.json()["text"] == ""
    assert response.json()["segments"] == []


def test_every_response_format(whisper: EngineProcess, piper_sentence: tuple[str, bytes]) -> None:
    text, pcm = piper_sentence
    wav = codecs.encode(pcm, "wav", PIPER_PCM)
    seen: dict[str, str] = {}
    for fmt in ("json", "text", "verbose_json", "srt", "vtt"):
        response = transcribe(whisper, wav, "clip.wav", "audio/wav", response_format=fmt)
        assert response.status_code == 200, (fmt, response.text)
        seen[fmt] = response.text
        if fmt == "verbose_json":
            body = response.json()
            assert body["language"] == "en"
            assert body["duration"] == pytest.approx(len(pcm) / 48_000, abs=0.05)
            assert body["segments"] and body["segments"][-1]["end"] <= body["duration"] + 0.5
    assert word_error_rate(text, seen["text"]) <= 0.10
    assert seen["srt"].startswith("1\n00:00:0")
    assert "-->" in seen["srt"]
    assert seen["vtt"].startswith("WEBVTT\n\n00:00:0")


@pytest.mark.parametrize(
    ("fields", "param", "names"),
    [
        ({"model": "large-v3"}, "model", ["tiny.en", "whisper-1"]),
        ({"response_format": "csv"}, "response_format", ["json", "verbose_json", "srt", "vtt"]),
        ({"language": "fr"}, "language", ["--model base"]),
        ({"temperature": "3"}, "temperature", []),
    ],
)
def test_bad_fields_are_400_naming_valid_ones(
    whisper: EngineProcess,
    piper_sentence: tuple[str, bytes],
    fields: dict[str, str],
    param: str,
    names: list[str],
) -> None:
    wav = codecs.encode(piper_sentence[1], "wav", PIPER_PCM)
    response = transcribe(whisper, wav, "clip.wav", "audio/wav", **fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == param
    assert error["type"] == "invalid_request_error"
    for name in names:
        assert name in error["message"]


def test_undecodable_upload_is_400(whisper: EngineProcess) -> None:
    response = transcribe(whisper, b"definitely not audio" * 50, "clip.mp3", "audio/mpeg")
    assert response.status_code == 400
    assert "decode" in response.json()["error"]["message"]


def test_base_model_is_selectable(
    whisper_base: EngineProcess, piper_sentence: tuple[str, bytes], engines_tmp: Path
) -> None:
    import httpx

    ids = [m["id"] for m in httpx.get(f"{whisper_base.url}/v1/models").json()["data"]]
    assert ids == ["base", "whisper-1"]
    text, pcm = piper_sentence
    wav = codecs.encode(pcm, "flac", PIPER_PCM)
    response = transcribe(whisper_base, wav, "clip.flac", "audio/flac", language="en", model="base")
    assert response.status_code == 200, response.text
    assert word_error_rate(text, response.json()["text"]) <= 0.10
    assembled = engines_tmp / "base-model" / "base" / "models" / "whisper-base" / "model.bin"
    assert assembled.stat().st_size > 100_000_000


def test_the_encoder_window_follows_the_speech(tmp_path: Path, piper_sentence: tuple[str, bytes]) -> None:
    from voicemoded.audio.resample import resample
    from voicemoded.engines.whisper import TranscribeOptions, WhisperEngine

    engine = WhisperEngine("tiny.en", tmp_path)
    engine.load()
    text, pcm = piper_sentence  # ~4.5 s: the speech and a margin, on the 10 s floor
    sentence = engine.transcribe(resample(pcm, PIPER_PCM, AudioFormat()), TranscribeOptions())
    assert engine._whisper.shortened == 1000
    assert word_error_rate(text, sentence.text) <= 0.10, sentence.text
    # Leading silence is not speech: the VAD filter drops it before the window is chosen.
    padded = b"\0\0" * 16000 * 12 + resample(pcm, PIPER_PCM, AudioFormat())
    engine.transcribe(padded, TranscribeOptions())
    assert engine._whisper.shortened == 1000
    word = engine.transcribe(resample(pcm, PIPER_PCM, AudioFormat())[: 16000 * 2 // 3], TranscribeOptions())
    assert engine._whisper.shortened is None, "a word or two keeps the full window"
    assert word.text
    # Segment times are placed on the full window: a caller asking for them gets it.
    timed = engine.transcribe(resample(pcm, PIPER_PCM, AudioFormat()), TranscribeOptions(timestamps=True))
    assert engine._whisper.shortened is None
    assert timed.segments and timed.segments[-1].end <= timed.duration + 0.5

"""Piper and Kokoro servers with the real voices, checked by ear: the Whisper server transcribes them."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.engines.conftest import speak, transcribe
from voicemoded.audio import codecs
from voicemoded.audio.format import AudioFormat
from voicemoded.testing.engines import EngineProcess, start_engine
from voicemoded.testing.words import word_error_rate

pytestmark = [pytest.mark.engines, pytest.mark.slow]

OUT = AudioFormat(rate=24_000)
LONG_TEXT = " ".join(
    [
        "Good morning, this is a longer text to check that speech streams.",
        "The first sentence should leave the server before the rest is ready.",
        "Every following sentence is synthesized while the previous one is sent.",
        "That keeps the time to the first sound short.",
        "Even when the whole answer takes several seconds to say.",
        "A listener hears the start while the end is still being made.",
        "This is the seventh sentence of the text.",
        "And this is the last one.",
    ]
)


def _pcm_transcript(whisper: EngineProcess, pcm: bytes) -> str:
    response = transcribe(whisper, pcm, "speech.pcm", "audio/pcm", sample_rate="24000")
    assert response.status_code == 200, response.text
    return str(response.json()["text"])


def test_piper_round_trip(piper: EngineProcess, whisper: EngineProcess) -> None:
    text = "Please book a table for 2 people at 7 in the evening. We will arrive by train."
    response = speak(piper, text)
    assert response.status_code == 200, response.text
    assert response.headers["x-sample-rate"] == "24000"
    assert response.headers["content-type"] == "audio/pcm"
    heard = _pcm_transcript(whisper, response.content)
    assert word_error_rate(text, heard) <= 0.10, heard


def test_kokoro_round_trip(kokoro: EngineProcess, whisper: EngineProcess) -> None:
    text = "The quick brown fox jumps over the lazy dog."
    response = speak(kokoro, text, voice="jm_kumo")
    assert response.status_code == 200, response.text
    assert response.headers["x-voice"] == "jm_kumo"
    heard = _pcm_transcript(whisper, response.content)
    assert word_error_rate(text, heard) <= 0.15, heard


@pytest.mark.parametrize("fmt", codecs.ENCODE_FORMATS)
def test_every_response_format(piper: EngineProcess, whisper: EngineProcess, fmt: str) -> None:
    text = "Testing one two three."
    response = speak(piper, text, fmt)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == codecs.CONTENT_TYPES[fmt]
    pcm = response.content if fmt == "pcm" else codecs.decode(response.content, target=OUT)
    assert OUT.seconds_for(len(pcm)) > 0.5
    assert word_error_rate(text, _pcm_transcript(whisper, pcm)) <= 0.25


def test_default_format_is_mp3_like_openai(piper: EngineProcess) -> None:
    response = httpx.post(
        f"{piper.url}/v1/audio/speech", json={"input": "Hello.", "model": "tts-1"}, timeout=60
    )
    assert response.status_code == 200
    assert response.headers["content-type"] == "audio/mpeg"


@pytest.mark.parametrize("engine_name", ["piper", "kokoro"])
def test_unknown_voice_is_400_listing_valid_ones(engine_name: str, request: pytest.FixtureRequest) -> None:
    engine: EngineProcess = request.getfixturevalue(engine_name)
    voices = httpx.get(f"{engine.url}/v1/audio/voices").json()["voices"]
    response = speak(engine, "Hello.", voice="zz_nobody")
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == "voice"
    assert "zz_nobody" in error["message"]
    for voice in voices:
        assert voice in error["message"]


def test_unknown_format_model_and_speed_are_400(piper: EngineProcess) -> None:
    bad_format = speak(piper, "Hello.", "ogg").json()["error"]
    assert bad_format["param"] == "response_format"
    for fmt in codecs.ENCODE_FORMATS:
        assert fmt in bad_format["message"]
    bad_model = speak(piper, "Hello.", model="kokoro").json()["error"]
    assert bad_model["param"] == "model" and "piper" in bad_model["message"]
    assert speak(piper, "Hello.", speed=9).json()["error"]["param"] == "speed"
    assert speak(piper, "   ").json()["error"]["param"] == "input"


def test_voices_and_models(piper: EngineProcess, kokoro: EngineProcess) -> None:
    piper_voices = httpx.get(f"{piper.url}/v1/audio/voices").json()
    assert piper_voices["voices"] == ["en_US-joe-medium"]
    kokoro_voices = httpx.get(f"{kokoro.url}/v1/audio/voices").json()
    assert {"jf_alpha", "jm_kumo"} <= set(kokoro_voices["voices"])
    assert kokoro_voices["default"] in kokoro_voices["voices"]
    assert all(v["language"] == "en-us" for v in kokoro_voices["data"])
    models = [m["id"] for m in httpx.get(f"{kokoro.url}/v1/models").json()["data"]]
    assert "kokoro" in models and "tts-1" in models
    # A voice's display name is accepted too.
    assert speak(piper, "Hi.", voice="joe").headers["x-voice"] == "en_US-joe-medium"


def _timed_stream(engine: EngineProcess, text: str, fmt: str = "pcm") -> tuple[float, float, int]:
    """(seconds to the first body byte, seconds to the end, number of body chunks)."""
    started = time.perf_counter()
    first = 0.0
    chunks = 0
    with httpx.stream(
        "POST", f"{engine.url}/v1/audio/speech", json={"input": text, "response_format": fmt}, timeout=120
    ) as response:
        assert response.status_code == 200
        for chunk in response.iter_raw():
            if chunk and not chunks:
                first = time.perf_counter() - started
            chunks += bool(chunk)
    return first, time.perf_counter() - started, chunks


def test_piper_streams_sentence_by_sentence(piper: EngineProcess) -> None:
    first, total, chunks = _timed_stream(piper, LONG_TEXT, "mp3")
    assert chunks >= 4
    assert first / total < 0.5, (first, total)


def test_kokoro_streams_sentence_by_sentence(kokoro: EngineProcess) -> None:
    first, total, chunks = _timed_stream(kokoro, "Hello there. How are you today? I am fine.")
    assert chunks >= 3
    assert first / total < 0.75, (first, total)


def test_health_answers_during_synthesis(kokoro: EngineProcess) -> None:
    """Inference runs on a worker thread: /health answers while the rest of a text is being made."""
    streaming = threading.Event()
    done = threading.Event()
    text = "One sentence here. Then another one follows. And a third, to keep it busy. And a fourth."

    def long_synthesis() -> None:
        body = {"input": text, "response_format": "pcm"}
        with httpx.stream("POST", f"{kokoro.url}/v1/audio/speech", json=body, timeout=120) as response:
            for chunk in response.iter_raw():
                if chunk:
                    streaming.set()
        done.set()

    worker = threading.Thread(target=long_synthesis)
    worker.start()
    try:
        assert streaming.wait(60)
        health = httpx.get(f"{kokoro.url}/health", timeout=30)
        assert health.status_code == 200
        assert not done.is_set()
    finally:
        worker.join(120)


def test_sigterm_stops_cleanly(tmp_path: Path) -> None:
    engine = start_engine("piper", tmp_path)
    engine.wait_ready(60)
    assert engine.stop() == 0
    assert any(e.get("event") == "engine.stopped" for e in engine.events())


def test_load_failure_exits_nonzero(tmp_path: Path) -> None:
    """A model that cannot load must crash the child (the supervisor backs off), not sit at 503."""
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("")
    engine = start_engine("kokoro", tmp_path, "--models-dir", str(blocker / "models"))
    assert engine.exited.wait(60), "\n".join(engine.lines[-20:])
    assert engine.proc.wait(10) == 1
    assert any(e.get("event") == "engine.load_failed" for e in engine.events())

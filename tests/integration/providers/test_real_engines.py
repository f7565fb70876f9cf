"""The Speech facade against the real embedded engines (Piper TTS, faster-whisper STT) as child processes.

A sentence goes out through Piper and comes back through Whisper; a dead user URL in front of each shows
failover to the real local engine. Engines start once per module (model loading dominates the time).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.unit.providers.faultserver import closed_port_url
from voicemoded.api.errors import InvalidArgument
from voicemoded.audio.format import AudioChunk
from voicemoded.providers import TTS_FORMAT, ProviderSettings, Speech, SpeechInfo
from voicemoded.testing.ports import free_port

pytestmark = [pytest.mark.engines, pytest.mark.slow]

SENTENCE = "The quick brown fox jumps over the lazy dog near the river bank."
START_TIMEOUT = 120.0


def wait_healthy(proc: subprocess.Popen[bytes], url: str, log: Path) -> None:
    """Wait until the engine answers /health 200 (model warm), or fail with its log."""
    deadline = time.monotonic() + START_TIMEOUT
    with httpx.Client(timeout=1.0) as client:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"engine exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if client.get(f"{url}/health").status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
    pytest.fail(f"engine not healthy within {START_TIMEOUT:g} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def engines(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    base = tmp_path_factory.mktemp("voicemode")
    env = {**os.environ, "HOME": str(base), "VOICEMODE_BASE_DIR": str(base / ".voicemode")}
    procs: list[subprocess.Popen[bytes]] = []
    urls: dict[str, str] = {}
    try:
        for engine in ("piper", "whisper"):
            port = free_port()
            log = base / f"{engine}.log"
            with log.open("wb") as out:
                args = [sys.executable, "-m", f"voicemoded.engines.{engine}", "--host", "127.0.0.1"]
                proc = subprocess.Popen([*args, "--port", str(port)], env=env, stdout=out, stderr=out)
            procs.append(proc)
            urls[engine] = f"http://127.0.0.1:{port}"
            urls[f"{engine}.log"] = str(log)
        for proc, engine in zip(procs, ("piper", "whisper"), strict=True):
            wait_healthy(proc, urls[engine], Path(urls[f"{engine}.log"]))
        yield urls
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def words(text: str) -> list[str]:
    return re.sub(r"[^a-z0-9' ]+", " ", text.lower()).split()


def word_error_rate(reference: str, hypothesis: str) -> float:
    ref, hyp = words(reference), words(hypothesis)
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1] / max(len(ref), 1)


def settings(**overrides: object) -> ProviderSettings:
    return ProviderSettings(request_timeout=60.0, stream_timeout=30.0, probe_interval=300.0, **overrides)  # type: ignore[arg-type]


async def synthesize(sp: Speech, text: str, **kwargs: object) -> tuple[SpeechInfo, AudioChunk]:
    items = [item async for item in sp.synthesize(text, **kwargs)]  # type: ignore[arg-type]
    info = items[0]
    assert isinstance(info, SpeechInfo)
    audio = b"".join(item.audio for item in items[1:] if isinstance(item, AudioChunk))
    return info, AudioChunk(audio, TTS_FORMAT)


async def test_piper_to_whisper_round_trip(engines: dict[str, str]) -> None:
    async with Speech(settings(voices=("af_sky", "alloy"))) as sp:
        sp.set_local_endpoints("tts", {"piper": engines["piper"]})
        sp.set_local_endpoints("stt", {"whisper": engines["whisper"]})
        info, audio = await synthesize(sp, SENTENCE)
        assert info.endpoint.name == "piper" and info.endpoint.engine == "piper"
        assert info.voice == "en_US-joe-medium", "no preferred voice offered: the closest, reported"
        assert info.model == "piper"
        assert info.notes and "is not offered here" in info.notes[0], "the substitution is reported"
        assert 2.0 < audio.seconds < 10.0
        result = await sp.transcribe(audio, language="en")
        assert result.endpoint.name == "whisper"
        assert word_error_rate(SENTENCE, result.text) <= 0.10, result.text


async def test_failover_from_dead_user_urls_to_real_engines(engines: dict[str, str]) -> None:
    dead_tts, dead_stt = closed_port_url(), closed_port_url()
    async with Speech(settings(tts_base_urls=(dead_tts,), stt_base_urls=(dead_stt,))) as sp:
        sp.set_local_endpoints("tts", {"piper": engines["piper"]})
        sp.set_local_endpoints("stt", {"whisper": engines["whisper"]})
        started = time.monotonic()
        # Not "Hello there.": tiny.en heard "Below there." in about one draw of Piper's voice in 60.
        info, audio = await synthesize(sp, "Good morning from the backup engine.", speed=1.2)
        assert info.endpoint.name == "piper" and info.failed_over[0][0] == dead_tts
        assert time.monotonic() - started < 30.0
        result = await sp.transcribe(audio)
        assert result.endpoint.name == "whisper" and result.failed_over[0][0] == dead_stt
        assert {"morning", "backup", "engine"} <= set(words(result.text)), result.text
        statuses = {s.url: s for s in sp.list()}
        assert statuses[dead_tts].breaker == "open" and statuses[dead_stt].health == "unhealthy"


async def test_real_engine_voices_are_discovered_and_enforced(engines: dict[str, str]) -> None:
    async with Speech(settings()) as sp:
        sp.set_local_endpoints("tts", {"piper": engines["piper"]})
        [status] = await sp.probe("tts")
        assert status.health == "healthy" and "en_US-joe-medium" in status.voices and "piper" in status.models
        with pytest.raises(InvalidArgument, match="en_US-joe-medium"):
            await synthesize(sp, "Hi.", voice="zz_nobody")
        with pytest.raises(InvalidArgument, match="instructions"):
            await synthesize(sp, "Hi.", instructions="sound happy")
        with pytest.raises(InvalidArgument, match="af_sky"):
            await synthesize(sp, "Hi.", voice="af_sky")
        info, audio = await synthesize(sp, "Hi.", voice="am_adam")
        assert (info.voice_requested, info.voice) == ("am_adam", "en_US-joe-medium")
        assert "closest male voice" in info.notes[0] and audio.seconds > 0.2

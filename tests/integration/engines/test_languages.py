"""Languages through the real Whisper servers: detected when unset, English-only models refuse others."""

from __future__ import annotations

import httpx
import pytest

from tests.integration.engines.conftest import transcribe
from voicemoded.api.errors import InvalidArgument
from voicemoded.audio.format import AudioChunk, AudioFormat
from voicemoded.providers import ProviderSettings, Speech, SpeechInfo
from voicemoded.testing.engines import EngineProcess
from voicemoded.testing.words import error_rate

pytestmark = [pytest.mark.engines, pytest.mark.slow]


def speech_of(pcm: bytes) -> AudioChunk:
    return AudioChunk(pcm, AudioFormat(rate=24_000))


async def test_detected_language_comes_back(
    whisper_base: EngineProcess, piper_sentence: tuple[str, bytes]
) -> None:
    _, pcm = piper_sentence
    raw = transcribe(whisper_base, pcm, "clip.pcm", "audio/pcm", sample_rate="24000")
    assert raw.json()["language"] == "en", "the plain json answer carries the detected language"
    async with Speech(ProviderSettings()) as sp:
        sp.set_local_endpoints("stt", {"whisper": f"{whisper_base.url}/v1"})
        heard = await sp.transcribe(speech_of(pcm))
        assert heard.language == "en" and "weather" in heard.text.lower()
        asked = await sp.transcribe(speech_of(pcm), language="en")
        assert asked.language == "en"


async def test_english_only_model_says_which_model_to_use(
    whisper: EngineProcess, piper_sentence: tuple[str, bytes]
) -> None:
    _, pcm = piper_sentence
    async with Speech(ProviderSettings()) as sp:
        sp.set_local_endpoints("stt", {"whisper": f"{whisper.url}/v1"})
        with pytest.raises(InvalidArgument) as raised:
            await sp.transcribe(speech_of(pcm), language="de")
    error = raised.value
    assert error.message.startswith("the Whisper model tiny.en is English-only and cannot transcribe 'de'")
    assert "voicemodectl models use base" in error.message and "models use base" in error.hint
    assert error.fields == {"language": "de", "model": "tiny.en"}


def test_engine_refuses_with_the_same_words(
    whisper: EngineProcess, piper_sentence: tuple[str, bytes]
) -> None:
    _, pcm = piper_sentence
    response = transcribe(whisper, pcm, "clip.pcm", "audio/pcm", sample_rate="24000", language="de")
    assert response.status_code == 400
    message = response.json()["error"]["message"]
    assert "tiny.en is English-only" in message and "--model base" in message


async def test_japanese_is_spoken_by_a_voice_that_speaks_it_and_heard_as_japanese(
    kokoro: EngineProcess, piper: EngineProcess, whisper_base: EngineProcess
) -> None:
    async with httpx.AsyncClient() as http:
        voices = (await http.get(f"{kokoro.url}/v1/audio/voices")).json()["data"]
    assert all(v["languages"] == ["en-us", "ja"] for v in voices if v["id"].startswith("j")), voices
    text = "駅の前の本屋で待っています。"
    async with Speech(ProviderSettings()) as sp:
        # Piper sorts after Kokoro, so put it first: only the language can send this to Kokoro.
        sp.set_local_endpoints("tts", {"a-piper": f"{piper.url}/v1", "kokoro": f"{kokoro.url}/v1"})
        info, pcm = await spoken(sp, text)
        assert (info.endpoint.name, info.voice, info.warnings) == ("kokoro", "jf_alpha", ())
        english, _ = await spoken(sp, "Hello there.")
        assert english.endpoint.name == "a-piper", "English stays with the first endpoint"
        german, _ = await spoken(sp, "Guten Tag.", language="de")
        assert german.warnings == ("no TTS voice speaks 'de'; the voices here speak en-us, ja",)
    raw = transcribe(whisper_base, pcm, "clip.pcm", "audio/pcm", sample_rate="24000").json()
    assert raw["language"] == "ja"
    assert error_rate("ja", text, raw["text"]) <= 0.15, raw["text"]


async def spoken(sp: Speech, text: str, **kwargs: str) -> tuple[SpeechInfo, bytes]:
    items = [item async for item in sp.synthesize(text, **kwargs)]  # type: ignore[arg-type]
    info = items[0]
    assert isinstance(info, SpeechInfo)
    return info, b"".join(c.audio for c in items[1:] if isinstance(c, AudioChunk))

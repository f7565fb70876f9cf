"""The one table of voice names: what an engine speaks for OpenAI's and Kokoro-FastAPI's names."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from voicemoded.engines.kokoro import voice_from_id
from voicemoded.engines.piper import JOE
from voicemoded.engines.server import ApiError
from voicemoded.engines.text import script_language, split_sentences
from voicemoded.engines.tts import Voice, resolve_voice
from voicemoded.engines.voice_names import ALIASES, KOKORO_FASTAPI_VOICES, OPENAI_VOICES, engine_voice
from voicemoded.providers.registry import parse_languages
from voicemoded.providers.voices import describe_voice

KOKORO = tuple(voice_from_id(v, japanese=True) for v in ("jf_alpha", "jf_nezumi", "jm_kumo"))


@dataclass
class Engine:
    """Just what :func:`resolve_voice` reads of a synthesizer."""

    voices: tuple[Voice, ...]
    default_voice: str
    name: str = "test"


def test_every_openai_and_kokoro_fastapi_name_is_accepted_by_each_engine() -> None:
    assert set(OPENAI_VOICES) | set(KOKORO_FASTAPI_VOICES) == ALIASES
    for engine in (Engine(KOKORO, "jf_alpha"), Engine((JOE,), JOE.id)):
        offered = {v.id for v in engine.voices}
        for name in ALIASES:
            assert resolve_voice(engine, name) in offered, name  # type: ignore[arg-type]


def test_names_land_on_the_same_gender_where_one_exists() -> None:
    kokoro = Engine(KOKORO, "jf_alpha")
    assert resolve_voice(kokoro, "alloy") == "jf_alpha"  # type: ignore[arg-type]
    assert resolve_voice(kokoro, "onyx") == "jm_kumo"  # type: ignore[arg-type]
    assert resolve_voice(kokoro, "AF_BELLA") == "jf_alpha", "any case"  # type: ignore[arg-type]
    assert resolve_voice(kokoro, "bm_lewis") == "jm_kumo"  # type: ignore[arg-type]
    assert resolve_voice(kokoro, "nezumi") == "jf_nezumi", "a display name"  # type: ignore[arg-type]
    assert engine_voice("nova", ["en_US-joe-medium"], {"en_US-joe-medium": "m"}, "en_US-joe-medium") == (
        "en_US-joe-medium",
        "nova is not offered here; using the default voice en_US-joe-medium",
    )


def test_other_names_are_refused_with_the_valid_ones() -> None:
    with pytest.raises(ApiError) as raised:
        resolve_voice(Engine((JOE,), JOE.id), "zz_nobody")  # type: ignore[arg-type]
    assert raised.value.param == "voice" and "en_US-joe-medium" in raised.value.message


def test_japanese_voices_and_text() -> None:
    assert voice_from_id("jf_alpha", japanese=True).languages == ("en-us", "ja")
    assert voice_from_id("jf_alpha").languages == ("en-us",)
    assert script_language("駅の前で待っています。") == "ja"
    assert script_language("Guten Tag") == "" and script_language("안녕하세요") == "ko"
    question = "元気ですか\uff1f"
    assert split_sentences(f"こんにちは。{question}はい」。") == ["こんにちは。", question, "はい」。"]


def test_languages_and_genders_as_published_and_shown() -> None:
    document = {"data": [{"id": "jf_alpha", "language": "en-us", "languages": ["en-us", "ja"]}, {"id": "x"}]}
    assert parse_languages(document) == {"jf_alpha": ("en-us", "ja")}
    shown = describe_voice("jf_alpha", {}, parse_languages(document))
    assert shown == {"voice": "jf_alpha", "languages": ["en-us", "ja"], "gender": "female"}
    assert describe_voice("onyx", {}, {}) == {"voice": "onyx", "languages": [], "gender": "male"}

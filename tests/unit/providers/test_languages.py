"""Languages in planning: English-only STT models refuse others by name, TTS picks a voice that speaks it."""

from __future__ import annotations

import pytest

from tests.unit.providers.test_mapping import KOKORO_JA, OPENAI, state
from voicemoded.api.errors import InvalidArgument
from voicemoded.conversation.results import Heard, TurnResult
from voicemoded.engines.voice_names import languages_of, speaks
from voicemoded.providers.endpoint import EndpointState, Source, update_state
from voicemoded.providers.plan import Plan, english_only_model, plan_stt, plan_tts


def stt(name: str, models: tuple[str, ...], source: Source = Source.LOCAL) -> EndpointState:
    s = state(name, source, None, models)
    object.__setattr__(s.endpoint, "kind", "stt")
    return s


def test_english_only_models_are_known_by_name() -> None:
    tiny, base = stt("whisper", ("tiny.en", "whisper-1")), stt("whisper", ("base", "whisper-1"))
    assert english_only_model(tiny, "whisper-1") == "tiny.en"
    assert english_only_model(tiny, "tiny.en") == "tiny.en"
    assert english_only_model(base, "whisper-1") == ""
    assert english_only_model(stt("openai", ("whisper-1",), Source.CLOUD), "whisper-1") == ""


def test_a_language_an_english_only_model_cannot_hear_names_the_model_to_use() -> None:
    tiny = stt("whisper", ("tiny.en", "whisper-1"))
    with pytest.raises(InvalidArgument) as raised:
        plan_stt([tiny], model=None, preferred_models=(), language="de")
    assert raised.value.message == (
        "the Whisper model tiny.en is English-only and cannot transcribe 'de'; use the multilingual model base"
        " (voicemodectl models use base, or VOICEMODE_WHISPER_MODEL=base)"
    )
    assert plan_stt([tiny], model=None, preferred_models=(), language="en").candidates
    base = stt("base", ("base", "whisper-1"))
    plan = plan_stt([tiny, base], model=None, preferred_models=(), language="de")
    assert [c.state for c in plan.candidates] == [base]
    assert "English-only" in plan.skipped[0][1]


def test_voice_languages() -> None:
    assert languages_of("jf_alpha") == ("ja",) and languages_of("af_sky") == ("en-us",)
    assert languages_of("jf_alpha", {"jf_alpha": ("en-us",)}) == ("en-us",), "what the server published wins"
    assert languages_of("en_US-joe-medium") == ()
    assert speaks("en", ("en-gb",)) and speaks("ja", ("en-us", "ja"))
    assert not speaks("de", ("en-us",)) and not speaks("en", ())


def tts_plan(states: list[EndpointState], language: str | None, voice: str | None = None) -> Plan:
    return plan_tts(
        states,
        voice=voice,
        model=None,
        instructions=None,
        preferred_voices=(),
        preferred_models=(),
        language=language,
    )


def test_tts_picks_a_voice_of_the_language_when_none_was_asked() -> None:
    joe = state("piper", Source.LOCAL, ("en_US-joe-medium",))
    update_state(joe, voice_languages={"en_US-joe-medium": ("en-us",)})
    kokoro = state("kokoro", Source.LOCAL, KOKORO_JA)
    both = ("en-us", "ja")
    update_state(kokoro, voice_languages={"jf_alpha": ("en-us",), "jf_nezumi": both, "jm_kumo": both})
    english = tts_plan([joe, kokoro], "en")
    assert english.voice == "en_US-joe-medium" and not english.language_warning, "both speak it: the first"
    japanese = tts_plan([joe, kokoro], "ja")
    assert japanese.voice == "jf_nezumi" and japanese.candidates[-1].state is joe
    assert not japanese.language_warning
    asked = tts_plan([joe, kokoro], "ja", voice="en_US-joe-medium")
    assert asked.voice == "en_US-joe-medium", "an explicit voice is never overridden"


def test_tts_says_which_languages_it_can_speak() -> None:
    joe = state("piper", Source.LOCAL, ("en_US-joe-medium",))
    update_state(joe, voice_languages={"en_US-joe-medium": ("en-us",)})
    kokoro = state("kokoro", Source.LOCAL, KOKORO_JA)
    update_state(kokoro, voice_languages=dict.fromkeys(KOKORO_JA, ("en-us",)))
    plan = tts_plan([joe, kokoro], "de")
    assert plan.language_warning == "no TTS voice speaks 'de'; the voices here speak en-us"
    assert plan.voice == "en_US-joe-medium", "still spoken, in the usual voice"
    cloud = state("openai", Source.CLOUD, OPENAI, ("tts-1",))
    assert not tts_plan([joe, cloud], "de").language_warning, "OpenAI's voices speak every language"


def test_the_turn_result_carries_the_language() -> None:
    result = TurnResult.of(
        "t1", None, Heard(text="Guten Tag", language="de"), listens=True, queue_wait=0.0, total=1.0
    )
    assert result.language == "de" and result.summary()["language"] == "de"
    assert result.to_proto().language == "de"

"""Voice and model mapping and request planning (pure rules, no I/O)."""

from __future__ import annotations

import pytest

from voicemoded.api.errors import FailedPrecondition, InvalidArgument
from voicemoded.providers.breaker import Breaker, BreakerPolicy
from voicemoded.providers.endpoint import Endpoint, EndpointState, Engine, Health, Source, normalize_url
from voicemoded.providers.plan import check_language, check_speed, plan_stt, plan_tts
from voicemoded.providers.voices import OPENAI_VOICES, choose_model, choose_voice, map_voice

KOKORO_JA = ("jf_alpha", "jf_nezumi", "jm_kumo")
KOKORO_EN = ("af_sky", "af_nova", "am_onyx", "bm_fable")
OPENAI = tuple(OPENAI_VOICES)


def state(
    name: str,
    source: Source,
    voices: tuple[str, ...] | None,
    models: tuple[str, ...] | None = None,
    health: Health = Health.UNKNOWN,
) -> EndpointState:
    ep = Endpoint(url=f"http://127.0.0.1:1/{name}", kind="tts", source=source, name=name)
    engine = Engine.OPENAI if source is Source.CLOUD else Engine.UNKNOWN
    return EndpointState(
        ep, Breaker(BreakerPolicy()), health=health, voices=voices, models=models, engine=engine
    )


def test_kokoro_voice_asked_of_openai_maps_to_nova() -> None:
    assert map_voice("af_sky", OPENAI) == ("nova", "af_sky is not offered here; closest female voice is nova")
    assert map_voice("am_adam", OPENAI)[0] == "onyx"


def test_openai_voice_asked_of_kokoro_finds_the_same_name() -> None:
    assert map_voice("nova", KOKORO_EN)[0] == "af_nova"
    assert map_voice("fable", KOKORO_EN)[0] == "bm_fable"
    assert map_voice("shimmer", KOKORO_JA)[0] == "jf_alpha", "same gender when the name is absent"
    assert map_voice("onyx", KOKORO_JA)[0] == "jm_kumo"


def test_voice_names_that_say_nothing_are_not_mapped() -> None:
    assert map_voice("af_sky", ("en_US-joe-medium",)) is None
    assert map_voice("bob", OPENAI) is None


def test_choose_voice_explicit_preferences_and_default() -> None:
    assert choose_voice("af_sky", (), KOKORO_EN).voice == "af_sky"
    assert choose_voice("af_sky", (), ("en_US-joe-medium",)) is None
    prefs = ("af_sky", "alloy")
    joe = choose_voice(None, prefs, ("en_US-joe-medium",))
    assert joe is not None and joe.voice == "en_US-joe-medium" and joe.mapped and "default voice" in joe.note
    own = choose_voice(None, (), ("jf_alpha", "jm_kumo"))
    assert own is not None and own.voice == "jf_alpha" and not own.mapped and not own.note
    assert choose_voice(None, prefs, OPENAI).voice == "alloy", "an exact later preference beats a mapping"
    unknown = choose_voice("whatever", prefs, None)
    assert unknown is not None and unknown.voice == "whatever", "unlisted voices are passed through"


def test_choose_model() -> None:
    prefs = ("tts-1-hd", "kokoro")
    assert choose_model(None, prefs, ("piper", "kokoro"), fallback="tts-1") == ("kokoro", "")
    assert choose_model(None, prefs, ("piper",), fallback="tts-1") == (
        "piper",
        "none of tts-1-hd, kokoro is offered here; using piper",
    )
    openai = ("gpt-4o-mini-tts", "tts-1")
    assert choose_model(None, (), openai, fallback="tts-1", prefer="tts-1") == ("tts-1", "")
    assert choose_model(None, (), ("piper", "tts-1"), fallback="tts-1") == ("piper", "")
    assert choose_model(None, (), None, fallback="tts-1") == ("tts-1", "")
    assert choose_model("tts-1-hd", prefs, ("tts-1",), fallback="tts-1") is None
    assert choose_model("tts-1-hd", prefs, None, fallback="tts-1") == ("tts-1-hd", "")
    capable = choose_model(None, (), ("tts-1", "gpt-4o-mini-tts"), fallback="tts-1", need_instructions=True)
    assert capable is not None and capable[0] == "gpt-4o-mini-tts"


def test_plan_orders_by_priority_then_voice_fit_then_health() -> None:
    user = state("user", Source.USER, ("en_US-joe-medium",))
    kokoro = state("kokoro", Source.LOCAL, KOKORO_JA)
    piper = state("piper", Source.LOCAL, ("en_US-joe-medium",))
    sky = state("sky", Source.LOCAL, KOKORO_EN, health=Health.UNHEALTHY)
    cloud = state("openai", Source.CLOUD, OPENAI, ("tts-1",))
    plan = plan_tts(
        [cloud, piper, kokoro, sky, user],
        voice=None,
        model=None,
        instructions=None,
        preferred_voices=("af_sky", "alloy"),
        preferred_models=("tts-1",),
    )
    # Piper speaks the planned voice (the user endpoint's Joe), so a failover keeps it; the others
    # follow by priority, then voice fit, then health.
    assert [c.state.endpoint.name for c in plan.candidates] == ["user", "piper", "sky", "kokoro", "openai"]
    assert plan.candidates[-1].voice.voice == "alloy"


def test_unknown_voice_is_invalid_and_names_known_voices() -> None:
    states = [state("kokoro", Source.LOCAL, KOKORO_JA), state("piper", Source.LOCAL, ("en_US-joe-medium",))]
    with pytest.raises(InvalidArgument) as err:
        plan_tts(
            states, voice="zz_nobody", model=None, instructions=None, preferred_voices=(), preferred_models=()
        )
    assert "zz_nobody" in err.value.message
    for voice in (*KOKORO_JA, "en_US-joe-medium"):
        assert voice in err.value.message


def test_explicit_model_and_instructions_are_honoured_or_rejected() -> None:
    local = state("piper", Source.LOCAL, ("joe",), ("piper", "gpt-4o-mini-tts"))
    cloud = state("openai", Source.CLOUD, OPENAI, ("tts-1", "gpt-4o-mini-tts"))
    with pytest.raises(InvalidArgument, match="tts-1-hd"):
        plan_tts(
            [local], voice=None, model="tts-1-hd", instructions=None, preferred_voices=(), preferred_models=()
        )
    with pytest.raises(InvalidArgument, match="instructions"):
        plan_tts(
            [local], voice=None, model=None, instructions="cheerful", preferred_voices=(), preferred_models=()
        )
    plan = plan_tts(
        [local, cloud],
        voice=None,
        model=None,
        instructions="cheerful",
        preferred_voices=(),
        preferred_models=(),
    )
    assert [c.model for c in plan.candidates] == ["gpt-4o-mini-tts"]
    assert plan.skipped[0][0] is local and "instructions" in plan.skipped[0][1]
    with pytest.raises(InvalidArgument, match="instructions"):
        plan_tts(
            [cloud], voice=None, model="tts-1", instructions="calm", preferred_voices=(), preferred_models=()
        )


def test_stt_plan_and_checks() -> None:
    whisper = state("whisper", Source.LOCAL, None, ("tiny.en", "base"))
    with pytest.raises(InvalidArgument, match="large-v3"):
        plan_stt([whisper], model="large-v3", preferred_models=())
    assert plan_stt([whisper], model=None, preferred_models=()).candidates[0].model == "tiny.en"
    with pytest.raises(FailedPrecondition, match="no STT endpoint"):
        plan_stt([], model=None, preferred_models=())
    with pytest.raises(InvalidArgument, match="speed"):
        check_speed(5.0)
    check_speed(0.25)
    with pytest.raises(InvalidArgument, match="ISO 639"):
        check_language("English")
    check_language("en")


def test_normalize_url() -> None:
    assert normalize_url("HTTP://LocalHost:8880") == "http://localhost:8880/v1"
    assert normalize_url("http://127.0.0.1:8880/v1/") == "http://127.0.0.1:8880/v1"
    with pytest.raises(ValueError):
        normalize_url("ftp://x")


def test_published_genders_allow_mapping_to_named_voices() -> None:
    joe = ("en_US-joe-medium",)
    genders = {"en_US-joe-medium": "m"}
    assert map_voice("am_adam", joe, genders) == (
        "en_US-joe-medium",
        "am_adam is not offered here; closest male voice is en_US-joe-medium",
    )
    assert map_voice("af_sky", joe, genders) is None, "never a male voice for a female request"
    assert map_voice("onyx", joe, genders)[0] == "en_US-joe-medium"

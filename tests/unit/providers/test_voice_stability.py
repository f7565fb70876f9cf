"""One voice per caller: load is balanced among endpoints of the same voice, never across voices."""

from __future__ import annotations

from tests.unit.providers.conftest import ServerFactory, SpeechFactory
from tests.unit.providers.test_failover import speak
from tests.unit.providers.test_mapping import KOKORO_JA, state
from voicemoded.providers.endpoint import EndpointState, Health, Source, update_state
from voicemoded.providers.plan import Plan, plan_tts

JOE = ("en_US-joe-medium",)


def plan(states: list[EndpointState], voice: str | None = None, prefs: tuple[str, ...] = ()) -> Plan:
    return plan_tts(
        states, voice=voice, model=None, instructions=None, preferred_voices=prefs, preferred_models=()
    )


def route(states: list[EndpointState], calls: int = 20, **kwargs: object) -> list[tuple[str, str]]:
    """(endpoint, voice) of the first candidate over ``calls`` requests, counting each as served."""
    out = []
    for _ in range(calls):
        first = plan(states, **kwargs).candidates[0]  # type: ignore[arg-type]
        assert first.voice is not None
        out.append((first.state.endpoint.name, first.voice.voice))
        update_state(first.state, served=first.state.served + 1)
    return out


def test_two_engines_with_different_voices_keep_one_voice() -> None:
    kokoro, piper = state("kokoro", Source.LOCAL, KOKORO_JA), state("piper", Source.LOCAL, JOE)
    routed = route([kokoro, piper])
    assert set(routed) == {("kokoro", "jf_alpha")}, routed
    assert plan([kokoro, piper]).voice == "jf_alpha"


def test_endpoints_of_the_same_voice_share_the_work() -> None:
    one, two = state("kokoro", Source.LOCAL, KOKORO_JA), state("kokoro-2", Source.LOCAL, KOKORO_JA)
    piper = state("piper", Source.LOCAL, JOE)
    routed = route([one, piper, two])
    assert {voice for _, voice in routed} == {"jf_alpha"}
    assert sorted({name for name, _ in routed}) == ["kokoro", "kokoro-2"]
    assert abs(sum(name == "kokoro" for name, _ in routed) - 10) <= 1


def test_the_voice_changes_only_when_none_of_its_endpoints_is_healthy() -> None:
    one = state("kokoro", Source.LOCAL, KOKORO_JA, health=Health.UNHEALTHY)
    two = state("kokoro-2", Source.LOCAL, KOKORO_JA)
    piper = state("piper", Source.LOCAL, JOE)
    kept = plan([one, piper, two])
    assert [c.state.endpoint.name for c in kept.candidates] == ["kokoro-2", "kokoro", "piper"]
    assert kept.voice_warning(kept.candidates[0]) == ""
    update_state(two, health=Health.UNHEALTHY, last_error="connection refused")
    switched = plan([one, piper, two])
    assert [c.state.endpoint.name for c in switched.candidates] == ["piper", "kokoro", "kokoro-2"]
    warning = switched.voice_warning(switched.candidates[0])
    assert warning.startswith(
        "voice jf_alpha is unavailable (kokoro: unhealthy; kokoro-2: connection refused)"
    )
    assert warning.endswith("spoke with en_US-joe-medium on piper instead")


def test_failover_order_is_fixed_across_voices() -> None:
    """Behind the planned voice, other voices follow in one order whatever their load."""
    kokoro = state("kokoro", Source.LOCAL, KOKORO_JA)
    piper, other = state("piper", Source.LOCAL, JOE), state("zeta", Source.LOCAL, ("en_GB-alan-low",))
    orders = set()
    for served in range(4):
        update_state(piper, served=served * 3)
        orders.add(tuple(c.state.endpoint.name for c in plan([kokoro, piper, other]).candidates))
    assert orders == {("kokoro", "piper", "zeta")}


def test_asked_or_preferred_voice_leads_over_priority_order_of_others() -> None:
    kokoro, piper = state("kokoro", Source.LOCAL, KOKORO_JA), state("piper", Source.LOCAL, JOE)
    asked = plan([kokoro, piper], prefs=JOE)
    assert asked.voice == JOE[0] and asked.candidates[0].state is piper
    assert set(route([kokoro, piper], prefs=("jm_kumo",))) == {("kokoro", "jm_kumo")}


def test_priority_still_comes_first_for_the_first_try() -> None:
    user = state("user", Source.USER, JOE)
    kokoro = state("kokoro", Source.LOCAL, KOKORO_JA)
    assert set(route([kokoro, user], calls=5)) == {("user", JOE[0])}
    # A named URL that is down and never listed its voices is still tried first; its guessed voice is
    # not the plan's, so the local voice that answers is no change of voice.
    dead = state("dead", Source.USER, None, health=Health.UNHEALTHY)
    planned = plan([kokoro, dead])
    assert [c.state.endpoint.name for c in planned.candidates] == ["dead", "kokoro"]
    assert planned.voice == "jf_alpha" and planned.voice_warning(planned.candidates[1]) == ""


async def test_speech_keeps_its_voice_and_warns_when_it_must_change(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    ja, joe = await server(voices=KOKORO_JA), await server(voices=JOE)
    sp = await speech(local={"tts": {"kokoro": ja.url, "piper": joe.url}}, voices=())
    for _ in range(6):
        info, _ = await speak(sp)
        assert (info.endpoint.name, info.voice, info.warnings) == ("kokoro", "jf_alpha", ())
    assert not joe.posts()
    ja.mode = "http500"
    info, _ = await speak(sp)
    assert (info.endpoint.name, info.voice) == ("piper", JOE[0])
    [warning] = info.warnings
    assert warning.startswith("voice jf_alpha is unavailable (kokoro: ") and "on piper instead" in warning

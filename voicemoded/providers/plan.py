"""Which endpoints a request may go to, with what voice and model, in which order.

Planning is pure (no I/O) so the rules are testable on their own: an explicit parameter an endpoint cannot
honour removes that endpoint with a reason; if that removes every endpoint, the request is invalid (not the
endpoints unavailable) and the error names what is on offer. Ordering is priority first (user, local,
cloud; user URLs in the order the person listed them), then how well the voice fits, then health, then
load, so equal endpoints (two local children offering the same voice) share the work.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from voicemoded.api.errors import FailedPrecondition, InvalidArgument
from voicemoded.providers.endpoint import EndpointState, Engine, Health, Kind
from voicemoded.providers.voices import VoiceChoice, choose_model, choose_voice

#: Unknown counts as healthy: a fresh endpoint must get its turn in the rotation.
_HEALTH_RANK = {Health.HEALTHY: 0, Health.UNKNOWN: 0, Health.UNHEALTHY: 1}
_LANGUAGE = re.compile(r"^[a-z]{2,3}$")
MIN_SPEED, MAX_SPEED = 0.25, 4.0


@dataclass(frozen=True, slots=True)
class Candidate:
    """One endpoint the request may try, with the voice and model it would ask for there."""

    state: EndpointState
    model: str
    voice: VoiceChoice | None = None
    notes: tuple[str, ...] = ()

    def sort_key(self) -> tuple[int, int, int, int, int, int]:
        s = self.state
        rank = self.voice.rank if self.voice else 0
        ep = s.endpoint
        return (ep.priority, ep.order, rank, _HEALTH_RANK[s.health], s.in_flight, s.served)


@dataclass(frozen=True, slots=True)
class Plan:
    candidates: tuple[Candidate, ...]
    skipped: tuple[tuple[EndpointState, str], ...]
    """Endpoints left out because they cannot honour an explicit parameter, with the reason."""


def _listing(values: Sequence[str], limit: int = 12) -> str:
    shown = ", ".join(values[:limit])
    return shown + (f", … ({len(values)} in all)" if len(values) > limit else "")


def check_speed(speed: float | None) -> None:
    if speed is not None and not MIN_SPEED <= speed <= MAX_SPEED:
        raise InvalidArgument(
            f"speed {speed:g} is out of range", hint=f"use a value from {MIN_SPEED} to {MAX_SPEED}"
        )


def check_language(language: str | None) -> None:
    if language is not None and not _LANGUAGE.match(language):
        raise InvalidArgument(
            f"language {language!r} is not an ISO 639 code", hint="use a code like 'en', 'de' or 'ja'"
        )


def _require_endpoints(kind: Kind, states: Sequence[EndpointState]) -> None:
    if not states:
        raise FailedPrecondition(
            f"no {kind.upper()} endpoint is configured or running",
            hint=(
                f"start a local service (voicemodectl service start {'whisper' if kind == 'stt' else 'piper'}),"
                f" set VOICEMODE_{kind.upper()}_BASE_URLS, or set OPENAI_API_KEY"
            ),
        )


def plan_tts(
    states: Sequence[EndpointState],
    *,
    voice: str | None,
    model: str | None,
    instructions: str | None,
    preferred_voices: tuple[str, ...],
    preferred_models: tuple[str, ...],
) -> Plan:
    _require_endpoints("tts", states)
    candidates: list[Candidate] = []
    skipped: list[tuple[EndpointState, str]] = []
    voice_misses = model_misses = 0
    for state in states:
        choice = choose_voice(voice, preferred_voices, state.voices, state.voice_genders)
        if choice is None:
            voice_misses += 1
            skipped.append((state, f"voice {voice!r} not offered (has {_listing(state.voices or ())})"))
            continue
        if instructions and state.engine is not Engine.OPENAI:
            # Local engines accept the field and ignore it: refusing here keeps it from being a no-op.
            model_misses += 1
            skipped.append((state, "does not take instructions (only OpenAI's gpt-4o-mini-tts does)"))
            continue
        picked = choose_model(
            model,
            preferred_models,
            state.models,
            fallback="tts-1",
            prefer="tts-1" if state.engine is Engine.OPENAI else None,
            need_instructions=bool(instructions),
        )
        if picked is None:
            model_misses += 1
            if model:
                reason = f"model {model!r} not offered (has {_listing(state.models or ())})"
            else:
                reason = "no model here takes instructions (needs gpt-4o-mini-tts)"
            skipped.append((state, reason))
            continue
        if instructions and model and "gpt-4o" not in picked[0]:
            model_misses += 1
            skipped.append((state, f"model {model!r} does not take instructions"))
            continue
        notes = tuple(n for n in (choice.note if choice.mapped else "", picked[1]) if n)
        candidates.append(Candidate(state, picked[0], choice, notes))
    if not candidates:
        raise _invalid_tts(states, skipped, voice, model, voice_misses, model_misses)
    return Plan(tuple(sorted(candidates, key=Candidate.sort_key)), tuple(skipped))


def _invalid_tts(
    states: Sequence[EndpointState],
    skipped: list[tuple[EndpointState, str]],
    voice: str | None,
    model: str | None,
    voice_misses: int,
    model_misses: int,
) -> InvalidArgument:
    if voice_misses >= model_misses and voice:
        known = sorted({v for s in states for v in (s.voices or ())})
        return InvalidArgument(
            f"voice {voice!r} is not offered by any TTS endpoint; known voices: {_listing(known, 40)}",
            hint="pick one of the known voices, or leave the voice unset to use VOICEMODE_VOICES",
            fields={"voice": voice},
        )
    known = sorted({m for s in states for m in (s.models or ())})
    return InvalidArgument(
        "no TTS endpoint can take this request: "
        + "; ".join(f"{s.endpoint.name}: {reason}" for s, reason in skipped),
        hint=f"known models: {_listing(known, 40)}" if known else "check the model and instructions",
        fields={"model": model or ""},
    )


def plan_stt(
    states: Sequence[EndpointState], *, model: str | None, preferred_models: tuple[str, ...]
) -> Plan:
    _require_endpoints("stt", states)
    candidates: list[Candidate] = []
    skipped: list[tuple[EndpointState, str]] = []
    for state in states:
        prefer = "whisper-1" if state.engine is Engine.OPENAI else None
        picked = choose_model(model, preferred_models, state.models, fallback="whisper-1", prefer=prefer)
        if picked is None:
            skipped.append((state, f"model {model!r} not offered (has {_listing(state.models or ())})"))
            continue
        candidates.append(Candidate(state, picked[0], None, (picked[1],) if picked[1] else ()))
    if not candidates:
        known = sorted({m for s in states for m in (s.models or ())})
        raise InvalidArgument(
            f"model {model!r} is not offered by any STT endpoint; known models: {_listing(known, 40)}",
            hint="pick one of the known models, or leave the model unset",
            fields={"model": model or ""},
        )
    return Plan(tuple(sorted(candidates, key=Candidate.sort_key)), tuple(skipped))

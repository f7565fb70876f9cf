"""Which endpoints a request may go to, with what voice and model, in which order.

Planning is pure (no I/O) so the rules are testable on their own: an explicit parameter an endpoint cannot
honour removes that endpoint with a reason; if that removes every endpoint, the request is invalid (not the
endpoints unavailable) and the error names what is on offer. Ordering is priority first (user, local,
cloud; user URLs in the order the person listed them), then how well the voice fits, then health, then
load, so equal endpoints (two local children offering the same voice) share the work.

Load never changes the voice: a person hearing a woman on one call and a man on the next hears two
assistants. So within a priority a synthesis goes first to the endpoints that speak the plan's voice (the
voice the best endpoint would use), balanced among themselves, and to another voice only when none of
them is healthy; the speech then carries a warning that says so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from voicemoded.api.errors import FailedPrecondition, InvalidArgument
from voicemoded.engines import models as whisper_models
from voicemoded.engines.voice_names import languages_of, speaks
from voicemoded.providers.endpoint import EndpointState, Engine, Health, Kind
from voicemoded.providers.voices import OPENAI_STT_MODELS, VoiceChoice, choose_model, choose_voice

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
    speaks_language: bool = True
    """The voice speaks the language the request asked for (True when none was asked)."""

    def preference(self) -> tuple[int, int, int, int]:
        """Where the endpoint stands regardless of its health and load."""
        ep = self.state.endpoint
        return (not self.speaks_language, ep.priority, ep.order, self.voice.rank if self.voice else 0)

    def sort_key(self) -> tuple[int, int, int, int, int, int, int]:
        s = self.state
        return (*self.preference(), _HEALTH_RANK[s.health], s.in_flight, s.served)

    @property
    def healthy(self) -> bool:
        return self.state.health is not Health.UNHEALTHY


@dataclass(frozen=True, slots=True)
class Plan:
    candidates: tuple[Candidate, ...]
    skipped: tuple[tuple[EndpointState, str], ...]
    """Endpoints left out because they cannot honour an explicit parameter, with the reason."""
    voice: str = ""
    """TTS: the voice the request gets when every endpoint is well (the best endpoint's voice)."""
    language_warning: str = ""
    """TTS: no voice speaks the language asked for; names the languages that can be spoken."""

    def voice_warning(self, served: Candidate) -> str:
        """Why ``served`` speaks another voice than the plan's, naming what became of the plan's; "" if not."""
        if served.voice is None or not self.voice or served.voice.voice == self.voice:
            return ""
        down = [c.state for c in self.candidates if c.voice is not None and c.voice.voice == self.voice]
        why = "; ".join(f"{s.endpoint.name}: {s.last_error or s.health.value}" for s in down)
        return (
            f"voice {self.voice} is unavailable ({why or 'its endpoints failed'}); "
            f"spoke with {served.voice.voice} on {served.state.endpoint.name} instead"
        )


def order_by_voice(candidates: Sequence[Candidate]) -> tuple[tuple[Candidate, ...], str]:
    """The candidates in trying order and the plan's voice: one voice first, other voices only after it.

    The plan's voice is the one the best endpoint (by priority, order and voice fit) speaks, among those
    that listed their voices (one that cannot list them is sent a guess). When none of its endpoints is
    healthy, the first healthy endpoint's voice leads instead. Priority still comes first (a URL the
    person named is tried before any local child); within it the leading voice's endpoints come first,
    balanced by load, and other voices follow in a fixed order, so even a failover lands on the same
    voice every time.
    """
    preferred = sorted(candidates, key=Candidate.preference)
    known = [c for c in preferred if c.state.voices is not None] or preferred
    voice_of = [_voice(c) for c in preferred]
    planned = _voice(known[0])
    healthy = [_voice(c) for c in known if c.healthy]
    lead = planned if planned in healthy or not healthy else healthy[0]
    first_seen = {v: i for i, v in reversed(list(enumerate(voice_of)))}

    def key(c: Candidate) -> tuple[int, ...]:
        language_miss, priority, order, rank = c.preference()
        s = c.state
        voice = _voice(c)
        return (
            language_miss,
            priority,
            order,
            voice != lead,
            rank,
            _HEALTH_RANK[s.health],
            first_seen[voice],
            s.in_flight,
            s.served,
        )

    return tuple(sorted(preferred, key=key)), planned


def _voice(candidate: Candidate) -> str:
    return candidate.voice.voice if candidate.voice else ""


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
    language: str | None = None,
) -> Plan:
    """``language`` (ISO 639) with no ``voice``: endpoints with a voice of that language go first."""
    _require_endpoints("tts", states)
    candidates: list[Candidate] = []
    skipped: list[tuple[EndpointState, str]] = []
    voice_misses = model_misses = 0
    for state in states:
        native = _voices_speaking(state, language) if language and not voice else None
        offered = native or state.voices
        choice = choose_voice(voice, preferred_voices, offered, state.voice_genders)
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
        candidates.append(
            Candidate(state, picked[0], choice, notes, speaks_language=native is None or bool(native))
        )
    if not candidates:
        raise _invalid_tts(states, skipped, voice, model, voice_misses, model_misses)
    ordered, planned = order_by_voice(candidates)
    return Plan(ordered, tuple(skipped), planned, _no_voice_speaks(language, ordered))


def _voices_speaking(state: EndpointState, language: str) -> tuple[str, ...]:
    """The voices of ``state`` that speak ``language``; every voice of OpenAI's (they speak them all)."""
    if state.engine is Engine.OPENAI:
        return state.voices or ()
    published = state.voice_languages
    return tuple(v for v in state.voices or () if speaks(language, languages_of(v, published)))


def _no_voice_speaks(language: str | None, candidates: Sequence[Candidate]) -> str:
    if not language or any(c.speaks_language for c in candidates):
        return ""
    spoken = sorted(
        {
            lang
            for c in candidates
            for v in c.state.voices or ()
            for lang in languages_of(v, c.state.voice_languages)
        }
    )
    can = f"the voices here speak {', '.join(spoken)}" if spoken else "no voice here says its language"
    return f"no TTS voice speaks {language!r}; {can}"


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


def english_only_model(state: EndpointState, model: str) -> str:
    """The English-only model ``model`` stands for at this endpoint ("" when it is multilingual).

    Whisper's ``*.en`` models hear English only; ``whisper-1`` at a server whose own models are all
    ``*.en`` (ours with tiny.en) is one of them too. Nothing else is known to be English-only.
    """
    if state.engine is Engine.OPENAI:
        return ""
    if model.endswith(".en"):
        return model
    own = [m for m in state.models or () if m not in OPENAI_STT_MODELS]
    return own[0] if own and all(m.endswith(".en") for m in own) else ""


def plan_stt(
    states: Sequence[EndpointState],
    *,
    model: str | None,
    preferred_models: tuple[str, ...],
    language: str | None = None,
) -> Plan:
    _require_endpoints("stt", states)
    candidates: list[Candidate] = []
    skipped: list[tuple[EndpointState, str]] = []
    english_only: list[str] = []
    for state in states:
        prefer = "whisper-1" if state.engine is Engine.OPENAI else None
        picked = choose_model(model, preferred_models, state.models, fallback="whisper-1", prefer=prefer)
        if picked is None:
            skipped.append((state, f"model {model!r} not offered (has {_listing(state.models or ())})"))
            continue
        if language and language != "en" and (only := english_only_model(state, picked[0])):
            english_only.append(only)
            skipped.append((state, whisper_models.english_only(only, language)))
            continue
        candidates.append(Candidate(state, picked[0], None, (picked[1],) if picked[1] else ()))
    if not candidates and english_only and language:
        multilingual = whisper_models.MULTILINGUAL_WHISPER_MODEL
        raise InvalidArgument(
            whisper_models.english_only(english_only[0], language),
            hint=f"run 'voicemodectl models use {multilingual}' (the Whisper service restarts with it),"
            " or leave the language unset to transcribe English",
            fields={"language": language, "model": english_only[0]},
        )
    if not candidates:
        known = sorted({m for s in states for m in (s.models or ())})
        raise InvalidArgument(
            f"model {model!r} is not offered by any STT endpoint; known models: {_listing(known, 40)}",
            hint="pick one of the known models, or leave the model unset",
            fields={"model": model or ""},
        )
    return Plan(tuple(sorted(candidates, key=Candidate.sort_key)), tuple(skipped))

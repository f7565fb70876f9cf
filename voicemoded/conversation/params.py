"""What one spoken turn is asked to do, resolved against the caller's settings and validated.

Parameter names follow VoiceMode's ``converse`` tool where they overlap. An explicit value always wins over
the caller's configuration; a value that cannot be honoured is refused here, before any audio moves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicemoded.audio.end_of_turn import TurnPolicy
from voicemoded.audio.endpointing import EndpointConfig
from voicemoded.audio.processing import ProcessingConfig
from voicemoded.config import Settings
from voicemoded.errors import InvalidArgument

AUDIO_FORMATS = ("wav", "flac", "mp3", "opus")


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

    @property
    def speaks(self) -> bool:
        return not self.skip_tts and bool(self.message.strip())

    @property
    def listens(self) -> bool:
        return self.wait_for_response

    def endpoint_config(self) -> EndpointConfig:
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


def resolve(settings: Settings, given: dict[str, Any]) -> TurnParams:
    """Fill unset parameters from the caller's settings; validate everything that was given."""
    message = str(given.get("message") or "")
    skip_tts = bool(given.get("skip_tts", False))
    wait = given.get("wait_for_response")
    params = TurnParams(
        message=message,
        wait_for_response=True if wait is None else bool(wait),
        skip_tts=skip_tts,
        listen_duration_max=_pick(given, "listen_duration_max", settings.listen_duration_max),
        listen_duration_min=_pick(given, "listen_duration_min", settings.min_recording_duration),
        voice=str(given.get("voice") or (settings.voices[0] if settings.voices else "")),
        tts_provider=str(given.get("tts_provider") or ""),
        tts_model=str(given.get("tts_model") or (settings.tts_models[0] if settings.tts_models else "")),
        tts_instructions=str(given.get("tts_instructions") or ""),
        speed=_pick(given, "speed", settings.tts_speed if settings.tts_speed != 1.0 else None),
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
    )
    _check(params.speaks or params.listens, "message", "nothing to do: give a message, or listen")
    _check(
        not (skip_tts and not params.listens),
        "skip_tts",
        "skip_tts with wait_for_response=false does nothing",
    )
    _check(0.5 <= params.listen_duration_max <= 3600, "listen_duration_max", "must be between 0.5 and 3600 s")
    _check(
        0 <= params.listen_duration_min <= params.listen_duration_max,
        "listen_duration_min",
        "must be between 0 and listen_duration_max",
    )
    _check(params.speed is None or 0.25 <= params.speed <= 4.0, "speed", "must be between 0.25 and 4.0")
    _check(0 <= params.vad_aggressiveness <= 3, "vad_aggressiveness", "must be 0, 1, 2 or 3")
    _check(0.1 <= params.silence_threshold <= 10, "silence_threshold", "must be between 0.1 and 10 s")
    _check(params.audio_format in AUDIO_FORMATS, "audio_format", f"must be one of {', '.join(AUDIO_FORMATS)}")
    _check(params.queue_timeout >= 0, "queue_timeout", "must not be negative")
    _check(len(message) <= 20_000, "message", "longer than 20,000 characters")
    return params


def _pick(given: dict[str, Any], name: str, default: Any) -> Any:
    value = given.get(name)
    return default if value is None else value

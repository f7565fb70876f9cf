"""What a turn produces: each stage's outcome, the turn's result and its events, the result and the
events with their gRPC and MCP forms beside them.

Importing this module costs no audio stack (the gRPC layer imports it at start-up); the converse loop
that fills these types lives in :mod:`voicemoded.conversation.loop`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from voicemoded.api.v1 import conversation_pb2
from voicemoded.conversation.journal import Timings
from voicemoded.render import plain, timestamp

if TYPE_CHECKING:
    from voicemoded.audio.playback import PlaybackResult
    from voicemoded.providers.failover import SpeechInfo

KINDS = {v.name.lower(): v.number for v in conversation_pb2.ConverseEvent.Kind.DESCRIPTOR.values}
"""Event kind -> its ``ConverseEvent.Kind`` number; an unknown kind is ``KIND_UNSPECIFIED`` (0)."""


@dataclass(frozen=True, slots=True)
class Spoken:
    """What the speak stage did: who spoke, in which voice, and how long each part took (seconds)."""

    played: PlaybackResult | None = None
    """None when the stage was cut short before playback ended."""
    provider: str = ""
    voice: str = ""
    model: str = ""
    mapping: str = ""
    warnings: tuple[str, ...] = ()
    """What the listener should know about the voice (another than usual, and why)."""
    ttfa: float = 0.0
    generation: float = 0.0
    playback: float = 0.0

    @classmethod
    def by(
        cls,
        info: SpeechInfo | None,
        *,
        played: PlaybackResult | None = None,
        ttfa: float = 0.0,
        generation: float = 0.0,
        playback: float = 0.0,
    ) -> Spoken:
        """The outcome with the speaker ``info`` names (the endpoint, voice and model that answered)."""
        timed = cls(played=played, ttfa=ttfa, generation=generation, playback=playback)
        if info is None:
            return timed
        return dataclasses.replace(
            timed,
            provider=info.endpoint.url,
            voice=info.voice,
            model=info.model,
            mapping="; ".join(info.notes),
            warnings=info.warnings,
        )


@dataclass(frozen=True, slots=True)
class Heard:
    """What the listen stage heard, where it is kept, and how long each part took (seconds)."""

    end_reason: str = ""
    text: str = ""
    speech_seconds: float = 0.0
    stt_provider: str = ""
    language: str = ""
    """The answer's language: the one asked for, else the one the STT endpoint detected."""
    recording: str = ""
    warnings: tuple[str, ...] = ()
    """What could not be written (the recording)."""
    mic_gap: float = 0.0
    record: float = 0.0
    stt: float = 0.0
    endpoint_delay: float = 0.0


@dataclass(frozen=True, slots=True)
class TurnResult:
    turn_id: str
    text: str = ""
    end_reason: str = ""
    tts_provider: str = ""
    stt_provider: str = ""
    voice: str = ""
    tts_model: str = ""
    voice_mapping: str = ""
    recording_path: str = ""
    speech_seconds: float = 0.0
    language: str = ""
    """The answer's language (ISO 639): the one asked for, else the one detected; "" unknown."""
    timings: Timings = field(default_factory=Timings)
    warnings: tuple[str, ...] = ()
    """What the turn succeeded without: the usual voice, the recording, the journal line."""

    @classmethod
    def of(
        cls,
        turn_id: str,
        spoken: Spoken | None,
        heard: Heard | None,
        *,
        listens: bool,
        queue_wait: float,
        total: float,
        kept: str = "",
        cancelled: bool = False,
    ) -> TurnResult:
        """The result of a turn from its stages' outcomes (None: the stage did not run or learnt nothing).

        ``kept`` names the recording a turn cut short left behind; a message played to its end by a turn
        that does not listen ends it as "spoken".
        """
        said, answer = spoken or Spoken(), heard or Heard()
        if cancelled:
            end_reason = "cancelled"
        elif heard is not None:
            end_reason = heard.end_reason
        else:
            end_reason = "spoken" if said.played is not None and not listens else ""
        return cls(
            turn_id,
            text=answer.text,
            end_reason=end_reason,
            tts_provider=said.provider,
            stt_provider=answer.stt_provider,
            voice=said.voice,
            tts_model=said.model,
            voice_mapping=said.mapping,
            recording_path=kept or answer.recording,
            speech_seconds=answer.speech_seconds,
            language=answer.language,
            timings=Timings(
                queue_wait=queue_wait,
                ttfa=said.ttfa,
                generation=said.generation,
                playback=said.playback,
                mic_gap=answer.mic_gap,
                record=answer.record,
                stt=answer.stt,
                endpoint_delay=answer.endpoint_delay,
                total=total,
            ),
            warnings=(*said.warnings, *answer.warnings),
        )

    def to_proto(self) -> conversation_pb2.TurnResult:
        return conversation_pb2.TurnResult(
            turn_id=self.turn_id,
            text=self.text,
            tts_provider=self.tts_provider,
            stt_provider=self.stt_provider,
            voice=self.voice,
            tts_model=self.tts_model,
            timings=self.timings.to_proto(),
            end_reason=self.end_reason,
            recording_path=self.recording_path,
            speech_seconds=self.speech_seconds,
            voice_mapping=self.voice_mapping,
            warnings=self.warnings,
            language=self.language,
        )

    def summary(self) -> dict[str, Any]:
        """The fields an assistant needs, timings in seconds; empty ones left out."""
        out = {
            "text": self.text,
            "end_reason": self.end_reason,
            "voice": self.voice,
            "tts_provider": self.tts_provider,
            "stt_provider": self.stt_provider,
            "language": self.language,
            "recording": self.recording_path,
            "warnings": "; ".join(self.warnings),  # another voice, what could not be written (full disk)
            "timings": plain(self.timings),
        }
        return {k: v for k, v in out.items() if v not in ("", None, {})}


@dataclass(frozen=True, slots=True)
class TurnEvent:
    """``kind``: queued, tts_start, first_audio, playback_end, listening, speech_start, speech_end,
    barge_in, transcript, progress (a warning: what could not be written), done (its ``detail``: the
    warnings). ``t`` is seconds since the call arrived; ``at`` wall-clock time."""

    kind: str
    t: float
    at: float
    detail: str = ""
    text: str = ""
    result: TurnResult | None = None

    def to_proto(self) -> conversation_pb2.ConverseEvent:
        out = conversation_pb2.ConverseEvent(
            kind=KINDS.get(self.kind, 0),  # type: ignore[arg-type]
            t=self.t,
            time=timestamp(self.at),
            detail=self.detail,
            text=self.text,
        )
        if self.result is not None:
            out.result.CopyFrom(self.result.to_proto())
        return out

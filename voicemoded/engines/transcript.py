"""Transcripts and the five shapes OpenAI's transcription endpoint answers in."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi.responses import JSONResponse, PlainTextResponse, Response

RESPONSE_FORMATS = ("json", "text", "verbose_json", "srt", "vtt")


@dataclass(frozen=True, slots=True)
class Segment:
    id: int
    start: float
    end: float
    text: str
    avg_logprob: float = 0.0
    no_speech_prob: float = 0.0
    compression_ratio: float = 0.0
    temperature: float = 0.0
    tokens: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class Transcript:
    text: str
    language: str
    duration: float
    segments: tuple[Segment, ...] = field(default_factory=tuple)


def _timestamp(seconds: float, separator: str) -> str:
    millis = round(seconds * 1000)
    hours, millis = divmod(millis, 3_600_000)
    minutes, millis = divmod(millis, 60_000)
    secs, millis = divmod(millis, 1000)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}"


def to_srt(transcript: Transcript) -> str:
    blocks = [
        f"{i}\n{_timestamp(s.start, ',')} --> {_timestamp(s.end, ',')}\n{s.text.strip()}\n"
        for i, s in enumerate(transcript.segments, start=1)
    ]
    return "\n".join(blocks)


def to_vtt(transcript: Transcript) -> str:
    blocks = [
        f"{_timestamp(s.start, '.')} --> {_timestamp(s.end, '.')}\n{s.text.strip()}\n"
        for s in transcript.segments
    ]
    return "WEBVTT\n\n" + "\n".join(blocks)


def to_verbose(transcript: Transcript) -> dict[str, Any]:
    return {
        "task": "transcribe",
        "language": transcript.language,
        "duration": round(transcript.duration, 3),
        "text": transcript.text,
        "segments": [
            {
                "id": s.id,
                "seek": 0,
                "start": round(s.start, 3),
                "end": round(s.end, 3),
                "text": s.text,
                "tokens": list(s.tokens),
                "temperature": s.temperature,
                "avg_logprob": s.avg_logprob,
                "compression_ratio": s.compression_ratio,
                "no_speech_prob": s.no_speech_prob,
            }
            for s in transcript.segments
        ],
    }


def render(transcript: Transcript, response_format: str) -> Response:
    """The HTTP response for ``response_format`` (already validated against :data:`RESPONSE_FORMATS`).

    ``json`` carries the language heard (asked for, or detected) beside the text, as ``verbose_json``
    does: an extra field OpenAI's clients ignore, which the daemon reports with the turn.
    """
    if response_format == "text":
        return PlainTextResponse(transcript.text)
    if response_format == "srt":
        return PlainTextResponse(to_srt(transcript))
    if response_format == "vtt":
        return PlainTextResponse(to_vtt(transcript), media_type="text/vtt")
    if response_format == "verbose_json":
        return JSONResponse(to_verbose(transcript))
    language = {"language": transcript.language} if transcript.language else {}
    return JSONResponse({"text": transcript.text, **language, **confidence(transcript)})


def confidence(transcript: Transcript) -> dict[str, float]:
    """Whisper's own confidence beside the plain ``json`` text (extra fields OpenAI's clients ignore).

    The end of turn trusts a transcript made at a pause only when Whisper was sure of it: the lowest
    average log-probability of its segments, and the highest probability that a segment was no speech.
    """
    if not transcript.segments:
        return {}
    return {
        "avg_logprob": round(min(s.avg_logprob for s in transcript.segments), 4),
        "no_speech_prob": round(max(s.no_speech_prob for s in transcript.segments), 4),
    }

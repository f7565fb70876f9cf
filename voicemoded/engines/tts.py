"""What Piper and Kokoro share: OpenAI's ``POST /v1/audio/speech``, streamed sentence by sentence.

The text is cut into sentences; the first is synthesized before the response starts (so a failure is
still an honest HTTP error, and the first bytes leave as soon as one sentence exists), and each next
sentence is synthesized while the previous one is being sent. Every format leaves at 24 kHz mono, the
rate OpenAI's ``pcm`` uses, resampled through soxr from whatever the voice produces; ``X-Sample-Rate``
says so. OpenAI's voice names and Kokoro-FastAPI's are mapped onto this engine's voices by the table in
:mod:`~voicemoded.engines.voice_names` (the one the daemon maps with), and ``X-Voice`` names the voice
that spoke; any other unknown voice, and an unknown format, model or speed, is a 400 that lists what is
valid.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import numpy as np
import structlog
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from pydantic import BaseModel

from voicemoded.audio.codecs import ENCODE_FORMATS, Encoder
from voicemoded.audio.format import AudioFormat
from voicemoded.audio.resample import Resampler
from voicemoded.engines.server import ApiError, EngineHost, create_app
from voicemoded.engines.text import split_sentences
from voicemoded.engines.voice_names import engine_voice

log = structlog.get_logger(__name__)

OUTPUT_FORMAT = AudioFormat(rate=24_000)
"""What leaves the server: OpenAI's pcm is 24 kHz mono s16le, and the other formats follow it."""
OPENAI_MODELS = ("tts-1", "tts-1-hd", "gpt-4o-mini-tts")
MAX_INPUT_CHARS = 4096
SENTENCE_GAP_S = 0.2


@dataclass(frozen=True, slots=True)
class Voice:
    id: str
    name: str
    language: str
    """The language the voice speaks by default (``en-us``)."""
    gender: str = ""
    languages: tuple[str, ...] = ()
    """Every language it speaks, ``language`` first; empty: ``language`` alone."""


class Synthesizer(Protocol):
    """A TTS engine: blocking calls, made only from the host's worker thread."""

    name: str
    sample_rate: int
    default_voice: str
    speed_range: tuple[float, float]

    @property
    def voices(self) -> tuple[Voice, ...]:
        """What it can speak now (Piper's grow as voices are downloaded)."""
        ...

    def load(self) -> None: ...

    def model_ids(self) -> list[str]: ...

    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        """Mono int16 samples at ``sample_rate`` for one sentence."""
        ...


class SpeechRequest(BaseModel):
    model: str = "tts-1"
    input: str
    voice: str | None = None
    speed: float = 1.0
    response_format: str = "mp3"


def resolve_voice(synth: Synthesizer, requested: str | None) -> str:
    """The voice id for ``requested`` (an id, a display name in any case, or an OpenAI or Kokoro-FastAPI
    name); 400 naming the valid ones."""
    if not requested:
        return synth.default_voice
    wanted = requested.strip().lower()
    voices = synth.voices  # read once: Piper's are looked up on disk
    for voice in voices:
        if wanted in (voice.id.lower(), voice.name.lower()):
            return voice.id
    genders = {v.id: v.gender[:1] for v in voices if v.gender}
    mapped = engine_voice(wanted, [v.id for v in voices], genders, synth.default_voice)
    if mapped is not None:
        log.info("tts.voice_mapped", engine=synth.name, requested=requested, voice=mapped[0])
        return mapped[0]
    valid = ", ".join(v.id for v in voices)
    raise ApiError(
        400,
        f"unknown voice {requested!r}; valid voices: {valid} (and OpenAI's names, such as alloy or nova)",
        param="voice",
    )


def validate(synth: Synthesizer, request: SpeechRequest) -> tuple[str, list[str]]:
    """Check every field against what this engine can honour; returns (voice id, sentences)."""
    if request.model not in synth.model_ids():
        valid = ", ".join(synth.model_ids())
        raise ApiError(400, f"model {request.model!r} is not served here; use one of {valid}", param="model")
    if request.response_format not in ENCODE_FORMATS:
        valid = ", ".join(ENCODE_FORMATS)
        raise ApiError(
            400,
            f"unknown response_format {request.response_format!r}; use one of {valid}",
            param="response_format",
        )
    low, high = synth.speed_range
    if not low <= request.speed <= high:
        raise ApiError(400, f"speed {request.speed} is outside {low}-{high} for {synth.name}", param="speed")
    if len(request.input) > MAX_INPUT_CHARS:
        raise ApiError(400, f"input is longer than {MAX_INPUT_CHARS} characters", param="input")
    sentences = split_sentences(request.input)
    if not sentences:
        raise ApiError(400, "input is empty", param="input")
    return resolve_voice(synth, request.voice), sentences


async def speech_stream(
    host: EngineHost, synth: Synthesizer, sentences: list[str], voice: str, speed: float, fmt: str
) -> tuple[Encoder, AsyncIterator[bytes]]:
    """Synthesize the first sentence now, then return the encoder and the stream of encoded bytes."""
    source = AudioFormat(rate=synth.sample_rate)
    resampler = Resampler(source, OUTPUT_FORMAT)
    encoder = Encoder(fmt, OUTPUT_FORMAT)
    gap = np.zeros(int(SENTENCE_GAP_S * synth.sample_rate), dtype=np.int16).tobytes()

    def start(index: int) -> asyncio.Future[np.ndarray]:
        return asyncio.ensure_future(host.run(synth.synthesize, sentences[index], voice, speed))

    first = await host.run(synth.synthesize, sentences[0], voice, speed)

    async def chunks() -> AsyncIterator[bytes]:
        pending: asyncio.Future[np.ndarray] | None = start(1) if len(sentences) > 1 else None
        audio = first
        sent = 0
        try:
            for index in range(len(sentences)):
                if index > 0:
                    assert pending is not None
                    audio = await pending
                    pending = start(index + 1) if index + 1 < len(sentences) else None
                pcm = audio.astype("<i2").tobytes() + (gap if index + 1 < len(sentences) else b"")
                data = encoder.encode(resampler.process(pcm))
                if data:
                    sent += len(data)
                    yield data
            tail = encoder.encode(resampler.flush()) + encoder.finish()
            if tail:
                sent += len(tail)
                yield tail
            log.info(
                "tts.spoken", engine=synth.name, voice=voice, sentences=len(sentences), bytes=sent, format=fmt
            )
        except Exception as exc:
            # Headers are gone: the client sees a short body; the log says why.
            log.error("tts.stream_failed", engine=synth.name, error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            if pending is not None:
                pending.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await pending

    return encoder, chunks()


def build_tts_app(synth: Synthesizer, on_load_failure: Callable[[], None]) -> FastAPI:
    host = EngineHost(synth)
    app = create_app(host, on_load_failure=on_load_failure)

    @app.get("/v1/audio/voices")
    async def voices() -> dict[str, Any]:
        offered = synth.voices
        return {
            "voices": [v.id for v in offered],
            "default": synth.default_voice,
            "data": [{**asdict(v), "languages": list(v.languages or (v.language,))} for v in offered],
        }

    @app.post("/v1/audio/speech")
    async def speech(request: SpeechRequest) -> StreamingResponse:
        host.require_ready()
        voice, sentences = validate(synth, request)
        encoder, body = await speech_stream(
            host, synth, sentences, voice, request.speed, request.response_format
        )
        headers = {
            "X-Sample-Rate": str(encoder.rate),
            "X-Channels": str(OUTPUT_FORMAT.channels),
            "X-Voice": voice,
            "Cache-Control": "no-store",
        }
        return StreamingResponse(body, media_type=encoder.content_type, headers=headers)

    return app

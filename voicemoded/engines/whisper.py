"""Speech to text server: faster-whisper behind OpenAI's ``POST /v1/audio/transcriptions``.

Run as ``python -m voicemoded.engines.whisper [--model tiny.en|base] [--port 2022]``.

Whisper invents text for silence ("Thank you.", "you") when it is given nothing to hear, and an
assistant that answers words nobody said is worse than one that hears nothing. Two gates stop that: a
clip whose loudest 30 ms stays below an energy floor is answered "" without running the model, and the
rest goes through faster-whisper's Silero VAD filter, so only speech reaches the decoder.

Whisper hears audio in 30 s windows, and faster-whisper pads every clip to one; most of the time of a
short answer went into encoding that padding (0.38 s of 0.5 s for a 4 s answer with tiny.en on two
cores). The encoder here is given only as much of the window as the speech fills (after the VAD filter)
plus a margin, and never less than 10 s (like whisper.cpp's ``--audio-ctx``): 0.11 s for that answer,
with the same words. Speech under 1.5 s (one or two words) keeps the full window: on a short window
tiny.en heard "Stop." as "dot." or nothing, and "No thanks." twice, in about one draw in five. A
short-window decode that comes back degenerate (repetitive, or more text than the clip can hold) is
done again on the full window. Requests for segment times (verbose_json, srt, vtt) keep the full window.

Every request decodes within a budget of decoder steps proportional to its audio (see
:mod:`voicemoded.engines.whisper_model`): babble that sends Whisper round its fallback ladder comes
back in a bounded time: past the budget each window is decoded once, greedily.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import numpy as np
import structlog
from fastapi import FastAPI, File, Form, UploadFile
from fastapi.responses import Response

from voicemoded import accelerator
from voicemoded.audio import codecs
from voicemoded.audio.format import MAX_RATE, MIN_RATE, SPEECH_FORMAT, AudioFormat, FormatError
from voicemoded.engines import models
from voicemoded.engines.server import (
    ApiError,
    EngineHost,
    argument_parser,
    configure_logging,
    create_app,
    default_models_dir,
    serve,
)
from voicemoded.engines.transcript import RESPONSE_FORMATS, Segment, Transcript, render
from voicemoded.engines.whisper_model import DecodeBudget, context_frames, load_model

__all__ = ["TranscribeOptions", "WhisperEngine", "build_app", "context_frames", "degenerate", "main"]

log = structlog.get_logger(__name__)

DEFAULT_PORT = 2022
OPENAI_MODEL = "whisper-1"
SILENCE_FLOOR_DBFS = -55.0
"""Loudest 30 ms window below this means no one spoke; real speech peaks 30 dB or more above it."""

MAX_COMPRESSION_RATIO = 2.4
"""A decode whose text compresses better than this is repeating itself (OpenAI's own threshold)."""
MAX_CHARS_PER_SECOND = 30.0
"""More text than this per second of audio cannot have been said (fast speech is ~20)."""
MAX_UPLOAD_BYTES = 100 * 1024 * 1024
"""Largest upload (with its form fields), refused with 413 before it is read: above the daemon's own
file limit, and about 50 minutes of 16 kHz WAV."""

_PCM_TYPES = ("audio/pcm", "audio/l16", "audio/x-raw", "audio/raw", "application/octet-stream+pcm")


@dataclass(frozen=True, slots=True)
class TranscribeOptions:
    language: str | None = None
    prompt: str | None = None
    temperature: float | None = None
    """None: faster-whisper's fallback ladder (0.0, 0.2, ... 1.0), like OpenAI's default."""
    timestamps: bool = False
    """The caller wants segment times (verbose_json, srt, vtt): keep the full window, on which Whisper
    places them; on a short one it once ended a 5 s clip's segment at 7 s."""


def loudest_dbfs(samples: np.ndarray, rate: int = SPEECH_FORMAT.rate) -> float:
    """RMS level of the loudest 30 ms window, in dB relative to int16 full scale."""
    window = max(1, rate * 30 // 1000)
    usable = len(samples) - len(samples) % window
    if usable == 0:
        usable, window = len(samples), max(1, len(samples))
    if usable == 0:
        return -120.0
    blocks = samples[:usable].astype(np.float64).reshape(-1, window)
    rms = float(np.sqrt((blocks**2).mean(axis=1)).max())
    return 20 * np.log10(max(rms, 1e-9) / 32768.0)


class WhisperEngine:
    """One faster-whisper model, loaded on the worker thread and used only from it."""

    name = "whisper"

    def __init__(
        self, model: str, models_dir: Path, *, beam_size: int = 5, threads: int = 0, device: str = "auto"
    ) -> None:
        if model not in models.WHISPER_PACKAGES:
            raise ApiError(400, f"unknown model {model!r}; use one of {', '.join(models.WHISPER_PACKAGES)}")
        self.model = model
        self.models_dir = models_dir
        self.beam_size = beam_size
        self.threads = threads or (os.cpu_count() or 1)
        self.device = device
        """VOICEMODE_DEVICE: auto, cpu or cuda (see :mod:`voicemoded.accelerator`)."""
        self._whisper: Any = None

    @property
    def english_only(self) -> bool:
        return self.model.endswith(".en")

    def model_ids(self) -> list[str]:
        return [self.model, OPENAI_MODEL]

    def load(self) -> None:
        path = models.whisper_model_path(self.model, self.models_dir)
        self._whisper = load_model(str(path), self.threads, self.device)
        # One real decode so the first request does not pay for lazy initialisation.
        noise = np.random.default_rng(0).normal(0, 0.01, SPEECH_FORMAT.rate).astype(np.float32)
        segments, _ = self._whisper.transcribe(noise, beam_size=1, vad_filter=False, language="en")
        list(segments)

    def valid_languages(self) -> tuple[str, ...]:
        if self.english_only:
            return ("en",)
        from faster_whisper.tokenizer import _LANGUAGE_CODES

        return tuple(_LANGUAGE_CODES)

    def transcribe(self, pcm: bytes, options: TranscribeOptions) -> Transcript:
        samples = np.frombuffer(pcm, dtype="<i2")
        duration = len(samples) / SPEECH_FORMAT.rate
        language = options.language or ("en" if self.english_only else "")
        if loudest_dbfs(samples) < SILENCE_FLOOR_DBFS:
            log.info("stt.silence", seconds=round(duration, 2))
            return Transcript(text="", language=language or "en", duration=duration)
        temperature: float | tuple[float, ...] = (
            options.temperature if options.temperature is not None else (0.0, 0.2, 0.4, 0.6, 0.8, 1.0)
        )
        audio = samples.astype(np.float32) / 32768.0
        short = not options.timestamps
        budget = DecodeBudget.for_audio(duration)
        self._whisper.budget = budget
        try:
            kept, language_found = self._decode(audio, options, temperature, short_window=short)
            shortened = self._whisper.shortened
            if shortened is not None and degenerate(kept, duration) and not budget.exhausted:
                log.info("stt.full_window_retry", seconds=round(duration, 2), context_frames=shortened)
                kept, language_found = self._decode(audio, options, temperature, short_window=False)
        finally:
            self._whisper.budget = None
        log.info(
            "stt.decoded",
            seconds=round(duration, 2),
            steps=budget.spent,
            budget=budget.limit,
            bound=budget.bound,
            decodes=budget.calls,
            budget_spent=budget.exhausted,
            greedy_windows=budget.greedy_windows,
        )
        text = " ".join(s.text.strip() for s in kept if s.text.strip())
        return Transcript(text=text, language=language_found, duration=duration, segments=kept)

    def _decode(
        self,
        audio: np.ndarray,
        options: TranscribeOptions,
        temperature: float | tuple[float, ...],
        *,
        short_window: bool,
    ) -> tuple[tuple[Segment, ...], str]:
        self._whisper.short_window = short_window
        self._whisper.shortened = None
        try:
            segments, info = self._whisper.transcribe(
                audio,
                language=options.language or None,
                initial_prompt=options.prompt or None,
                temperature=temperature,
                beam_size=self.beam_size,
                vad_filter=True,
                condition_on_previous_text=False,
            )
            return self._segments(segments), info.language
        finally:
            self._whisper.short_window = False

    @staticmethod
    def _segments(segments: Any) -> tuple[Segment, ...]:
        """Run faster-whisper's lazy decoding to the end."""
        return tuple(
            Segment(
                id=i,
                start=s.start,
                end=s.end,
                text=s.text,
                avg_logprob=s.avg_logprob,
                no_speech_prob=s.no_speech_prob,
                compression_ratio=s.compression_ratio,
                temperature=s.temperature or 0.0,
                tokens=tuple(s.tokens),
            )
            for i, s in enumerate(segments)
        )


def degenerate(segments: tuple[Segment, ...], seconds: float) -> bool:
    """Whether a decode looped: repetitive segments, or more text than ``seconds`` of speech can hold."""
    chars = sum(len(s.text.strip()) for s in segments)
    looping = any(s.compression_ratio > MAX_COMPRESSION_RATIO for s in segments)
    return looping or chars > MAX_CHARS_PER_SECOND * seconds + 20


def _pcm_rate(content_type: str | None, filename: str | None, sample_rate: int | None) -> int | None:
    """The rate of a raw PCM upload, None for a container file; raw PCM without a rate is an error."""
    ctype = (content_type or "").lower()
    raw = any(ctype.startswith(t) for t in _PCM_TYPES) or (filename or "").lower().endswith((".pcm", ".raw"))
    if sample_rate is not None:
        return sample_rate
    if not raw:
        return None
    match = re.search(r"rate=(\d+)", ctype)
    if match:
        return int(match.group(1))
    raise ApiError(400, "raw PCM needs its sample rate: send a sample_rate field", param="sample_rate")


def _pcm_format(rate: int | None) -> AudioFormat | None:
    """Raw PCM's layout (16-bit mono at ``rate``), checked before the upload is read."""
    if rate is None:
        return None
    try:
        return AudioFormat.checked(rate, 2, 1, where="sample_rate")
    except FormatError:
        raise ApiError(
            400, f"sample_rate must be {MIN_RATE}..{MAX_RATE} Hz, got {rate}", param="sample_rate"
        ) from None


def build_app(engine: WhisperEngine, on_load_failure: Callable[[], None]) -> FastAPI:
    host = EngineHost(engine)
    app = create_app(host, on_load_failure=on_load_failure)

    @app.post("/v1/audio/transcriptions")
    async def transcriptions(
        file: Annotated[UploadFile, File()],
        model: Annotated[str, Form()] = OPENAI_MODEL,
        language: Annotated[str | None, Form()] = None,
        prompt: Annotated[str | None, Form()] = None,
        temperature: Annotated[float | None, Form()] = None,
        response_format: Annotated[str, Form()] = "json",
        sample_rate: Annotated[int | None, Form()] = None,
    ) -> Response:
        if model not in engine.model_ids():
            valid = ", ".join(engine.model_ids())
            raise ApiError(400, f"model {model!r} is not served here; use one of {valid}", param="model")
        if response_format not in RESPONSE_FORMATS:
            valid = ", ".join(RESPONSE_FORMATS)
            raise ApiError(
                400,
                f"unknown response_format {response_format!r}; use one of {valid}",
                param="response_format",
            )
        if language and language.strip().lower() == "auto":
            language = None  # whisper.cpp clients (VoiceMode among them) send "auto" for "detect it"
        if language and language not in engine.valid_languages():
            if engine.english_only:
                message = models.english_only(engine.model, language)
                raise ApiError(
                    400, f"{message}; a server started by hand takes --model base", param="language"
                )
            raise ApiError(400, f"unsupported language {language!r}", param="language")
        if temperature is not None and not 0.0 <= temperature <= 1.0:
            raise ApiError(400, "temperature must be between 0 and 1", param="temperature")
        pcm_format = _pcm_format(_pcm_rate(file.content_type, file.filename, sample_rate))
        data = await file.read()
        pcm = await asyncio.to_thread(codecs.decode, data, target=SPEECH_FORMAT, pcm_format=pcm_format)
        options = TranscribeOptions(
            language=language, prompt=prompt, temperature=temperature,
            timestamps=response_format in ("verbose_json", "srt", "vtt"),
        )  # fmt: skip
        transcript = await host.run(engine.transcribe, pcm, options)
        log.info("stt.transcribed", seconds=round(transcript.duration, 2), chars=len(transcript.text))
        return render(transcript, response_format)

    return app


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("whisper", DEFAULT_PORT)
    parser.add_argument(
        "--model", default=models.DEFAULT_WHISPER_MODEL, choices=tuple(models.WHISPER_PACKAGES)
    )
    parser.add_argument(
        "--beam-size",
        type=int,
        default=5,
        help="5 (the default) is a little more exact; 1 (greedy) answers sooner",
    )
    parser.add_argument("--threads", type=int, default=0, help="CPU threads for inference (0 = all cores)")
    accelerator.add_argument(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    engine = WhisperEngine(
        args.model,
        args.models_dir or default_models_dir(),
        beam_size=args.beam_size,
        threads=args.threads,
        device=args.device,
    )
    return serve(
        lambda stop: build_app(engine, stop),
        host=args.host,
        port=args.port,
        engine="whisper",
        token_file=args.token_file,
        max_body_bytes=MAX_UPLOAD_BYTES,
    )


if __name__ == "__main__":
    sys.exit(main())

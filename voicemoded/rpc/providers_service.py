"""The Providers service: endpoint list and probe, streaming synthesis, transcription."""

from __future__ import annotations

import asyncio
import contextlib
import stat
import time
from collections.abc import AsyncIterator
from pathlib import Path

import grpc

from voicemoded.api.errors import InvalidArgument, NotFound, quote, too_large
from voicemoded.api.files import NotRegular, OverLimit, read_bounded
from voicemoded.api.v1 import common_pb2, providers_pb2, providers_pb2_grpc
from voicemoded.audio.format import AudioChunk
from voicemoded.conversation.journal import last_recording
from voicemoded.core import Core
from voicemoded.providers import EndpointStatus, SpeechInfo
from voicemoded.rpc import convert
from voicemoded.rpc.errors import streaming, unary

#: The largest audio file transcribed, read from disk or sent inline (voicemodectl refuses a larger one
#: before reading it). An hour of 16 kHz mono s16le is 110 MiB; speech worth one request is far less.
MAX_FILE_BYTES = 64 * 1024 * 1024


def provider(s: EndpointStatus) -> providers_pb2.Provider:
    return providers_pb2.Provider(
        url=s.url,
        kind=s.kind,
        source=s.source,
        priority=s.priority,
        name=s.name,
        health=s.health,
        breaker=s.breaker,
        last_error=s.last_error,
        latency_ms=s.latency_ms or 0.0,
        models=list(s.models),
        voices=list(s.voices),
        in_flight=s.in_flight,
    )


def synthesis_info(info: SpeechInfo) -> providers_pb2.SynthesisInfo:
    fmt = info.format
    return providers_pb2.SynthesisInfo(
        provider_url=info.endpoint.url,
        provider_name=info.endpoint.name,
        voice=info.voice,
        model=info.model,
        mapping="; ".join(info.notes),
        audio_format=common_pb2.AudioFormat(rate=fmt.rate, width=fmt.width, channels=fmt.channels),
        format="pcm",
    )


class ProvidersService(providers_pb2_grpc.ProvidersServicer):
    def __init__(self, core: Core) -> None:
        self._core = core

    @staticmethod
    def _kind(kind: str) -> str | None:
        if kind not in ("", "stt", "tts"):
            raise InvalidArgument(f"unknown kind {kind!r}", hint="use stt, tts or leave it empty")
        return kind or None

    @unary
    async def ListProviders(
        self, request: providers_pb2.ListProvidersRequest, context: grpc.aio.ServicerContext
    ) -> providers_pb2.ListProvidersResponse:
        statuses = self._core.speech.list(self._kind(request.kind))  # type: ignore[arg-type]
        return providers_pb2.ListProvidersResponse(providers=[provider(s) for s in statuses])

    @unary
    async def ProbeProviders(
        self, request: providers_pb2.ListProvidersRequest, context: grpc.aio.ServicerContext
    ) -> providers_pb2.ListProvidersResponse:
        statuses = await self._core.speech.probe(self._kind(request.kind))  # type: ignore[arg-type]
        return providers_pb2.ListProvidersResponse(providers=[provider(s) for s in statuses])

    @streaming
    async def Synthesize(
        self, request: providers_pb2.SynthesizeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[providers_pb2.SynthesizeChunk]:
        if request.format not in ("", "pcm"):
            raise InvalidArgument(
                f"format {request.format!r} is not streamed by the daemon",
                hint="ask for pcm (24 kHz mono s16le) and encode on your side, or use --out file.wav",
            )
        _check_synthesis(request)
        settings = self._core.config.resolve(convert.caller(request.caller)).settings
        voice = request.voice or (settings.voices[0] if settings.voices else "")
        speed = (
            request.speed
            if request.HasField("speed")
            else (settings.tts_speed if settings.tts_speed != 1.0 else None)
        )
        stream = self._core.speech.synthesize(
            request.text,
            voice=voice or None,
            model=request.model or None,
            provider=request.provider or None,
            speed=speed,
            instructions=request.instructions or None,
        )
        async with contextlib.aclosing(stream):
            async for item in stream:
                if isinstance(item, SpeechInfo):
                    yield providers_pb2.SynthesizeChunk(info=synthesis_info(item))
                else:
                    yield providers_pb2.SynthesizeChunk(audio=item.audio)

    @unary
    async def Transcribe(
        self, request: providers_pb2.TranscribeRequest, context: grpc.aio.ServicerContext
    ) -> providers_pb2.TranscribeResponse:
        caller = convert.caller(request.caller)
        settings = self._core.config.resolve(caller).settings
        # The declared layout is checked before any audio is read or sized from it.
        pcm = (
            convert.audio_format(request.pcm_format, "pcm_format") if request.HasField("pcm_format") else None
        )
        path, audio = await asyncio.to_thread(self._source, request, caller.cwd)
        upload: bytes | AudioChunk = audio if pcm is None else AudioChunk(audio, pcm)
        started = time.monotonic()
        result = await self._core.speech.transcribe(
            upload,
            language=request.language or settings.language or None,
            model=request.model or settings.stt_model or None,
            provider=request.provider or None,
            prompt=request.prompt or None,
        )
        seconds = upload.seconds if isinstance(upload, AudioChunk) else _encoded_seconds(audio)
        return providers_pb2.TranscribeResponse(
            text=result.text,
            provider_url=result.endpoint.url,
            model=result.model,
            audio_seconds=seconds,
            elapsed_seconds=time.monotonic() - started,
            path=path,
        )

    def _source(self, request: providers_pb2.TranscribeRequest, cwd: str) -> tuple[str, bytes]:
        """The file (and its path) or bytes to transcribe; runs in a worker thread (disk reads)."""
        if request.last:
            found = last_recording(self._core.paths.audio)
            if found is None:
                raise NotFound(
                    f"no kept recording in {self._core.paths.audio}",
                    hint="recordings are kept when STT fails or VOICEMODE_SAVE_AUDIO=true",
                )
            return str(found), read_audio_file(found)
        if request.path:
            file = caller_path(request.path, cwd)
            return str(file), read_audio_file(file)
        audio = request.audio  # each read of a bytes field is a fresh copy: read it once
        if audio:
            if len(audio) > MAX_FILE_BYTES:
                raise too_large("audio", len(audio), MAX_FILE_BYTES)
            return "", audio
        raise InvalidArgument("no audio given", hint="send audio bytes, a path, or last=true")


def _check_synthesis(request: providers_pb2.SynthesizeRequest) -> None:
    """The same bounds as a spoken turn, before any endpoint is asked (its refusal would blame it)."""
    # Imported here: the turn parameters pull in the audio stack, which the daemon loads on first use.
    from voicemoded.conversation.params import check_number, check_text, speakable

    for name, value, label in (
        ("message", request.text, "text"),
        ("voice", request.voice, "voice"),
        ("tts_model", request.model, "model"),
        ("tts_provider", request.provider, "provider"),
        ("tts_instructions", request.instructions, "instructions"),
    ):
        check_text(name, value, label)
    if not speakable(request.text):
        raise InvalidArgument(
            "the text has nothing to speak"
            + (" (only control or invisible characters)" if request.text.strip() else ""),
            hint="give some words to say",
            fields={"param": "text"},
        )
    if request.HasField("speed"):
        check_number("speed", request.speed)


def caller_path(path: str, cwd: str) -> Path:
    """A path the caller gave, as the caller meant it: a relative one is relative to the caller's folder,
    never to the daemon's (which is wherever it was started)."""
    file = Path(path)
    if file.is_absolute():
        return file
    if not cwd or not Path(cwd).is_absolute():
        raise InvalidArgument(
            f"path {quote(path)} is relative and the call did not say which folder it is relative to",
            hint="give an absolute path",
            fields={"path": path},
        )
    return Path(cwd) / file


_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFIFO: "a pipe", stat.S_IFSOCK: "a socket"}  # fmt: skip


def read_audio_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """A regular file of at most ``limit`` bytes, read once and bounded (see :mod:`voicemoded.api.files`)."""
    try:
        return read_bounded(path, limit)
    except FileNotFoundError:
        raise NotFound(
            f"no such file: {quote(path)}", hint="check the path", fields={"path": str(path)}
        ) from None
    except NotRegular as exc:
        kind = _KINDS.get(stat.S_IFMT(exc.mode), "not a regular file")
        raise InvalidArgument(
            f"{quote(path)} is {kind}, not an audio file",
            hint="give a regular file (wav, mp3, ogg, webm, flac)",
            fields={"path": str(path)},
        ) from None
    except OverLimit as exc:
        raise too_large(f"file {quote(path)} is", exc.size, limit) from None


def _encoded_seconds(data: bytes) -> float:
    """Duration for the response; 0 when the container does not say cheaply."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        import io
        import wave

        with contextlib.suppress(wave.Error, EOFError), wave.open(io.BytesIO(data)) as w:
            return w.getnframes() / float(w.getframerate())
    return 0.0

"""The Providers service: endpoint list and probe, streaming synthesis, transcription (over
:class:`~voicemoded.app.providers.Providers`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import grpc

from voicemoded.api.v1 import common_pb2, providers_pb2, providers_pb2_grpc
from voicemoded.app.providers import Providers
from voicemoded.app.sources import AudioSource
from voicemoded.providers import EndpointStatus, SpeechInfo
from voicemoded.rpc import convert
from voicemoded.rpc.errors import streaming, unary


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
        mapping="; ".join((*info.notes, *info.warnings)),
        audio_format=common_pb2.AudioFormat(rate=fmt.rate, width=fmt.width, channels=fmt.channels),
        format="pcm",
    )


class ProvidersService(providers_pb2_grpc.ProvidersServicer):
    def __init__(self, providers: Providers) -> None:
        self._providers = providers

    @unary
    async def ListProviders(
        self, request: providers_pb2.ListProvidersRequest, context: grpc.aio.ServicerContext
    ) -> providers_pb2.ListProvidersResponse:
        statuses = self._providers.list(request.kind)
        return providers_pb2.ListProvidersResponse(providers=[provider(s) for s in statuses])

    @unary
    async def ProbeProviders(
        self, request: providers_pb2.ListProvidersRequest, context: grpc.aio.ServicerContext
    ) -> providers_pb2.ListProvidersResponse:
        statuses = await self._providers.probe(request.kind)
        return providers_pb2.ListProvidersResponse(providers=[provider(s) for s in statuses])

    @streaming
    async def Synthesize(
        self, request: providers_pb2.SynthesizeRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[providers_pb2.SynthesizeChunk]:
        stream = self._providers.synthesize(
            request.text,
            convert.caller(request.caller),
            voice=request.voice,
            model=request.model,
            provider=request.provider,
            speed=request.speed if request.HasField("speed") else None,
            instructions=request.instructions,
            stream_format=request.format,
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
        # The declared layout is decoded (and checked) before any audio is read or sized from it.
        pcm = (
            convert.audio_format(request.pcm_format, "pcm_format") if request.HasField("pcm_format") else None
        )
        source = AudioSource(last=request.last, path=request.path, data=request.audio)
        result = await self._providers.transcribe(
            source,
            convert.caller(request.caller),
            pcm=pcm,
            language=request.language,
            model=request.model,
            provider=request.provider,
            prompt=request.prompt,
        )
        return providers_pb2.TranscribeResponse(
            text=result.text,
            provider_url=result.provider_url,
            model=result.model,
            audio_seconds=result.audio_seconds,
            elapsed_seconds=result.elapsed_seconds,
            path=result.path,
        )

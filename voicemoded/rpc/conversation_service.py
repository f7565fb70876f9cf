"""The Conversation service: spoken turns as event streams, devices, statistics and kept recordings (over
:class:`~voicemoded.app.conversation.Conversations`, :class:`~voicemoded.app.devices.Devices` and
:class:`~voicemoded.app.statistics.Statistics`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import grpc

from voicemoded.api.v1 import conversation_pb2, conversation_pb2_grpc
from voicemoded.app.conversation import Conversations, Mode
from voicemoded.app.devices import Devices
from voicemoded.app.doors import GRPC
from voicemoded.app.statistics import Statistics
from voicemoded.rpc import convert
from voicemoded.rpc.errors import streaming, unary

OPTIONAL = (
    "wait_for_response",
    "listen_duration_max",
    "listen_duration_min",
    "speed",
    "vad_aggressiveness",
    "disable_silence_detection",
    "chime_enabled",
    "barge_in",
)
PLAIN = (
    "message",
    "voice",
    "tts_provider",
    "tts_model",
    "tts_instructions",
    "audio_format",
    "skip_tts",
    "no_wait",
    "language",
    "stt_provider",
    "stt_model",
    "transport",
    "room",
)
#: Bytes per chunk of a recording sent to a caller.
RECORDING_CHUNK = 256 * 1024


def request_params(request: conversation_pb2.ConverseRequest) -> dict[str, Any]:
    """The parameters the caller actually gave (unset optionals are left to the configuration)."""
    has = request.HasField
    given: dict[str, Any] = {name: getattr(request, name) for name in OPTIONAL if has(name)}  # type: ignore[arg-type]
    given.update({name: getattr(request, name) for name in PLAIN if getattr(request, name)})
    # 0 means "the configured default"; anything else (negative, NaN) is the caller's and gets checked.
    if request.queue_timeout != 0:
        given["queue_timeout"] = request.queue_timeout
    if request.silence_threshold != 0:
        given["silence_threshold"] = request.silence_threshold
    return given


class ConversationService(conversation_pb2_grpc.ConversationServicer):
    def __init__(self, conversations: Conversations, devices: Devices, statistics: Statistics) -> None:
        self._conversations = conversations
        self._devices = devices
        self._statistics = statistics

    async def _turn(
        self, request: conversation_pb2.ConverseRequest, mode: Mode
    ) -> AsyncIterator[conversation_pb2.ConverseEvent]:
        events = self._conversations.turn(request_params(request), convert.caller(request.caller), GRPC, mode)
        async with contextlib.aclosing(events):  # the client hanging up closes it: the audio stops
            async for event in events:
                yield event.to_proto()

    @streaming
    async def Converse(
        self, request: conversation_pb2.ConverseRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[conversation_pb2.ConverseEvent]:
        async for event in self._turn(request, "converse"):
            yield event

    @streaming
    async def Speak(
        self, request: conversation_pb2.ConverseRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[conversation_pb2.ConverseEvent]:
        async for event in self._turn(request, "speak"):
            yield event

    @streaming
    async def Listen(
        self, request: conversation_pb2.ConverseRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[conversation_pb2.ConverseEvent]:
        async for event in self._turn(request, "listen"):
            yield event

    @unary
    async def ListDevices(
        self, request: conversation_pb2.ListDevicesRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.ListDevicesResponse:
        found = await self._devices.list()
        return conversation_pb2.ListDevicesResponse(
            devices=[convert.device(d, found) for d in found.devices],
            input_error=found.input_error,
            output_error=found.output_error,
        )

    @unary
    async def GetStatistics(
        self, request: conversation_pb2.GetStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Statistics:
        report = self._statistics.report(request.recent or None)  # 0: the default number
        return conversation_pb2.Statistics(
            turns=report.turns,
            errors=report.errors,
            recent=[r.to_proto() for r in report.recent],
            summaries=[
                conversation_pb2.TimingSummary(name=s.name, p50=s.p50, p90=s.p90, max=s.max, count=s.count)
                for s in report.summaries
            ],
        )

    @streaming
    async def GetRecording(
        self, request: conversation_pb2.GetRecordingRequest, context: grpc.aio.ServicerContext
    ) -> AsyncIterator[conversation_pb2.RecordingChunk]:
        kept = await self._statistics.recording(request.turn_id)
        data = kept.data
        yield conversation_pb2.RecordingChunk(
            format=kept.format, mime_type=kept.mime_type, size=len(data), data=data[:RECORDING_CHUNK]
        )
        for start in range(RECORDING_CHUNK, len(data), RECORDING_CHUNK):
            yield conversation_pb2.RecordingChunk(data=data[start : start + RECORDING_CHUNK])

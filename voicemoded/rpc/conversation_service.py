"""The Conversation service: spoken turns as event streams, devices, statistics."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import grpc

from voicemoded.api.v1 import conversation_pb2, conversation_pb2_grpc
from voicemoded.conversation.journal import Timings
from voicemoded.core import Core
from voicemoded.rpc import convert
from voicemoded.rpc.errors import streaming, unary

if TYPE_CHECKING:
    # The converse loop pulls in the audio stack; it is imported on the first turn, not at start-up.
    from voicemoded.conversation.loop import TurnEvent, TurnResult

KINDS = {v.name.lower(): v.number for v in conversation_pb2.ConverseEvent.Kind.DESCRIPTOR.values}
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
)


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


def timings(t: Timings) -> conversation_pb2.TurnTimings:
    return conversation_pb2.TurnTimings(
        queue_wait=t.queue_wait,
        ttfa=t.ttfa,
        generation=t.generation,
        playback=t.playback,
        record=t.record,
        stt=t.stt,
        total=t.total,
        mic_gap=t.mic_gap,
        endpoint_delay=t.endpoint_delay,
    )


def turn_result(r: TurnResult) -> conversation_pb2.TurnResult:
    return conversation_pb2.TurnResult(
        turn_id=r.turn_id,
        text=r.text,
        tts_provider=r.tts_provider,
        stt_provider=r.stt_provider,
        voice=r.voice,
        tts_model=r.tts_model,
        timings=timings(r.timings),
        end_reason=r.end_reason,
        recording_path=r.recording_path,
        speech_seconds=r.speech_seconds,
        voice_mapping=r.voice_mapping,
        warnings=r.warnings,
    )


def turn_event(e: TurnEvent) -> conversation_pb2.ConverseEvent:
    out = conversation_pb2.ConverseEvent(
        kind=KINDS.get(e.kind, 0),  # type: ignore[arg-type]
        t=e.t,
        time=convert.timestamp(e.at),
        detail=e.detail,
        text=e.text,
    )
    if e.result is not None:
        out.result.CopyFrom(turn_result(e.result))
    return out


class ConversationService(conversation_pb2_grpc.ConversationServicer):
    def __init__(self, core: Core) -> None:
        self._core = core

    async def _turn(
        self, request: conversation_pb2.ConverseRequest, mode: str
    ) -> AsyncIterator[conversation_pb2.ConverseEvent]:
        from voicemoded.conversation.loop import turn_events
        from voicemoded.conversation.params import resolve

        caller = convert.caller(request.caller)
        settings = self._core.config.resolve(caller).settings
        given = request_params(request)
        if mode == "speak":
            given["wait_for_response"] = False
        elif mode == "listen":
            given["skip_tts"] = True
            given["wait_for_response"] = True
        params = resolve(settings, given)
        events = turn_events(
            self._core.conversation, params, mode=mode, client=caller.client or "grpc", cwd=caller.cwd
        )
        async with contextlib.aclosing(events):  # the client hanging up closes it: the audio stops
            async for event in events:
                yield turn_event(event)

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
        from voicemoded.api.errors import VoicemodeError

        audio = self._core.audio
        settings = self._core.config.settings

        def gather() -> conversation_pb2.ListDevicesResponse:
            audio.refresh()
            response = conversation_pb2.ListDevicesResponse()
            selected: dict[str, int] = {}
            for direction, spec in (("input", settings.input_device), ("output", settings.output_device)):
                try:
                    selected[direction] = audio.select(direction, spec or None).index  # type: ignore[arg-type]
                except VoicemodeError as exc:
                    setattr(response, f"{direction}_error", str(exc))
            for d in audio.devices():
                response.devices.add(
                    index=d.index,
                    name=d.name,
                    max_input_channels=d.max_input_channels,
                    max_output_channels=d.max_output_channels,
                    default_sample_rate=float(d.default_rate),
                    default_input=d.is_default_input,
                    default_output=d.is_default_output,
                    host_api=d.host_api,
                    selected_input=selected.get("input") == d.index,
                    selected_output=selected.get("output") == d.index,
                )
            return response

        return await asyncio.to_thread(gather)

    @unary
    async def GetStatistics(
        self, request: conversation_pb2.GetStatisticsRequest, context: grpc.aio.ServicerContext
    ) -> conversation_pb2.Statistics:
        journal = self._core.journal
        recent = journal.recent(request.recent or 10)
        return conversation_pb2.Statistics(
            turns=journal.turns,
            errors=journal.errors,
            recent=[
                conversation_pb2.TurnRecord(
                    turn_id=r.turn_id,
                    time=convert.timestamp(r.time),
                    message=r.message,
                    text=r.text,
                    timings=timings(r.timings),
                    end_reason=r.end_reason,
                    error=r.error or "",
                )
                for r in recent
            ],
            summaries=[
                conversation_pb2.TimingSummary(name=s.name, p50=s.p50, p90=s.p90, max=s.max, count=s.count)
                for s in journal.summaries()
            ],
        )

"""Small conversions shared by the servicers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from voicemoded.api.v1 import common_pb2, conversation_pb2
from voicemoded.audio.format import AudioFormat
from voicemoded.config import Caller
from voicemoded.events import Event
from voicemoded.render import timestamp

if TYPE_CHECKING:
    from voicemoded.app.devices import DeviceList
    from voicemoded.audio.devices import DeviceInfo


def caller(ctx: common_pb2.CallerContext) -> Caller:
    return Caller(cwd=ctx.cwd, env=dict(ctx.env), pid=ctx.pid, client=ctx.client)


def event(e: Event) -> common_pb2.Event:
    return common_pb2.Event(
        seq=e.seq,
        time=timestamp(e.time),
        kind=e.kind,
        subsystem=e.subsystem,
        level=e.level,
        message=e.message,
        fields=dict(e.fields),
    )


def audio_format(msg: common_pb2.AudioFormat, where: str) -> AudioFormat | None:
    """The PCM layout a request declares, checked and named by its field; None when left empty.

    Width and channels default to 16-bit mono when only the rate is given (the common case); every
    value is checked before the daemon sizes, wraps or resamples anything from it, so a rate of 1 Hz
    or a width of 7 is the caller's INVALID_ARGUMENT (``pcm_format.rate must be ...``), not our bug.
    """
    if not (msg.rate or msg.width or msg.channels):
        return None
    return AudioFormat.checked(msg.rate, msg.width or 2, msg.channels or 1, where=where)


def device(d: DeviceInfo, found: DeviceList) -> conversation_pb2.Device:
    """One listed device, with what the settings select and what is open now."""
    return conversation_pb2.Device(
        index=d.index,
        name=d.name,
        max_input_channels=d.max_input_channels,
        max_output_channels=d.max_output_channels,
        default_sample_rate=float(d.default_rate),
        default_input=d.is_default_input,
        default_output=d.is_default_output,
        host_api=d.host_api,
        selected_input=found.selected(d, "input"),
        selected_output=found.selected(d, "output"),
        description=d.description,
        in_use=found.in_use(d),
    )

"""Small conversions shared by the servicers."""

from __future__ import annotations

from voicemoded.api.v1 import common_pb2
from voicemoded.audio.format import AudioFormat
from voicemoded.config import Caller
from voicemoded.events import Event
from voicemoded.render import timestamp


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

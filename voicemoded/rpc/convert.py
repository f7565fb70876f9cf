"""Small conversions shared by the servicers."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from voicemoded.api.v1 import common_pb2
from voicemoded.config import Caller
from voicemoded.events import Event


def caller(ctx: common_pb2.CallerContext) -> Caller:
    return Caller(cwd=ctx.cwd, env=dict(ctx.env), pid=ctx.pid, client=ctx.client)


def timestamp(seconds: float) -> Timestamp:
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


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

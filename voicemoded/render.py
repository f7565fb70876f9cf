"""Small renderings every door shares: plain JSON-able values and protobuf timestamps.

The types that cross a door render themselves (``to_proto``, ``summary``) with these helpers, so each
wire form is written once, beside its type, whichever door or log uses it.
"""

from __future__ import annotations

import dataclasses
import enum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from google.protobuf.timestamp_pb2 import Timestamp


def plain(value: Any) -> Any:
    """A dataclass/enum/tuple tree as JSON-able values (floats rounded to the millisecond)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if isinstance(value, enum.Enum):
        return plain(value.value)
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [plain(v) for v in value]
    if isinstance(value, float):
        return round(value, 3)
    if value is None or isinstance(value, str | int | bool):
        return value
    return str(value)


def timestamp(seconds: float) -> Timestamp:
    """Wall-clock seconds since the epoch as a protobuf ``Timestamp``."""
    from google.protobuf.timestamp_pb2 import Timestamp

    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts

"""Printing for people (tables) and scripts (``--json``), and exit codes that mean something."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Sequence
from typing import Any

from voicemoded.api.client import ClientError, DaemonNotRunning

# Exit codes (also listed in `voicemodectl --help`).
OK = 0
ERROR = 1
USAGE = 2
NOT_RUNNING = 3
NOT_FOUND = 4
INVALID = 5
UNAVAILABLE = 6
BUSY = 7
TIMEOUT = 8
TOO_LARGE = 9
NO_PERMISSION = 10
NO_SPACE = 11
INTERRUPTED = 130

EXIT_CODES_HELP = """exit codes:
  0 success            1 error                 2 usage error
  3 daemon not running 4 not found             5 invalid value or config
  6 unavailable        7 busy (audio in use)   8 timed out
  9 too large          10 permission denied    11 disk full    130 interrupted"""

_BY_STATUS = {
    "NOT_FOUND": NOT_FOUND,
    "INVALID_ARGUMENT": INVALID,
    "FAILED_PRECONDITION": UNAVAILABLE,
    "UNAVAILABLE": UNAVAILABLE,
    "RESOURCE_EXHAUSTED": BUSY,
    "TOO_LARGE": TOO_LARGE,
    "PERMISSION_DENIED": NO_PERMISSION,
    "NO_SPACE": NO_SPACE,
    "DEADLINE_EXCEEDED": TIMEOUT,
    "ALREADY_EXISTS": ERROR,
    "CANCELLED": INTERRUPTED,
}


# gRPC's own refusal of a message over its size limit, e.g. "Sent message larger than max (75 vs. 64)".
_GRPC_TOO_LARGE = re.compile(r"message larger than max \((\d+) vs\. (\d+)\)")


def plain(error: ClientError) -> ClientError:
    """gRPC's own size refusal says RESOURCE_EXHAUSTED, which from the daemon means "busy": say what it
    is instead, with the size and the limit."""
    found = _GRPC_TOO_LARGE.search(error.message) if error.code == "RESOURCE_EXHAUSTED" else None
    if found is None:
        return error
    size, limit = (int(n) for n in found.groups())
    return ClientError(
        "TOO_LARGE",
        f"request too large: {human_bytes(size)}, the limit is {human_bytes(limit)}",
        "send less at once (a file to transcribe is read by the daemon from its path)",
        {"size_bytes": str(size), "limit_bytes": str(limit)},
    )


def exit_code(error: ClientError) -> int:
    if isinstance(error, DaemonNotRunning):
        return NOT_RUNNING
    return _BY_STATUS.get(plain(error).code, ERROR)


def error_payload(error: ClientError) -> dict[str, Any]:
    """The ``--json`` form of an error: ``{"error": {code, message, hint, and its fields}}``."""
    error = plain(error)
    return {"error": {"code": error.code, "message": error.message, "hint": error.hint, **error.fields}}


def print_error(error: ClientError, as_json: bool) -> int:
    code = exit_code(error)
    if as_json:
        print(json.dumps(error_payload(error)))
        return code
    error = plain(error)
    print(f"voicemodectl: {error.message}", file=sys.stderr)
    if error.hint:
        print(f"  {error.hint}", file=sys.stderr)
    return code


def to_dict(message: Any) -> dict[str, Any]:
    from google.protobuf.json_format import MessageToDict

    return MessageToDict(message, preserving_proto_field_name=True, always_print_fields_with_no_presence=True)


def print_json(data: Any) -> None:
    if hasattr(data, "DESCRIPTOR"):
        data = to_dict(data)
    print(json.dumps(data, indent=2, sort_keys=False))


def table(rows: Sequence[Sequence[Any]], headers: Sequence[str]) -> str:
    """A plain aligned table; the last column is never padded (it may be long)."""
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(widths[i]) if i < len(row) - 1 else cell for i, cell in enumerate(row)]
        lines.append("  ".join(padded).rstrip())
    return "\n".join(lines)


def human_bytes(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"


def human_seconds(seconds: float) -> str:
    seconds = int(seconds)
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"

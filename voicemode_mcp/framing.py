"""The MCP stdio framing, checked at the door: one JSON-RPC 2.0 message per line, or an error reply.

A line that is not a JSON-RPC message never crosses to the daemon: it is answered here, at once, as
JSON-RPC 2.0 says (-32700 when it is not JSON, -32600 when it is JSON but not a message), so a client
that sent garbage is told so instead of waiting forever, and the session goes on. The reply carries the
request's id whenever one can be read from the line, because a client matches answers by id; the
specification's ``null`` is used only when there is none. Standard library only (the door stays light).

Lines are read from the file descriptor in bounded chunks: a line over :data:`MAX_LINE_BYTES` is
skipped as it streams past (only its first and last few KiB are kept, to find its id), so no size of
input can make the door allocate it whole.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

#: Longest line accepted. MCP requests are small (a converse call is under 1 KiB); 1 MiB leaves room.
MAX_LINE_BYTES = 1 << 20
#: Deepest nesting accepted; MCP messages nest a handful of levels, the SDK refuses about 200.
MAX_DEPTH = 64
#: How much of stdin is read at a time.
CHUNK_BYTES = 64 * 1024
#: How much of an over-long line's head and tail is kept to find its id.
KEEP_BYTES = 4096
#: Integer ids beyond this are refused: JavaScript clients cannot represent them exactly.
MAX_SAFE_INTEGER = 2**53 - 1

PARSE_ERROR = -32700
INVALID_REQUEST = -32600

Id = int | str | None

_ID_VALUE = rb'(-?\d{1,16}|"[^"\\]{0,256}")'
#: The id as the first member after simple string members (Python SDK order: jsonrpc, id, method, ...).
_HEAD_ID = re.compile(rb'^\s*\{(?:\s*"(?:jsonrpc|method)"\s*:\s*"[^"\\]*"\s*,)*\s*"id"\s*:\s*' + _ID_VALUE)
#: The id as the last member (TypeScript SDK order: method, params, jsonrpc, id).
_TAIL_ID = re.compile(rb',\s*"id"\s*:\s*' + _ID_VALUE + rb"\s*\}\s*$")


@dataclass(frozen=True, slots=True)
class Oversize:
    """A line over the limit, skipped: its size and the ends kept to find its id."""

    size: int
    head: bytes
    tail: bytes


def read_lines(fd: int, limit: int = MAX_LINE_BYTES) -> Iterator[bytes | Oversize]:
    """Each non-blank line of ``fd`` without its line end, or :class:`Oversize` for one over ``limit``."""
    pending = bytearray()
    skipping: Oversize | None = None
    while chunk := os.read(fd, CHUNK_BYTES):
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            piece = chunk[start:end]
            start = end + 1
            if skipping is not None:
                yield _grown(skipping, piece)
                skipping = None
            elif len(pending) + len(piece) > limit:
                yield _grown(_skipped(pending), piece)
                pending.clear()
            else:
                pending += piece
                if line := bytes(pending).strip():
                    yield line
                pending.clear()
        rest = chunk[start:]
        if skipping is not None:
            skipping = _grown(skipping, rest)
        elif len(pending) + len(rest) > limit:
            skipping = _grown(_skipped(pending), rest)
            pending.clear()
        else:
            pending += rest
    if skipping is not None:
        yield skipping
    elif line := bytes(pending).strip():
        yield line


def _skipped(pending: bytearray) -> Oversize:
    return Oversize(len(pending), bytes(pending[:KEEP_BYTES]), bytes(pending[-KEEP_BYTES:]))


def _grown(line: Oversize, more: bytes) -> Oversize:
    head = line.head if len(line.head) >= KEEP_BYTES else (line.head + more)[:KEEP_BYTES]
    return Oversize(line.size + len(more), head, (line.tail + more)[-KEEP_BYTES:])


def error(id_: Id, code: int, message: str, **data: Any) -> bytes:
    """One JSON-RPC error response, as the line written back to the client."""
    body: dict[str, Any] = {"code": code, "message": message}
    if data:
        body["data"] = data
    # ASCII escapes: whatever the message quotes, the reply is valid UTF-8.
    return json.dumps({"jsonrpc": "2.0", "id": id_, "error": body}, separators=(",", ":")).encode()


def oversize_reply(line: Oversize) -> bytes:
    found = _HEAD_ID.search(line.head) or _TAIL_ID.search(line.tail)
    id_ = _valid_id(json.loads(found.group(1))) if found else None
    return error(
        id_,
        INVALID_REQUEST,
        f"message of {line.size} bytes refused: voicemode-mcp accepts messages of at most "
        f"{MAX_LINE_BYTES} bytes (1 MiB); send a smaller one",
        limit_bytes=MAX_LINE_BYTES,
        size_bytes=line.size,
    )


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _valid_id(value: Any) -> Id:
    """``value`` when MCP allows it as an id (a string or an integer JavaScript can hold), else None."""
    if isinstance(value, str):
        return value if _text(value) else None
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) <= MAX_SAFE_INTEGER:
        return value
    return None


def _text(value: str) -> bool:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _content_problem(value: Any, limit: int = MAX_DEPTH) -> str | None:
    """Nesting deeper than ``limit``, or a string that is not Unicode (an escaped lone surrogate).

    Walked without recursion. Python's parser accepts ``"\\ud800"``; the SDK's does not, and such a
    string could not be written back out, so it is refused here like any other broken text.
    """
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, str):
            if not _text(item):
                return "a string holds an escaped lone surrogate (not Unicode text)"
            continue
        if not isinstance(item, dict | list):
            continue
        if depth > limit:
            return f"message nested too deeply (at most {limit} levels)"
        children = [*item.keys(), *item.values()] if isinstance(item, dict) else item
        stack.extend((child, depth + 1) for child in children if isinstance(child, dict | list | str))
    return None


def check(raw: bytes) -> bytes | None:
    """None when ``raw`` is one well-formed JSON-RPC 2.0 message; else the error reply to send back."""
    bad_utf8: UnicodeDecodeError | None = None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad_utf8 = exc
        text = raw.decode("utf-8", "surrogateescape")  # still parsed, to answer with the request's id
    try:
        message = json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        return error(None, INVALID_REQUEST, f"message nested too deeply (at most {MAX_DEPTH} levels)")
    except ValueError as exc:
        return error(None, PARSE_ERROR, f"parse error: not JSON ({exc})")
    id_ = _valid_id(message.get("id")) if isinstance(message, dict) and "method" in message else None
    if bad_utf8 is not None:
        return error(id_, PARSE_ERROR, f"parse error: not valid UTF-8 (byte {bad_utf8.start} of the line)")
    problem = envelope_problem(message) or _content_problem(message)
    return None if problem is None else error(id_, INVALID_REQUEST, f"invalid request: {problem}")


def envelope_problem(message: Any) -> str | None:
    """What makes ``message`` not a JSON-RPC 2.0 request, notification or response (as MCP uses them)."""
    if isinstance(message, list):
        return "batches are not supported (MCP removed JSON-RPC batching); send one message per line"
    if not isinstance(message, dict):
        return f"a message is a JSON object, not {type(message).__name__}"
    if message.get("jsonrpc") != "2.0":
        return 'the "jsonrpc" member must be "2.0"'
    if "id" in message and _valid_id(message["id"]) is None:
        return f'the "id" member must be a string or an integer up to {MAX_SAFE_INTEGER}'
    if "method" in message:
        if not isinstance(message["method"], str) or not message["method"]:
            return 'the "method" member must be a non-empty string'
        if "params" in message and not isinstance(message["params"], dict):
            return 'the "params" member must be an object'
        if "result" in message or "error" in message:
            return "a request carries no result or error"
        return None
    return _response_problem(message)


def _response_problem(message: dict[str, Any]) -> str | None:
    if "id" not in message:
        return 'a message needs a "method" (request or notification) or an "id" (response)'
    if ("result" in message) == ("error" in message):
        return 'a response carries exactly one of "result" and "error"'
    if "result" in message:
        return None if isinstance(message["result"], dict) else 'the "result" member must be an object'
    err = message["error"]
    if not isinstance(err, dict) or not isinstance(err.get("message"), str):
        return 'the "error" member must be an object with a "code" and a "message"'
    code = err.get("code")
    if not isinstance(code, int) or isinstance(code, bool):
        return 'the "error" code must be an integer'
    return None

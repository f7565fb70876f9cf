"""Property: whatever line reaches voicemode-mcp's stdin, a request gets exactly one reply, a well-formed
notification or response none, anything else one error, and the process stays alive.

One tunnel serves every example (the session must survive them all). After each line a ``ping`` with a
fresh id marks the end of what that line may have caused; every message seen before the ping's answer
belongs to the line, so a missing reply or a dead tunnel fails the example that caused it, and an extra
reply fails it or, when it comes late, the next one.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.integration.mcp.conftest import RawTunnel, open_tunnel
from voicemoded.testing.daemon import DaemonHandle

#: Methods that answer at once (no tool call: a scripted turn could block).
METHODS = ["ping", "tools/list", "resources/list", "resources/templates/list", "prompts/list",
           "prompts/get", "resources/read", "no/such/method", "", "notifications/initialized",
           "notifications/roots/list_changed", "notifications/no_such_thing"]  # fmt: skip
MISSING = object()

json_leaf = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**60), 2**60), st.floats(allow_nan=False), st.text(max_size=8)
)
json_value = st.recursive(
    json_leaf,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)


@st.composite
def envelopes(draw: st.DrawFn) -> bytes:
    """Objects shaped like JSON-RPC messages, each member right, wrong or missing."""
    parts = {
        "jsonrpc": st.sampled_from(["2.0", "2.0", "2.0", "1.0", 2.0, None, MISSING]),
        "id": st.one_of(st.integers(-5, 10**6), st.text(max_size=5), st.sampled_from([MISSING, None, True,
                        1.5, 2**60, {"a": 1}, [1]])),
        "method": st.sampled_from([*METHODS, 5, None, MISSING]),
        "params": st.one_of(st.just(MISSING), st.dictionaries(st.text(max_size=6), json_value, max_size=3),
                            json_value),
        "result": st.one_of(st.just(MISSING), st.just(MISSING), st.just({}), json_value),
        "error": st.one_of(st.just(MISSING), st.just(MISSING),
                           st.fixed_dictionaries({"code": json_leaf, "message": json_leaf})),
    }  # fmt: skip
    message = {k: v for k, strategy in parts.items() if (v := draw(strategy)) is not MISSING}
    if isinstance(message.get("id"), str):
        message["id"] = "fuzz-" + message["id"]  # never one of the markers' ids
    return json.dumps(message).encode()


@st.composite
def mutated(draw: st.DrawFn) -> bytes:
    """A well-formed message with one byte changed, inserted or cut."""
    line = bytearray(draw(envelopes()))
    at = draw(st.integers(0, len(line)))
    how = draw(st.sampled_from(["flip", "insert", "cut"]))
    byte = draw(st.integers(0, 255).filter(lambda b: b != 0x0A))
    if how == "flip" and at < len(line):
        line[at] = byte
    elif how == "insert":
        line.insert(at, byte)
    else:
        del line[at:]
    return bytes(line)


lines = st.one_of(
    st.binary(max_size=64).map(lambda b: b.replace(b"\n", b" ")),
    json_value.map(lambda v: json.dumps(v).encode()),
    envelopes(),
    envelopes(),
    mutated(),
)


# --- the reference: what JSON-RPC 2.0 (as MCP uses it) asks for each line ------------------------


def _strict(raw: bytes) -> Any:
    def no_constant(name: str) -> Any:
        raise ValueError(name)

    return json.loads(raw.decode("utf-8"), parse_constant=no_constant)


def _is_text(value: Any) -> bool:
    """No escaped lone surrogate anywhere (the SDK's parser refuses them)."""
    if isinstance(value, str):
        return not any(0xD800 <= ord(c) <= 0xDFFF for c in value)
    if isinstance(value, dict):
        return all(_is_text(k) and _is_text(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_is_text(v) for v in value)
    return True


def _id_ok(value: Any) -> bool:
    return (isinstance(value, str) or (type(value) is int and abs(value) < 2**53)) and _is_text(value)


def expected(raw: bytes) -> tuple[int, Any]:
    """How many replies the line must get, and the id the reply must carry (``...``: any)."""
    if not raw.strip():
        return 0, ...
    try:
        message = _strict(raw.strip())
    except (ValueError, RecursionError):
        return 1, ...
    if not isinstance(message, dict) or message.get("jsonrpc") != "2.0" or not _is_text(message):
        return 1, ...
    has_id, method = "id" in message, message.get("method")
    if "id" in message and not _id_ok(message["id"]):
        return 1, ...
    if "method" in message:
        well_formed = (
            isinstance(method, str)
            and method != ""
            and ("params" not in message or isinstance(message["params"], dict))
            and "result" not in message
            and "error" not in message
        )
        if not has_id:
            return (0, ...) if well_formed else (1, ...)
        return 1, message["id"]  # a request: its reply (result or error) carries its id
    error = message.get("error")
    response = has_id and (
        ("result" in message) != ("error" in message)
        and (
            isinstance(message.get("result"), dict)
            if "result" in message
            else isinstance(error, dict)
            and type(error.get("code")) is int
            and isinstance(error.get("message"), str)
        )
    )
    return (0, ...) if response else (1, ...)


@pytest.fixture(scope="module")
def fuzz_tunnel(host: DaemonHandle) -> Iterator[RawTunnel]:
    yield from open_tunnel(host)


markers = itertools.count()


@settings(
    max_examples=100,
    deadline=None,
    derandomize=True,  # the same lines on every run: CI stays reproducible
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)
@given(line=lines)
def test_every_request_gets_exactly_one_reply(fuzz_tunnel: RawTunnel, line: bytes) -> None:
    tunnel = fuzz_tunnel
    count, id_ = expected(line)
    marker = f"marker-{next(markers)}"
    tunnel.send_raw(line)
    tunnel.send({"jsonrpc": "2.0", "id": marker, "method": "ping"})
    replies: list[dict[str, Any]] = []
    seen_marker = False
    while not seen_marker or len(replies) < count:  # a reply may come after the marker's
        message = tunnel.read(10.0)
        if message.get("id") == marker and "result" in message:
            seen_marker = True
        else:
            replies.append(message)
    assert len(replies) == count, (line, replies)
    for reply in replies:
        assert reply["jsonrpc"] == "2.0" and ("result" in reply) != ("error" in reply), reply
        if id_ is not ...:
            assert reply["id"] == id_, (line, reply)
    assert tunnel.proc.poll() is None

"""The door's framing rules: which stdin lines go on to the daemon, and the answer to every other one."""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from voicemode_mcp import framing


def reply(raw: bytes) -> dict[str, Any]:
    answer = framing.check(raw)
    assert answer is not None, f"{raw!r} was let through"
    message = json.loads(answer)
    assert set(message) == {"jsonrpc", "id", "error"} and message["jsonrpc"] == "2.0"
    return message


@pytest.mark.parametrize(
    "raw",
    [
        b'{"jsonrpc":"2.0","id":1,"method":"initialize","params":{}}',
        b'{"jsonrpc":"2.0","id":"a-1","method":"tools/list"}',
        b'{"jsonrpc":"2.0","method":"notifications/initialized"}',
        b'{"jsonrpc":"2.0","id":3,"result":{}}',
        b'{"jsonrpc":"2.0","id":4,"error":{"code":-1,"message":"no"}}',
        '{"jsonrpc":"2.0","id":5,"method":"ping","params":{"x":"caf\u00e9"}}'.encode(),
    ],
)
def test_well_formed_messages_go_on(raw: bytes) -> None:
    assert framing.check(raw) is None


@pytest.mark.parametrize(
    ("raw", "code", "id_", "words"),
    [
        (b"not json", -32700, None, "not JSON"),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping"', -32700, None, "not JSON"),
        (b'{"jsonrpc":"2.0","id":1,"method":"ping","params":{"x":NaN}}', -32700, None, "not JSON"),
        (b'{"jsonrpc":"2.0","id":7,"method":"ping","params":{"x":"\xff"}}', -32700, 7, "UTF-8"),
        (b'[{"jsonrpc":"2.0","id":5,"method":"ping"}]', -32600, None, "batches"),
        (b"[]", -32600, None, "batches"),
        (b'"x"', -32600, None, "JSON object"),
        (b'{"jsonrpc":"1.0","id":6,"method":"ping"}', -32600, 6, '"jsonrpc"'),
        (b'{"id":6,"method":"ping"}', -32600, 6, '"jsonrpc"'),
        (b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', -32600, None, '"id"'),
        (b'{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600, None, '"id"'),
        (b'{"jsonrpc":"2.0","id":null,"method":"ping"}', -32600, None, '"id"'),
        (b'{"jsonrpc":"2.0","id":1.5,"method":"ping"}', -32600, None, '"id"'),
        (b'{"jsonrpc":"2.0","id":12345678901234567890,"method":"ping"}', -32600, None, '"id"'),
        (b'{"jsonrpc":"2.0","id":8,"method":5}', -32600, 8, '"method"'),
        (b'{"jsonrpc":"2.0","id":9,"method":"tools/list","params":[1]}', -32600, 9, '"params"'),
        (b'{"jsonrpc":"2.0","id":10,"method":"ping","result":{}}', -32600, 10, "result"),
        (b'{"jsonrpc":"2.0","id":11}', -32600, None, "exactly one"),
        (b'{"jsonrpc":"2.0","id":11,"result":5}', -32600, None, '"result"'),
        (b'{"jsonrpc":"2.0","id":11,"error":{"code":"x","message":"m"}}', -32600, None, "code"),
        (b'{"jsonrpc":"2.0"}', -32600, None, '"method"'),
        (b'{"jsonrpc":"2.0","id":13,"method":"x","params":{"t":"\\ud800"}}', -32600, 13, "lone surrogate"),
        (b'{"jsonrpc":"2.0","method":"x","params":{"\\udfff":1}}', -32600, None, "lone surrogate"),
        (b"[" * 100_000, -32600, None, "nested too deeply"),
        (b'{"jsonrpc":"2.0","id":12,"method":"x","params":{"a":' + b"[" * 70 + b"]" * 70 + b"}}", -32600, 12,
         "nested too deeply"),
    ],
)  # fmt: skip
def test_every_other_line_is_answered_as_json_rpc_says(raw: bytes, code: int, id_: Any, words: str) -> None:
    message = reply(raw)
    assert message["error"]["code"] == code
    assert message["id"] == id_
    assert words in message["error"]["message"]


def test_replies_are_ascii_whatever_the_line_held() -> None:
    answer = framing.check(b'{"jsonrpc":"2.0","id":"\xc3\xa9\xff","method":"ping"}')
    assert answer is not None
    answer.decode("ascii")


@pytest.fixture
def pipe() -> Iterator[tuple[int, int]]:
    read_end, write_end = os.pipe()
    yield read_end, write_end
    os.close(read_end)


def feed(write_end: int, *pieces: bytes) -> threading.Thread:
    """Write ``pieces`` one write at a time (so lines straddle reads), then close the pipe."""

    def run() -> None:
        with os.fdopen(write_end, "wb", buffering=0) as out:
            for piece in pieces:
                out.write(piece)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_lines_are_split_across_reads_and_blank_ones_skipped(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    writer = feed(write_end, b'{"a":', b"1}\n\n  \r\n", b"second\r\nthird-without-newline")
    assert list(framing.read_lines(read_end)) == [b'{"a":1}', b"second", b"third-without-newline"]
    writer.join(5)


def test_a_line_over_the_limit_is_skipped_without_being_held(pipe: tuple[int, int]) -> None:
    read_end, write_end = pipe
    limit = 100
    head = b'{"jsonrpc":"2.0","id":41,"method":"tools/call","params":{"text":"'
    writer = feed(write_end, b"ok\n", head, b"x" * 10 * framing.CHUNK_BYTES, b'"}}\n', b"after\n", b"y" * 101)
    lines = list(framing.read_lines(read_end, limit=limit))
    writer.join(5)
    assert lines[0] == b"ok" and lines[2] == b"after"
    big = lines[1]
    assert isinstance(big, framing.Oversize)
    assert big.size == len(head) + 10 * framing.CHUNK_BYTES + 3
    assert len(big.head) <= framing.KEEP_BYTES and len(big.tail) <= framing.KEEP_BYTES
    assert isinstance(lines[3], framing.Oversize) and lines[3].size == 101  # cut off by EOF: still answered
    answer = json.loads(framing.oversize_reply(big))
    assert answer["id"] == 41 and answer["error"]["code"] == -32600
    assert str(framing.MAX_LINE_BYTES) in answer["error"]["message"]
    assert answer["error"]["data"] == {"limit_bytes": framing.MAX_LINE_BYTES, "size_bytes": big.size}


@pytest.mark.parametrize(
    ("head", "tail", "id_"),
    [
        (b'{"jsonrpc":"2.0","id":"req-9","method":"x","params":{"t":"', b'xx"}}', "req-9"),
        (
            b'{"method":"x","params":{"t":"',
            b'xx"},"jsonrpc":"2.0","id":17}',
            17,
        ),  # the TypeScript SDK's order
        (b'{"params":{"id":5,"t":"', b'xx"}}', None),  # an "id" inside params is not the request's
        (b'{"method":"x","params":{"t":"', b'xx\\",\\"id\\":5}"}}', None),  # nor one inside a string
    ],
)
def test_an_over_long_line_is_answered_with_its_id_when_it_can_be_seen(
    head: bytes, tail: bytes, id_: Any
) -> None:
    line = framing.Oversize(10 * framing.MAX_LINE_BYTES, head, tail)
    assert json.loads(framing.oversize_reply(line))["id"] == id_

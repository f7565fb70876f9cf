"""Whatever arrives on voicemode-mcp's stdin or in its context, every request is answered and the session
survives: the real tunnel process, raw bytes in, JSON-RPC out, against sessions in a real daemon."""

from __future__ import annotations

import json
import os
import queue
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.integration.mcp.conftest import RawTunnel, open_tunnel
from voicemode_mcp.framing import MAX_LINE_BYTES
from voicemoded.api.v1 import mcp_pb2
from voicemoded.testing.daemon import DaemonHandle
from voicemoded.testing.jsonrpc import INITIALIZE, INITIALIZED, call

#: A reply must come at once: the tunnel answers these without asking the daemon.
REPLY_TIMEOUT = 10.0

MALFORMED: list[tuple[str, bytes, int, Any]] = [
    ("not JSON", b"this is not json", -32700, None),
    ("truncated", b'{"jsonrpc":"2.0","id":1,"method":"ping"', -32700, None),
    ("batch", b'[{"jsonrpc":"2.0","id":"b1","method":"ping"},{"jsonrpc":"2.0","id":"b2","method":"ping"}]',
     -32600, None),
    ("empty batch", b"[]", -32600, None),
    ("wrong jsonrpc", b'{"jsonrpc":"1.0","id":"v1","method":"ping"}', -32600, "v1"),
    ("object id", b'{"jsonrpc":"2.0","id":{"a":1},"method":"ping"}', -32600, None),
    ("boolean id", b'{"jsonrpc":"2.0","id":true,"method":"ping"}', -32600, None),
    ("invalid UTF-8", b'{"jsonrpc":"2.0","id":"u1","method":"tools/call","params":{"name":"converse",'
     b'"arguments":{"message":"caf\xe9"}}}', -32700, "u1"),
    ("deep nesting", b"[" * 200_000, -32600, None),
    ("deep params", b'{"jsonrpc":"2.0","id":"n1","method":"tools/list","params":{"a":' + b"[" * 500
     + b"]" * 500 + b"}}", -32600, "n1"),
    ("params not an object", b'{"jsonrpc":"2.0","id":"p1","method":"tools/list","params":"x"}', -32600, "p1"),
    ("a bare number", b"42", -32600, None),
]  # fmt: skip


@pytest.fixture
def tunnel(host: DaemonHandle) -> Iterator[RawTunnel]:
    yield from open_tunnel(host)


@pytest.fixture(scope="module")
def one_tunnel(host: DaemonHandle) -> Iterator[RawTunnel]:
    """One session for all the malformed lines: it must survive every one of them."""
    yield from open_tunnel(host)


def assert_session_answers(tunnel: RawTunnel, id_: str) -> None:
    tunnel.send({"jsonrpc": "2.0", "id": id_, "method": "tools/list"})
    tools = tunnel.read_until(id_)["result"]["tools"]
    assert "converse" in {t["name"] for t in tools}
    assert tunnel.proc.poll() is None


@pytest.mark.parametrize(("name", "raw", "code", "id_"), MALFORMED, ids=[m[0] for m in MALFORMED])
def test_a_malformed_line_is_answered_and_the_session_goes_on(
    one_tunnel: RawTunnel, name: str, raw: bytes, code: int, id_: Any
) -> None:
    tunnel = one_tunnel
    tunnel.send_raw(raw)
    reply = tunnel.read(REPLY_TIMEOUT)
    assert reply["jsonrpc"] == "2.0" and reply["id"] == id_, reply
    assert reply["error"]["code"] == code, reply
    assert reply["error"]["message"]
    assert_session_answers(tunnel, f"after {name}")


def test_a_70_mb_line_is_refused_with_the_limit_without_being_held(tunnel: RawTunnel) -> None:
    message = {"jsonrpc": "2.0", "id": "huge", **call(0, "converse", {"message": "x" * (70 << 20)})}
    message["id"] = "huge"
    writer = threading.Thread(target=tunnel.send, args=(message,), daemon=True)
    writer.start()  # the pipe holds 64 KiB: the tunnel reads while this writes
    reply = tunnel.read(60.0)
    writer.join(60.0)
    assert reply["id"] == "huge" and reply["error"]["code"] == -32600
    assert f"at most {MAX_LINE_BYTES} bytes" in reply["error"]["message"]
    assert reply["error"]["data"]["size_bytes"] > 70 << 20
    status = Path(f"/proc/{tunnel.proc.pid}/status").read_text()
    peak_kib = int(status.split("VmHWM:")[1].split()[0])
    assert peak_kib < 64 * 1024, f"the tunnel peaked at {peak_kib} KiB: it held the line"
    assert_session_answers(tunnel, "after the huge line")
    assert "refused a message of" in tunnel.stderr


def test_a_call_in_flight_is_answered_across_malformed_lines(tunnel: RawTunnel) -> None:
    tunnel.send(call("slow", "converse", {"message": "hello"}))
    for _name, raw, _code, _id in MALFORMED[:4]:
        tunnel.send_raw(raw)
    assert tunnel.read_until("slow")["result"]["isError"] is False


def test_templates_list_is_empty_and_an_unknown_tool_is_a_protocol_error(tunnel: RawTunnel) -> None:
    tunnel.send({"jsonrpc": "2.0", "id": "t", "method": "resources/templates/list"})
    assert tunnel.read_until("t")["result"] == {"resourceTemplates": []}
    tunnel.send(call("u", "no_such_tool", {}))
    error = tunnel.read_until("u")["error"]
    assert error["code"] == -32602 and "no_such_tool" in error["message"]


def test_the_daemon_answers_frames_the_sdk_cannot_read(host: DaemonHandle) -> None:
    """Another tunnel (an older or foreign one) may forward anything: the daemon answers it too."""
    frames: queue.Queue[mcp_pb2.McpFrame | None] = queue.Queue()

    def requests() -> Iterator[mcp_pb2.McpFrame]:
        while (frame := frames.get()) is not None:
            yield frame

    with host.client() as client:
        frames.put(mcp_pb2.McpFrame(open=mcp_pb2.McpOpen(caller=client.caller(), tunnel_version="0")))
        replies = client.mcp.Session(requests(), timeout=20)
        frames.put(mcp_pb2.McpFrame(message=json.dumps(INITIALIZE).encode()))
        assert json.loads(next(replies).message)["id"] == 1
        frames.put(mcp_pb2.McpFrame(message=json.dumps(INITIALIZED).encode()))
        sent = [
            (b"not json", -32700, None),
            (b'{"jsonrpc":"2.0","id":"d1","method":"x","params":{"a":' + b"[" * 300 + b"]" * 300 + b"}}",
             -32600, "d1"),
            (b'{"jsonrpc":"1.0","id":"v1","method":"ping"}', -32600, "v1"),
        ]  # fmt: skip
        for raw, code, id_ in sent:
            frames.put(mcp_pb2.McpFrame(message=raw))
            reply = json.loads(next(replies).message)
            assert (reply["id"], reply["error"]["code"]) == (id_, code), reply
        frames.put(mcp_pb2.McpFrame(message=b'{"jsonrpc":"2.0","id":"ping","method":"ping"}'))
        assert json.loads(next(replies).message) == {"jsonrpc": "2.0", "id": "ping", "result": {}}
        frames.put(mcp_pb2.McpFrame(close=mcp_pb2.McpClose(reason="done")))
        frames.put(None)
        assert list(replies) == []


# --- context that is not valid UTF-8 -----------------------------------------------------------------


def byte_env(handle: DaemonHandle, **extra: bytes) -> dict[bytes, bytes]:
    env = {k.encode(): v.encode() for k, v in handle.env.items()}
    env.update({k.encode(): v for k, v in extra.items()})
    return env


def initialize_answers(tunnel: RawTunnel) -> dict[str, Any]:
    tunnel.send(INITIALIZE)
    reply = tunnel.read_until(1)
    tunnel.send(INITIALIZED)
    return reply


def config_value(tunnel: RawTunnel, key: str) -> str:
    tunnel.send(call("cfg", "config", {"key": key}))
    result = tunnel.read_until("cfg")["result"]
    assert not result["isError"], result
    return json.loads(result["content"][0]["text"])["values"][key]


def test_a_non_utf8_variable_is_reported_and_ignored(host: DaemonHandle) -> None:
    env = byte_env(host, VOICEMODE_VOICES=b"bad\xffvoice", VOICEMODE_TTS_SPEED=b"1.5")
    tunnel = RawTunnel(host, env=env)
    assert initialize_answers(tunnel)["result"]["serverInfo"]["name"] == "voicemode"
    assert config_value(tunnel, "VOICEMODE_TTS_SPEED") == "1.5"  # the good override still counts
    assert "bad" not in config_value(tunnel, "VOICEMODE_VOICES")
    _out, err = tunnel.finish()
    assert tunnel.proc.returncode == 0, err
    assert "VOICEMODE_VOICES is not valid UTF-8 ('bad\\xffvoice'): it is ignored" in err


def test_a_non_utf8_working_directory_means_no_project_file(host: DaemonHandle) -> None:
    folder = bytes(host.root) + b"/proj\xff"
    os.mkdir(folder)
    with open(folder + b"/.voicemode.env", "w") as f:
        f.write("VOICEMODE_VOICES=project_voice\n")
    tunnel = RawTunnel(host, cwd=folder)
    assert "result" in initialize_answers(tunnel)
    assert config_value(tunnel, "VOICEMODE_VOICES") != "project_voice"
    _out, err = tunnel.finish()
    assert tunnel.proc.returncode == 0, err
    assert "the working directory is not valid UTF-8" in err and "proj\\xff" in err


def test_a_non_utf8_argument_is_reported_and_the_tunnel_serves(host: DaemonHandle) -> None:
    tunnel = RawTunnel(host, "--daemon-command", b"voicemoded --tag \xff")
    assert "result" in initialize_answers(tunnel)
    _out, err = tunnel.finish()
    assert tunnel.proc.returncode == 0, err
    assert "argument 2 is not valid UTF-8" in err


@pytest.mark.parametrize("where", ["--socket", "VOICEMODE_SOCKET"])
def test_a_non_utf8_socket_path_is_answered_with_the_fix(host: DaemonHandle, where: str) -> None:
    bad = bytes(host.root) + b"/sock\xff"
    if where == "--socket":
        tunnel = RawTunnel(host, "--socket", bad, "--no-start")
    else:
        tunnel = RawTunnel(host, "--no-start", env=byte_env(host, VOICEMODE_SOCKET=bad))
    error = initialize_answers(tunnel)["error"]
    assert f"{where} is not valid UTF-8" in error["message"] and "sock\\xff" in error["message"]
    assert "UTF-8 socket path" in error["data"]["fix"]
    tunnel.send({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
    assert "error" in tunnel.read_until(2)
    _out, err = tunnel.finish()
    assert tunnel.proc.returncode == 1
    assert "not valid UTF-8" in err


def test_bad_arguments_are_answered_over_json_rpc(host: DaemonHandle) -> None:
    tunnel = RawTunnel(host, "--no-such-option")
    error = initialize_answers(tunnel)["error"]
    assert "bad arguments" in error["message"] and "--no-such-option" in error["message"]
    assert "voicemode-mcp --help" in error["data"]["fix"]
    tunnel.finish()
    assert tunnel.proc.returncode == 1

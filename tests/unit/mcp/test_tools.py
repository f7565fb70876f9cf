"""Tool schemas, argument checks, result shapes and the tunnel's fallback replies."""

from __future__ import annotations

import json
from enum import Enum

import pytest

from voicemode_mcp.tunnel import error_reply
from voicemoded.api.client import ClientError
from voicemoded.api.errors import FailedPrecondition, InvalidArgument
from voicemoded.conversation.journal import Timings
from voicemoded.conversation.results import TurnResult
from voicemoded.mcp.names import BUILTIN_TOOLS
from voicemoded.mcp.tools import CONVERSE, TOOLS, check_arguments, error_result, schema_bytes
from voicemoded.render import plain


def test_the_light_list_of_builtin_tool_names_is_the_tools() -> None:
    # The daemon reads the names at start-up without the schemas (which import the MCP SDK's types).
    assert tuple(t.name for t in TOOLS) == BUILTIN_TOOLS


def test_schema_stays_small() -> None:
    # VoiceMode's default tools cost ~10 KB of the assistant's context; ours must stay well under half.
    assert schema_bytes() < 5000


def test_every_parameter_is_documented() -> None:
    for tool in TOOLS:
        assert tool.description
        for name, prop in tool.input_schema["properties"].items():
            assert prop.get("description"), f"{tool.name}.{name}"


def test_converse_defaults_match_voicemode() -> None:
    props = CONVERSE["properties"]
    assert props["wait_for_response"]["default"] is True
    assert props["listen_duration_max"]["default"] == 120
    assert props["listen_duration_min"]["default"] == 2
    assert props["disable_silence_detection"]["default"] is False
    assert props["skip_tts"]["default"] is False
    assert CONVERSE["required"] == ["message"]


@pytest.mark.parametrize(
    ("name", "arguments", "expected"),
    [
        ("converse", {}, "'message' is a required property"),
        ("converse", {"message": "hi", "speed": 5}, "speed"),
        ("converse", {"message": "hi", "vad_aggressiveness": 1.5}, "vad_aggressiveness"),
        ("converse", {"message": "hi", "volume": 3}, "volume"),
        ("service", {"action": "explode"}, "action"),
        ("nope", {}, "unknown tool"),
    ],
)
def test_bad_arguments_are_refused_with_the_parameter_named(
    name: str, arguments: dict, expected: str
) -> None:
    with pytest.raises(InvalidArgument) as caught:
        check_arguments(name, arguments)
    assert expected in caught.value.message
    assert caught.value.hint


def test_good_arguments_pass() -> None:
    check_arguments("converse", {"message": "hi", "speed": 1.25, "wait_for_response": False})
    check_arguments("config", {"action": "set", "key": "VOICEMODE_VOICES", "value": "x", "scope": "project"})


def test_error_result_is_an_error_with_the_next_step() -> None:
    result = error_result(FailedPrecondition("the thing is missing", hint="install the thing"))
    assert result.is_error
    text = result.content[0].text  # type: ignore[union-attr]
    assert (
        "FAILED_PRECONDITION" in text
        and "the thing is missing" in text
        and "Next step: install the thing" in text
    )


class Color(Enum):
    RED = "red"


def test_plain_and_turn_summary() -> None:
    assert plain({"c": Color.RED, "t": (1, 2.00049)}) == {"c": "red", "t": [1, 2.0]}
    result = TurnResult("t1", text="yes", end_reason="silence", timings=Timings(ttfa=0.12345, total=1.0))
    timings = {name: 0.0 for name in Timings.__dataclass_fields__} | {"ttfa": 0.123, "total": 1.0}
    assert result.summary() == {"text": "yes", "end_reason": "silence", "timings": timings}


def test_tunnel_fallback_answers_requests_only() -> None:
    error = ClientError("UNAVAILABLE", "voicemoded is not running", "start it")
    reply = json.loads(
        error_reply(b'{"jsonrpc":"2.0","id":7,"method":"initialize","params":{}}', error) or b""
    )
    assert reply["id"] == 7
    assert (
        reply["error"]["message"]
        == "voicemode is not available: voicemoded is not running. To fix it: start it"
    )
    assert reply["error"]["data"] == {"reason": "voicemoded is not running", "fix": "start it"}
    assert error_reply(b'{"jsonrpc":"2.0","method":"notifications/initialized"}', error) is None
    assert json.loads(error_reply(b"{not json", error) or b"")["error"]["code"] == -32700

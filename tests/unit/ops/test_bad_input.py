"""Bad input refused by name: turn parameters, error bounds, environment faults, and the CLI's own tables.

The gRPC cases run a real grpc.aio server on a temp socket: what is checked is what a client receives.
"""

from __future__ import annotations

import errno
import math
from pathlib import Path
from typing import Any, cast

import grpc
import pytest

from voicemodectl import converse as cli_converse
from voicemodectl import speech as cli_speech
from voicemoded.api.client import ERROR_METADATA_KEY
from voicemoded.api.errors import (
    ErrorCode,
    InvalidArgument,
    NoSpace,
    PermissionDenied,
    VoicemodeError,
    from_os_error,
    quote,
)
from voicemoded.api.paths import Paths
from voicemoded.api.v1 import common_pb2, conversation_pb2, conversation_pb2_grpc
from voicemoded.app import sources
from voicemoded.app.conversation import Conversations
from voicemoded.config import ConfigManager
from voicemoded.config.schema import build_settings
from voicemoded.conversation import params
from voicemoded.conversation.results import TurnResult
from voicemoded.rpc import errors as rpc_errors
from voicemoded.rpc.conversation_service import ConversationService


def test_the_cli_checks_the_daemons_ranges_and_file_limit() -> None:
    for name, bounds in cli_converse.RANGES.items():
        assert params.RANGES[name] == bounds, name
    assert cli_speech.MAX_FILE_BYTES == sources.MAX_FILE_BYTES


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("silence_threshold", -1.0),
        ("silence_threshold", math.nan),
        ("silence_threshold", math.inf),
        ("silence_threshold", 11.0),
        ("speed", math.nan),
        ("speed", -math.inf),
        ("speed", 0.1),
        ("listen_duration_max", math.inf),
        ("listen_duration_max", math.nan),
        ("listen_duration_min", -0.5),
        ("listen_duration_min", math.nan),
        ("queue_timeout", math.nan),
        ("queue_timeout", -1.0),
        ("queue_timeout", math.inf),
        ("speed", "fast"),
    ],
)
def test_a_number_out_of_range_is_refused_naming_the_parameter_and_range(name: str, value: Any) -> None:
    with pytest.raises(InvalidArgument) as caught:
        params.resolve(build_settings({}), {"message": "hello", name: value})
    low, high = params.RANGES[name]
    assert caught.value.fields == {"param": name}
    assert caught.value.message.startswith(f"{name}: must be a number between {low:g} and {high:g}")


@pytest.mark.parametrize("value", [math.nan, 7, -1, "2", 2.5])
def test_vad_aggressiveness_outside_0_to_3_is_refused_before_conversion(value: Any) -> None:
    with pytest.raises(InvalidArgument, match="vad_aggressiveness: must be 0, 1, 2 or 3"):
        params.resolve(build_settings({}), {"message": "hello", "vad_aggressiveness": value})


def test_numbers_in_range_pass() -> None:
    given = {"message": "hi", "silence_threshold": 0.1, "speed": 4.0, "listen_duration_max": 3600.0}
    resolved = params.resolve(build_settings({}), {**given, "listen_duration_min": 0, "queue_timeout": 0.0})
    assert (resolved.silence_threshold, resolved.speed, resolved.listen_duration_max) == (0.1, 4.0, 3600.0)


def test_a_long_name_is_refused_quoting_only_its_start() -> None:
    with pytest.raises(InvalidArgument) as caught:
        params.resolve(build_settings({}), {"message": "hello", "voice": "v" * 10_000})
    assert len(caught.value.message) < 200
    assert "(10,000 characters)" in caught.value.message and caught.value.fields == {"param": "voice"}


@pytest.mark.parametrize("text", ["\x01\x02\x03", "\x1b\x07\x7f", "\u200b\u200d", "\x00 \ufeff"])
def test_text_of_only_control_characters_has_nothing_to_speak(text: str) -> None:
    assert not params.speakable(text)
    with pytest.raises(InvalidArgument, match="the text has nothing to speak"):
        params.resolve(build_settings({}), {"message": text, "wait_for_response": False})
    assert params.speakable("ok\x01") and params.speakable("42") and params.speakable("…")


def test_quote_cuts_long_values_and_says_how_long() -> None:
    assert quote("short") == "'short'"
    cut = quote("it's " + "x" * 200)
    assert cut.startswith("\"it's xx") and cut.endswith('…" (205 characters)')


def test_environment_faults_are_typed_and_name_the_path() -> None:
    full = from_os_error(OSError(errno.ENOSPC, "No space left on device", "/data/audio/turn.wav"))
    assert isinstance(full, NoSpace) and "/data/audio/turn.wav" in full.message
    assert full.fields == {"path": "/data/audio/turn.wav"}
    denied = from_os_error(PermissionError(errno.EACCES, "Permission denied", "/data/x"))
    assert isinstance(denied, PermissionDenied) and "/data/x" in denied.message
    read_only = from_os_error(OSError(errno.EROFS, "Read-only file system", "/ro/x"))
    assert isinstance(read_only, PermissionDenied) and "read-only" in read_only.message
    long_name = from_os_error(OSError(errno.ENAMETOOLONG, "File name too long", "/x/" + "a" * 300))
    assert isinstance(long_name, InvalidArgument) and len(long_name.message) < 200
    assert from_os_error(FileNotFoundError(errno.ENOENT, "No such file", "/x")) is None


def test_the_wire_detail_is_bounded_whatever_was_quoted() -> None:
    huge = "é" * 10_000  # two bytes each in UTF-8, nine percent-encoded in the status message
    error = InvalidArgument(huge, hint=huge, fields={f"k{i}": huge for i in range(50)})
    wire = rpc_errors.detail(error)
    assert len(wire.SerializeToString()) < 4096
    assert wire.message.startswith("éé") and wire.message.endswith("…")
    assert len(wire.fields) == rpc_errors.MAX_FIELDS


class _FailingTurns:
    """A converse loop whose turn fails as the test says (the faults a real disk rarely gives on cue)."""

    def __init__(self, error: BaseException) -> None:
        self.error = error

    async def turn(self, params: Any, emit: Any, *, mode: str, client: str = "", cwd: str = "") -> TurnResult:
        raise self.error


def _failing_service(tmp_path: Path, error: BaseException) -> ConversationService:
    """The real Converse (the application layer and the error wrapper) over a turn that fails."""
    config = ConfigManager(Paths.from_env({"VOICEMODE_BASE_DIR": str(tmp_path / "base")}), {})
    turns = _FailingTurns(error)
    conversations = Conversations(config, lambda: turns)
    return ConversationService(conversations, cast(Any, None), cast(Any, None))


async def _converse_error(
    tmp_path: Path, error: BaseException
) -> tuple[grpc.StatusCode, common_pb2.ErrorDetail]:
    server = grpc.aio.server()
    conversation_pb2_grpc.add_ConversationServicer_to_server(_failing_service(tmp_path, error), server)
    address = f"unix:{tmp_path / 's.sock'}"
    server.add_insecure_port(address)
    await server.start()
    try:
        async with grpc.aio.insecure_channel(address) as channel:
            call = conversation_pb2_grpc.ConversationStub(channel).Converse(
                conversation_pb2.ConverseRequest(message="hi"), timeout=10
            )
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                async for _ in call:
                    pass
    finally:
        await server.stop(None)
    trailers = dict(caught.value.trailing_metadata() or ())
    return caught.value.code(), common_pb2.ErrorDetail.FromString(trailers[ERROR_METADATA_KEY])


@pytest.mark.parametrize(
    ("fault", "status", "code"),
    [
        (errno.ENOSPC, grpc.StatusCode.RESOURCE_EXHAUSTED, ErrorCode.NO_SPACE),
        (errno.EACCES, grpc.StatusCode.PERMISSION_DENIED, ErrorCode.PERMISSION_DENIED),
        (errno.EROFS, grpc.StatusCode.PERMISSION_DENIED, ErrorCode.PERMISSION_DENIED),
        (errno.ENAMETOOLONG, grpc.StatusCode.INVALID_ARGUMENT, ErrorCode.INVALID_ARGUMENT),
    ],
)
async def test_an_environment_fault_escaping_converse_is_its_own_status_naming_the_path(
    tmp_path: Path, fault: int, status: grpc.StatusCode, code: ErrorCode
) -> None:
    path = "/home/someone/.voicemode/audio/20250101-turn.wav"
    got, detail = await _converse_error(tmp_path, OSError(fault, "fault", path))
    assert (got, detail.code) == (status, code.value)
    assert path in detail.message and "bug" not in detail.hint
    assert detail.fields["path"] == path


async def test_an_error_quoting_10000_characters_keeps_its_status(tmp_path: Path) -> None:
    error = InvalidArgument(f"voice {'x' * 10_000!r} is not offered", fields={"voice": "x" * 10_000})
    got, detail = await _converse_error(tmp_path, error)
    assert got == grpc.StatusCode.INVALID_ARGUMENT
    assert detail.code == "INVALID_ARGUMENT" and detail.message.startswith("voice 'xxx")


async def test_other_errors_are_still_internal(tmp_path: Path) -> None:
    got, detail = await _converse_error(tmp_path, VoicemodeError("boom"))
    assert got == grpc.StatusCode.INTERNAL
    got, detail = await _converse_error(tmp_path, FileNotFoundError(errno.ENOENT, "gone", "/x"))
    assert got == grpc.StatusCode.INTERNAL and "bug" in detail.hint

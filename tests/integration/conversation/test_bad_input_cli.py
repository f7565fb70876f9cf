"""Hostile and mistaken input through the real voicemodectl and the daemon's speech and turn RPCs.

Every case must end in a clear error that names what was wrong (or in the command working), with the
daemon still serving: sizes bounded before anything is read, paths as the caller meant them, text that
is not UTF-8, numbers outside their range, names nobody could mean.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import wave
from pathlib import Path

import grpc
import psutil
import pytest

from tests.integration.conversation.conftest import Rig
from tests.integration.conversation.test_converse import overlap
from voicemodectl import output
from voicemoded.api.client import ClientError
from voicemoded.api.v1 import common_pb2, conversation_pb2, providers_pb2

SENTENCE = "The quick brown fox jumps over the lazy dog."
LIMIT = 64 * 1024 * 1024
MiB = 1024 * 1024


@pytest.fixture(scope="module")
def fox(rig: Rig, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A spoken sentence as a WAV file in a folder of its own."""
    path = tmp_path_factory.mktemp("audio") / "fox.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(24000)
        w.writeframes(rig.say(SENTENCE))
    return path


def ctl_bytes(rig: Rig, *args: str | bytes, cwd: bytes | Path | None = None, **env: str) -> tuple[int, str]:
    """voicemodectl with arguments as the OS hands them over (bytes allowed); exit code and stderr."""
    done = subprocess.run(
        [sys.executable, "-m", "voicemodectl", "--socket", str(rig.daemon.socket), *args],
        env={**rig.daemon.env, **env},
        cwd=cwd or rig.daemon.root,
        capture_output=True,
        timeout=60,
    )
    return done.returncode, done.stderr.decode(errors="replace")


def error_of(call: grpc.RpcError) -> tuple[grpc.StatusCode, common_pb2.ErrorDetail]:
    trailers = dict(call.trailing_metadata() or ())
    return call.code(), common_pb2.ErrorDetail.FromString(trailers["voicemode-error-bin"])


def daemon_rss(rig: Rig) -> int:
    assert rig.daemon.process is not None
    return int(psutil.Process(rig.daemon.process.pid).memory_info().rss)


# Runs a command and prints its exit code and peak resident KiB. The measured process must not be forked
# from pytest itself: a forked child's peak counts the parent's pages it was copied from. Its address
# space is capped, so code that reads an endless device whole dies quickly instead of taking the machine.
_MEASURE = (
    "import os, resource, subprocess, sys\n"
    "resource.setrlimit(resource.RLIMIT_AS, (2 << 30, 2 << 30))\n"
    "child = subprocess.Popen(sys.argv[1:])\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)\n"
)


# --- sizes and kinds of file -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["device", "pipe"])
def test_a_device_or_pipe_is_refused_at_once_and_the_client_stays_small(rig: Rig, kind: str) -> None:
    target = "/dev/zero"
    if kind == "pipe":
        target = str(rig.daemon.root / "audio.fifo")
        os.mkfifo(target)
    started = time.monotonic()
    cli = [sys.executable, "-m", "voicemodectl", "--socket", str(rig.daemon.socket), "transcribe", target]
    measured = subprocess.run(
        [sys.executable, "-c", _MEASURE, *cli],
        env=rig.daemon.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    code, peak_kib = (int(n) for n in measured.stdout.split()[-2:])
    assert code == output.INVALID, measured.stderr
    assert f"{target} is not a regular file" in measured.stderr
    assert peak_kib < 150 * 1024, f"the client peaked at {peak_kib // 1024} MiB"
    assert time.monotonic() - started < 20


def test_a_file_over_the_limit_is_refused_by_the_cli_naming_the_limit(rig: Rig) -> None:
    big = rig.daemon.root / "long.wav"
    with open(big, "wb") as f:
        f.write(b"RIFF\xff\xff\xff\xffWAVE")
        f.truncate(72 * 1000 * 1000)  # sparse: 72 MB without writing them
    code, stderr = ctl_bytes(rig, "transcribe", str(big))
    assert code == output.TOO_LARGE, stderr
    assert "too large: 68.7 MiB, the limit is 64 MiB" in stderr and "busy" not in stderr


def test_the_daemon_refuses_a_path_just_over_the_limit_without_reading_it(rig: Rig, tmp_path: Path) -> None:
    big = tmp_path / "just-over.wav"
    with open(big, "wb") as f:
        f.truncate(LIMIT + 1)
    before = daemon_rss(rig)
    with pytest.raises(grpc.RpcError) as caught:
        rig.client.providers.Transcribe(providers_pb2.TranscribeRequest(path=str(big)), timeout=30)
    status, detail = error_of(caught.value)
    assert status == grpc.StatusCode.RESOURCE_EXHAUSTED and detail.code == "TOO_LARGE"
    assert "the limit is 64 MiB" in detail.message and str(big) in detail.message
    assert daemon_rss(rig) - before < 16 * MiB


def test_grpcs_own_size_refusal_reads_as_too_large_not_busy(rig: Rig) -> None:
    request = providers_pb2.TranscribeRequest(audio=bytes(LIMIT + 10))
    with pytest.raises(ClientError) as caught:
        rig.client.call(rig.client.providers.Transcribe, request, timeout=30)
    assert output.exit_code(caught.value) == output.TOO_LARGE
    plain = output.plain(caught.value)
    assert plain.message == "request too large: 64.0 MiB, the limit is 64.0 MiB"


def test_the_daemon_refuses_a_pipe_a_folder_and_a_too_long_path_by_name(rig: Rig, tmp_path: Path) -> None:
    fifo = tmp_path / "in.fifo"
    os.mkfifo(fifo)  # no writer: opening it blocking would hang the worker forever
    for path, status, words in (
        (str(fifo), grpc.StatusCode.INVALID_ARGUMENT, "is a pipe, not an audio file"),
        (str(tmp_path), grpc.StatusCode.INVALID_ARGUMENT, "is a folder, not an audio file"),
        (str(tmp_path / ("a" * 300)), grpc.StatusCode.INVALID_ARGUMENT, "path too long"),
    ):
        with pytest.raises(grpc.RpcError) as caught:
            rig.client.providers.Transcribe(providers_pb2.TranscribeRequest(path=path), timeout=10)
        got, detail = error_of(caught.value)
        assert got == status and words in detail.message, detail.message
    assert rig.client.status().pid


# --- paths as the caller meant them ----------------------------------------------------------------


def test_a_local_file_goes_to_the_daemon_as_its_absolute_path(rig: Rig, fox: Path) -> None:
    done = rig.daemon.ctl("--json", "transcribe", fox.name, cwd=fox.parent)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["path"] == str(fox)
    assert overlap(SENTENCE, answer["text"]) >= 0.9, answer["text"]


def test_a_relative_path_is_resolved_against_the_callers_folder(rig: Rig, fox: Path) -> None:
    caller = common_pb2.CallerContext(cwd=str(fox.parent))
    heard = rig.client.providers.Transcribe(
        providers_pb2.TranscribeRequest(path=fox.name, caller=caller), timeout=120
    )
    assert heard.path == str(fox) and overlap(SENTENCE, heard.text) >= 0.9
    with pytest.raises(grpc.RpcError) as caught:
        rig.client.providers.Transcribe(providers_pb2.TranscribeRequest(path=fox.name), timeout=10)
    got, detail = error_of(caught.value)
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "is relative" in detail.message


def test_a_file_whose_name_is_not_utf8_is_sent_as_bytes(rig: Rig, fox: Path) -> None:
    odd = os.fsencode(fox.parent) + b"/fox-\xff.wav"
    with open(odd, "wb") as f:
        f.write(fox.read_bytes())
    done = subprocess.run(
        [sys.executable, "-m", "voicemodectl", "--socket", str(rig.daemon.socket), "transcribe", odd],
        env=rig.daemon.env,
        capture_output=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert overlap(SENTENCE, done.stdout.decode()) >= 0.9


# --- text that is not UTF-8 --------------------------------------------------------------------------


def test_an_argument_that_is_not_utf8_is_named(rig: Rig) -> None:
    code, stderr = ctl_bytes(rig, "say", b"caf\xe9", "--out", str(rig.daemon.root / "x.wav"))
    assert code == output.USAGE and "the argument TEXT is not valid UTF-8 text: 'caf\\xe9'" in stderr
    code, stderr = ctl_bytes(rig, "converse", "hi", "--voice", b"\xff\xfe")
    assert code == output.USAGE and "the argument --voice is not valid UTF-8" in stderr
    assert "Traceback" not in stderr


def test_a_variable_or_folder_that_is_not_utf8_leaves_the_command_working(rig: Rig) -> None:
    code, stderr = ctl_bytes(rig, "status", VOICEMODE_VOICES=os.fsdecode(b"joe\xff"))
    assert code == 0, stderr
    assert "VOICEMODE_VOICES is not valid UTF-8" in stderr
    folder = os.fsencode(rig.daemon.root) + b"/proj-\xff"
    os.makedirs(folder, exist_ok=True)
    code, stderr = ctl_bytes(rig, "status", cwd=folder)
    assert code == 0, stderr
    assert "the working directory is not valid UTF-8" in stderr
    # Where the daemon lives cannot be set aside: that one is the error.
    code, stderr = ctl_bytes(rig, "status", VOICEMODE_BASE_DIR=os.fsdecode(b"/tmp/b\xff"))
    assert code == output.INVALID and "VOICEMODE_BASE_DIR is not valid UTF-8" in stderr, stderr
    assert "Traceback" not in stderr


# --- numbers, names, text ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (
            ("converse", "hi", "--silence-threshold", "-1"),
            "--silence-threshold: must be a number between 0.1 and 10",
        ),
        (
            ("converse", "hi", "--silence-threshold", "nan"),
            "--silence-threshold: must be a number between 0.1 and 10",
        ),
        (("listen", "--max", "inf"), "--max: must be a number between 0.5 and 3600"),
        (("listen", "--min", "-1"), "--min: must be a number between 0 and 3600"),
        (("say", "hi", "--speed", "nan"), "--speed: must be a number between 0.25 and 4"),
        (("speak", "hi", "--speed", "10"), "--speed: must be a number between 0.25 and 4"),
    ],
)
def test_a_number_out_of_range_is_a_usage_error_naming_the_option(
    rig: Rig, args: tuple[str, ...], words: str
) -> None:
    code, stderr = ctl_bytes(rig, *args)
    assert code == output.USAGE and words in stderr, stderr


@pytest.mark.parametrize(
    ("field", "value", "param"),
    [
        ("silence_threshold", -1.0, "silence_threshold"),
        ("silence_threshold", float("nan"), "silence_threshold"),
        ("queue_timeout", float("nan"), "queue_timeout"),
        ("queue_timeout", -5.0, "queue_timeout"),
        ("speed", float("inf"), "speed"),
        ("listen_duration_max", float("nan"), "listen_duration_max"),
    ],
)
def test_the_daemon_refuses_a_number_out_of_range(rig: Rig, field: str, value: float, param: str) -> None:
    request = conversation_pb2.ConverseRequest(message="hello")
    setattr(request, field, value)
    with pytest.raises(grpc.RpcError) as caught:
        list(rig.client.conversation.Converse(request, timeout=10))
    got, detail = error_of(caught.value)
    assert got == grpc.StatusCode.INVALID_ARGUMENT and detail.fields["param"] == param
    assert detail.message.startswith(f"{param}: must be a number between")


def test_a_10000_character_voice_name_is_an_invalid_argument_quoted_short(rig: Rig) -> None:
    code, stderr = ctl_bytes(
        rig, "say", "hello", "--voice", "v" * 10_000, "--out", str(rig.daemon.root / "v.wav")
    )
    assert code == output.INVALID, stderr
    assert "voice: 'vvvv" in stderr and "(10,000 characters)" in stderr and len(stderr) < 600
    long_voice = conversation_pb2.ConverseRequest(message="hello", voice="w" * 10_000)
    with pytest.raises(grpc.RpcError) as caught:
        list(rig.client.conversation.Converse(long_voice, timeout=10))
    assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    # Within the length, an unknown voice is refused listing the voices there are.
    code, stderr = ctl_bytes(
        rig, "say", "hello", "--voice", "n" * 190, "--out", str(rig.daemon.root / "v.wav")
    )
    assert code == output.INVALID and "en_US-joe-medium" in stderr


def test_text_of_only_control_characters_has_nothing_to_speak(rig: Rig) -> None:
    code, stderr = ctl_bytes(rig, "say", "\x01\x02\x1b", "--out", str(rig.daemon.root / "c.wav"))
    assert code == output.INVALID and "the text has nothing to speak" in stderr, stderr
    with pytest.raises(grpc.RpcError) as caught:
        list(rig.client.conversation.Speak(conversation_pb2.ConverseRequest(message="\x07\x00"), timeout=10))
    got, detail = error_of(caught.value)
    assert got == grpc.StatusCode.INVALID_ARGUMENT and "nothing to speak" in detail.message
    assert rig.client.status().pid


def test_say_out_to_a_missing_folder_or_a_directory_is_refused_before_synthesis(rig: Rig) -> None:
    # No daemon on this socket: the answer is about the folder, so nothing was asked of the daemon.
    nowhere = str(rig.daemon.root / "no-daemon.sock")
    missing = rig.daemon.root / "missing" / "out.wav"
    done = subprocess.run(
        [sys.executable, "-m", "voicemodectl", "--socket", nowhere, "say", "hello", "--out", str(missing)],
        env=rig.daemon.env,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == output.NOT_FOUND, done.stderr
    assert f"the folder {missing.parent} does not exist" in done.stderr
    code, stderr = ctl_bytes(rig, "say", "hello", "--out", str(rig.daemon.root))
    assert code == output.INVALID and f"{rig.daemon.root} is a directory" in stderr
    assert "Traceback" not in stderr + done.stderr

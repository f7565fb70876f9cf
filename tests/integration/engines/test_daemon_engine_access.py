"""What the real daemon does with the engines' input rules: odd PCM formats, and engines beyond loopback.

A Transcribe call whose ``pcm_format`` no audio has is the caller's INVALID_ARGUMENT naming the field,
checked before the daemon wraps or sends anything (a 1 Hz rate once grew the engine to 22 GB). With
``VOICEMODE_SERVICE_HOST=0.0.0.0`` the daemon creates the engine token (0600), starts its children
with it, and its own client sends it: speech still works, a request without it does not.
"""

from __future__ import annotations

import json
import stat

import httpx
import psutil
import pytest

from voicemoded.api.client import ClientError
from voicemoded.api.v1 import common_pb2, providers_pb2
from voicemoded.testing.daemon import DaemonHandle
from voicemoded.testing.ports import free_port


@pytest.mark.parametrize(
    ("rate", "width", "channels", "field", "message"),
    [
        (10, 2, 1, "pcm_format.rate", "pcm_format.rate must be 8000..192000 Hz, got 10"),
        (1, 0, 0, "pcm_format.rate", "pcm_format.rate must be 8000..192000 Hz, got 1"),
        (-16_000, 2, 1, "pcm_format.rate", "got -16000"),
        (2**31 - 1, 2, 1, "pcm_format.rate", "got 2147483647"),
        (0, 7, 0, "pcm_format.rate", "got 0"),
        (16_000, 7, 1, "pcm_format.width", "pcm_format.width must be 1..4 bytes per sample, got 7"),
        (16_000, -2, 1, "pcm_format.width", "got -2"),
        (16_000, 2, -1, "pcm_format.channels", "pcm_format.channels must be 1..32, got -1"),
        (16_000, 2, 4096, "pcm_format.channels", "got 4096"),
    ],
)
def test_an_odd_pcm_format_is_an_invalid_argument_naming_the_field(
    daemon: DaemonHandle, rate: int, width: int, channels: int, field: str, message: str
) -> None:
    request = providers_pb2.TranscribeRequest(
        audio=b"\0" * 6000,
        pcm_format=common_pb2.AudioFormat(rate=rate, width=width, channels=channels),
    )
    with daemon.client() as client:
        request.caller.CopyFrom(client.caller())
        with pytest.raises(ClientError) as info:
            client.call(client.providers.Transcribe, request)
        assert info.value.code == "INVALID_ARGUMENT", info.value
        assert message in info.value.message
        assert info.value.fields.get("field") == field
        assert "this is a bug" not in str(info.value)
        assert client.status().version, "the daemon keeps serving"


def test_pcm_that_is_not_whole_frames_is_an_invalid_argument(daemon: DaemonHandle) -> None:
    request = providers_pb2.TranscribeRequest(
        audio=b"\0" * 1001, pcm_format=common_pb2.AudioFormat(rate=16_000, width=2, channels=2)
    )
    with daemon.client() as client, pytest.raises(ClientError) as info:
        client.call(client.providers.Transcribe, request)
    assert info.value.code == "INVALID_ARGUMENT"
    assert "not a whole number of 4-byte frames" in info.value.message


@pytest.mark.engines
@pytest.mark.slow
def test_engines_beyond_loopback_take_the_token_the_daemon_sends(daemon_env: DaemonHandle) -> None:
    port = free_port()
    daemon_env.start(
        {
            "VOICEMODE_SERVICE_HOST": "0.0.0.0",
            "VOICEMODE_PIPER_PORT": str(port),
            "VOICEMODE_TTS_BASE_URLS": "",
        }
    )
    started = daemon_env.ctl("--json", "service", "start", "piper", timeout=180)
    assert started.returncode == 0, started.stdout + started.stderr
    info = json.loads(started.stdout)
    assert info["state"] == "RUNNING", info

    token_file = daemon_env.base / "engine-token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    cmdline = psutil.Process(info["pid"]).cmdline()
    assert cmdline[cmdline.index("--token-file") + 1] == str(token_file)
    assert token not in " ".join(cmdline), "the token itself never appears in a process listing"

    direct = f"http://127.0.0.1:{port}/v1/models"
    assert httpx.get(direct).status_code == 401
    assert httpx.get(direct, headers={"Authorization": f"Bearer {token}"}).status_code == 200

    request = providers_pb2.SynthesizeRequest(text="Hello from the daemon.", provider="piper")
    with daemon_env.client() as client:
        request.caller.CopyFrom(client.caller())
        chunks = list(client.stream(client.providers.Synthesize, request, timeout=120))
    audio = b"".join(c.audio for c in chunks if c.WhichOneof("payload") == "audio")
    assert len(audio) > 24_000, "the daemon's client sent the token: the child spoke"
    assert token not in daemon_env.log_text(), "the token never reaches the daemon's log"

"""The typed client methods: each builds its request and the caller's context, against a real daemon."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import pytest

from voicemodectl.__main__ import build_parser
from voicemodectl.converse import turn_options
from voicemoded.api.client import Client, ClientError, TurnOptions
from voicemoded.testing.daemon import DaemonHandle


def test_every_turn_option_reaches_the_request_and_unset_ones_stay_unset() -> None:
    given = TurnOptions(
        voice="af_sky", tts_provider="piper", tts_model="tts-1", tts_instructions="calm", speed=1.5,
        listen_duration_max=9.0, listen_duration_min=0.0, vad_aggressiveness=0, silence_threshold=0.8,
        disable_silence_detection=True, chime_enabled=False, barge_in=True, audio_format="flac",
        language="en", stt_provider="whisper", no_wait=True,
    )  # fmt: skip
    request = Client(Path("/nonexistent.sock"))._turn_request("hello", given)
    assert request.message == "hello" and request.caller.pid == os.getpid()
    for name in TurnOptions.__dataclass_fields__:
        assert getattr(request, name) == getattr(given, name), name
    assert request.HasField("listen_duration_min") and request.HasField("vad_aggressiveness"), "0 is a value"
    empty = Client(Path("/nonexistent.sock"))._turn_request("", TurnOptions())
    optional = ("speed", "listen_duration_max", "vad_aggressiveness", "chime_enabled", "barge_in")
    assert not any(empty.HasField(name) for name in optional)


def test_the_clis_turn_flags_become_turn_options() -> None:
    args = build_parser().parse_args(
        ["converse", "hi", "--no-chime", "--barge-in", "--max", "5", "--no-silence-detection", "--no-wait"]
    )
    options = turn_options(args)
    assert (options.chime_enabled, options.barge_in, options.listen_duration_max) == (False, True, 5.0)
    assert options.disable_silence_detection is True and options.no_wait is True
    assert turn_options(argparse.Namespace()) == TurnOptions(), "a command without the flags leaves them"


def test_typed_calls_carry_the_callers_folder_and_environment(
    daemon: DaemonHandle, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    project = tmp_path / "project"
    (project / "deep").mkdir(parents=True)
    monkeypatch.chdir(project / "deep")
    monkeypatch.setenv("VOICEMODE_TTS_SPEED", "1.75")
    with Client(daemon.socket, client_name="tests") as client:
        written = client.set_config("VOICEMODE_VOICES", "af_sky", scope="project")
        assert Path(written.file) == project / "deep" / ".voicemode.env"
        values = {v.key: v for v in client.get_config(["VOICEMODE_TTS_SPEED", "VOICEMODE_VOICES"]).values}
        assert (values["VOICEMODE_TTS_SPEED"].value, values["VOICEMODE_TTS_SPEED"].layer) == (
            "1.75",
            "environment",
        )
        assert (values["VOICEMODE_VOICES"].value, values["VOICEMODE_VOICES"].layer) == ("af_sky", "project")
        removed = client.unset_config("VOICEMODE_VOICES", scope="project")
        assert removed.value.layer != "project"


def test_typed_calls_answer_with_the_daemons_messages(daemon: DaemonHandle) -> None:
    with Client(daemon.socket, client_name="tests") as client:
        assert {s.name for s in client.list_services().services} >= {"whisper", "piper", "kokoro"}
        assert client.get_service("piper").name == "piper"
        assert client.set_autostart("kokoro", True).autostart is True
        assert all(m.kind == "tts" for m in client.list_models("tts").models)
        assert list(client.list_providers().providers) == []  # nothing runs, nothing is configured
        assert client.reload_config().errors == []
        assert client.statistics(recent=5).turns == 0
        assert next(iter(client.watch_events(replay=1, timeout=5))).subsystem
        with pytest.raises(ClientError) as caught:
            client.start_service("nope")
        assert caught.value.code == "NOT_FOUND" and "nope" in caught.value.message

"""Installing backends and choosing models through the real daemon and CLI (packages already present)."""

from __future__ import annotations

import json

import pytest

from voicemoded.testing.daemon import DaemonHandle
from voicemoded.testing.ports import free_port


@pytest.fixture
def daemon(daemon_env: DaemonHandle) -> DaemonHandle:
    daemon_env.start({"VOICEMODE_WHISPER_PORT": str(free_port()), "VOICEMODE_PIPER_PORT": str(free_port())})
    return daemon_env


def test_models_list_shows_what_is_installed_and_in_use(daemon: DaemonHandle) -> None:
    result = daemon.ctl("--json", "models", "list")
    assert result.returncode == 0, result.stderr
    models = {(m["kind"], m["name"]): m for m in json.loads(result.stdout)["models"]}
    assert models[("stt", "tiny.en")]["installed"] and models[("stt", "tiny.en")]["in_use"]
    assert models[("tts", "en_US-joe-medium")]["in_use"]
    assert ("stt", "base") in models and any(k == "tts" and n.startswith("jf_") for k, n in models)


def test_using_another_stt_model_changes_the_whisper_command(daemon: DaemonHandle) -> None:
    before = json.loads(daemon.ctl("--json", "service", "status", "whisper").stdout)
    assert before["command"][before["command"].index("--model") + 1] == "tiny.en"
    assert before["command"][before["command"].index("--beam-size") + 1] == "5"
    used = daemon.ctl("models", "use", "base")
    assert used.returncode == 0, used.stderr
    after = json.loads(daemon.ctl("--json", "service", "status", "whisper").stdout)
    assert after["command"][after["command"].index("--model") + 1] == "base"
    assert json.loads((daemon.base / "services" / "models.json").read_text())["stt"] == "base"
    unknown = daemon.ctl("models", "use", "large-v9")
    assert unknown.returncode in (4, 5) and "large-v9" in unknown.stderr


def test_the_whisper_beam_size_setting_reaches_the_engine(daemon_env: DaemonHandle) -> None:
    daemon_env.start({"VOICEMODE_WHISPER_PORT": str(free_port()), "VOICEMODE_WHISPER_BEAM_SIZE": "1"})
    status = json.loads(daemon_env.ctl("--json", "service", "status", "whisper").stdout)
    assert status["command"][status["command"].index("--beam-size") + 1] == "1"


def test_service_install_streams_progress_or_says_what_to_provide(daemon_env: DaemonHandle) -> None:
    # No livekit-server where the setting points: installing it says what to provide (never a Go build).
    daemon_env.start({"VOICEMODE_LIVEKIT_SERVER_PATH": str(daemon_env.root / "no-livekit-server")})
    daemon = daemon_env
    piper = daemon.ctl("service", "install", "piper", timeout=300)
    assert piper.returncode == 0, piper.stdout + piper.stderr
    assert "done" in piper.stdout.splitlines()[-1]
    livekit = daemon.ctl("service", "install", "livekit")
    assert livekit.returncode == 6
    assert "livekit-server" in livekit.stdout and "VOICEMODE_LIVEKIT_SERVER_PATH" in livekit.stdout

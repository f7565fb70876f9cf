"""``service install livekit``: built with ``go install`` of the pinned release into the cache when Go is
present, the build's output streamed; a failed build leaves nothing behind; without Go, exactly what to
install. A stand-in ``go`` plays the toolchain (a real build takes minutes; the integration tests run the
binary it makes)."""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import pytest

from voicemoded.api.errors import FailedPrecondition, Unavailable
from voicemoded.engines import install
from voicemoded.engines.install import Installer
from voicemoded.livekit.binary import GO_PACKAGE, PINNED_VERSION


def fake_go(folder: Path, *, fail: bool = False) -> Path:
    """Writes its argv and GOBIN to args.txt, prints like go, and leaves a program named ``server``."""
    folder.mkdir(parents=True, exist_ok=True)
    go = folder / "go"
    body = 'echo "go: downloading github.com/pion/webrtc/v4 v4.0.0"\necho "github.com/livekit/livekit-server/cmd/server"\n'
    body += (
        'echo "go: build failed: no network" >&2; exit 1\n'
        if fail
        else 'printf "#!/bin/sh\\necho built\\n" > "$GOBIN/server"\nchmod +x "$GOBIN/server"\n'
    )
    go.write_text(f'#!/bin/sh\necho "$@" "GOBIN=$GOBIN" > "{folder}/args.txt"\n{body}')
    go.chmod(0o755)
    return go


def test_a_missing_server_is_built_with_go_into_the_versioned_cache(tmp_path: Path) -> None:
    go = fake_go(tmp_path / "go")
    cache = tmp_path / "cache"
    installer = Installer(go_cache=cache, go=str(go), binary_paths={"VOICEMODE_LIVEKIT_SERVER_PATH": ""})
    lines: list[str] = []
    status = asyncio.run(installer.install("livekit", lines.append))
    target = cache / PINNED_VERSION / "livekit-server"
    assert status.installed and status.binary_path == str(target)
    assert target.stat().st_mode & stat.S_IXUSR
    assert "go: downloading github.com/pion/webrtc/v4 v4.0.0" in lines
    assert lines[-1] == f"livekit-server built at {target}"
    argv, gobin = (tmp_path / "go" / "args.txt").read_text().split(" GOBIN=")
    assert argv == f"install -v {GO_PACKAGE}@{PINNED_VERSION}"
    assert Path(gobin.strip()).parent == target.parent and not Path(gobin.strip()).exists()
    assert sorted(p.name for p in target.parent.iterdir()) == ["livekit-server"]
    again: list[str] = []
    asyncio.run(installer.install("livekit", again.append))
    assert again == [f"livekit-server found at {target}"]  # built once


def test_a_failed_build_says_why_and_leaves_no_binary(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    installer = Installer(go_cache=cache, go=str(fake_go(tmp_path / "go", fail=True)))
    with pytest.raises(Unavailable) as info:
        asyncio.run(installer.install("livekit"))
    assert "go: build failed: no network" in info.value.message and "(exit 1)" in info.value.message
    assert "Go >= 1.26" in info.value.hint
    assert list((cache / PINNED_VERSION).iterdir()) == []
    assert not installer.status("livekit").installed


def test_without_go_it_says_exactly_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    monkeypatch.setattr(install, "GO_FALLBACKS", ())  # Go is installed on this machine; a machine without it
    assert install.find_go() is None
    installer = Installer(go_cache=tmp_path / "cache")
    with pytest.raises(FailedPrecondition) as info:
        asyncio.run(installer.install("livekit"))
    hint = info.value.hint
    assert "Go >= 1.26" in hint and "https://go.dev/dl" in hint
    assert "livekit-server binary" in hint and "PATH" in hint and "VOICEMODE_LIVEKIT_SERVER_PATH" in hint
    assert not (tmp_path / "cache").exists()


def test_go_is_found_where_the_go_dev_archive_puts_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    go = fake_go(tmp_path / "usr-local-go-bin")
    monkeypatch.setattr(install, "GO_FALLBACKS", (tmp_path / "nowhere" / "go", go))
    assert install.find_go() == str(go)


def test_a_server_on_path_or_configured_needs_no_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    binary = tmp_path / "bin" / "livekit-server"
    binary.parent.mkdir()
    binary.write_text("#!/bin/sh\n")
    binary.chmod(0o755)
    monkeypatch.setenv("PATH", str(binary.parent))
    installer = Installer(go_cache=tmp_path / "cache", go=str(tmp_path / "no-go"))
    assert installer.status("livekit").binary_path == str(binary)


def test_a_configured_path_that_is_not_a_program_is_named_not_built_around(tmp_path: Path) -> None:
    missing = str(tmp_path / "nowhere" / "livekit-server")
    go = fake_go(tmp_path / "go")
    installer = Installer(
        go_cache=tmp_path / "cache", go=str(go), binary_paths={"VOICEMODE_LIVEKIT_SERVER_PATH": missing}
    )
    with pytest.raises(FailedPrecondition) as info:
        asyncio.run(installer.install("livekit"))
    assert missing in info.value.message and "VOICEMODE_LIVEKIT_SERVER_PATH" in info.value.message
    assert "livekit-server" in info.value.message
    assert not (tmp_path / "go" / "args.txt").exists()

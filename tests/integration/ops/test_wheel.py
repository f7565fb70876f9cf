"""The built wheel, installed into clean venvs: every file of the packages is in it, the front doors work
with grpcio and protobuf alone, and the daemon from the wheel takes over from a running one (an upgrade),
restarts the speech servers under the new install and holds a spoken turn through the installed CLI.

Nothing is downloaded: the wheel is built without build isolation, installed with --no-deps, and the
dependencies come from this venv's site-packages through a .pth file (a path added that way is not a
site dir, so this checkout's editable install is not seen).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import threading
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psutil
import pytest

from voicemoded import __version__
from voicemoded.api.v1 import providers_pb2, services_pb2
from voicemoded.audio.format import AudioFormat
from voicemoded.testing.daemon import DaemonHandle
from voicemoded.testing.ports import free_port
from voicemoded.testing.rig import VirtualAudioRig

ROOT = Path(__file__).resolve().parents[3]
PACKAGES = ("voicemoded", "voicemodectl", "voicemode_mcp", "voicemode_web")
#: The web page, built by scripts/setup.sh (not in git), ships in the wheel.
PAGE = Path("voicemode_web/static")
SITE = Path(sysconfig.get_paths()["purelib"])
# What a front-door-only install (`pip install voicemode` without the daemon's extras) brings.
FRONT_DOOR_DEPS = ("grpc", "google", "typing_extensions.py")
TLS_AND_PROXY = (
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
)
QUESTION = "Which file should I open first?"
ANSWER = "Please open the settings file and check the port number."

pytestmark = [pytest.mark.slow]


def source_files() -> list[str]:
    """The files a fresh clone has (tracked, plus new ones not ignored), relative to the root."""
    if shutil.which("git") and (ROOT / ".git").exists():
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
            cwd=ROOT, capture_output=True, text=True, check=True,
        ).stdout.splitlines()  # fmt: skip
        return [f for f in listed if (ROOT / f).is_file()]
    skip = {".venv", ".git", "__pycache__", "build", "dist"}
    return [
        str(p.relative_to(ROOT)) for p in ROOT.rglob("*")
        if p.is_file() and not skip & set(p.relative_to(ROOT).parts) and p.suffix != ".pyc"
    ]  # fmt: skip


@dataclass
class Built:
    wheel: Path
    packaged: list[str]
    root: Path

    def venv(self, name: str, deps: Path) -> Path:
        """A clean venv with the wheel installed and ``deps`` on its path."""
        venv = self.root / name
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
        subprocess.run(
            [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "--no-deps",
             "--no-index", "--disable-pip-version-check", "-q", str(self.wheel)],
            check=True, timeout=120,
        )  # fmt: skip
        purelib = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True, text=True, check=True,
        ).stdout.strip()  # fmt: skip
        (Path(purelib) / "deps.pth").write_text(f"{deps}\n")
        return venv


@pytest.fixture(scope="module")
def built() -> Iterator[Built]:
    root = Path(tempfile.mkdtemp(prefix="vm-whl-"))
    src = root / "src"
    files = source_files()
    files += [str(f.relative_to(ROOT)) for f in (ROOT / PAGE).rglob("*") if f.is_file() and f.name != ".built"]
    for name in files:
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index",
         "--disable-pip-version-check", "-q", "-w", str(root / "dist"), str(src)],
        check=True, timeout=300, capture_output=True,
    )  # fmt: skip
    [wheel] = (root / "dist").glob("voicemode-*.whl")
    packaged = [f for f in files if f.split("/")[0] in PACKAGES]
    try:
        yield Built(wheel, packaged, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(venv: Path, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(venv / "bin" / argv[0]), *argv[1:]], capture_output=True, text=True, timeout=60,
        cwd=venv, env=env or {"PATH": "/usr/bin:/bin", "HOME": str(venv)},
    )  # fmt: skip


def test_every_package_file_is_in_the_wheel(built: Built) -> None:
    names = set(zipfile.ZipFile(built.wheel).namelist())
    missing = [f for f in built.packaged if f not in names]
    assert not missing, f"not packaged (add them to package data): {missing}"
    for needed in (
        "voicemoded/py.typed",
        "voicemoded/api/v1/daemon_pb2.py",
        "voicemoded/api/v1/daemon_pb2.pyi",
    ):
        assert needed in names
    entry_points = zipfile.ZipFile(built.wheel).read(
        f"voicemode-{__version__}.dist-info/entry_points.txt"
    ).decode()  # fmt: skip
    for script in ("voicemoded", "voicemodectl", "voicemode-mcp", "voicemode-web"):
        assert f"{script} = " in entry_points
    page = {n for n in names if n.startswith(f"{PAGE}/")}
    assert f"{PAGE}/index.html" in page and f"{PAGE}/assets/main.js" in page, "build the page: scripts/setup.sh"


def test_front_doors_need_only_grpcio_and_protobuf(built: Built, daemon: DaemonHandle) -> None:
    deps = built.root / "front-deps"
    deps.mkdir()
    for name in FRONT_DOOR_DEPS:
        (deps / name).symlink_to(SITE / name)
    venv = built.venv("front", deps)
    assert run(venv, "voicemodectl", "--version").stdout.strip() == f"voicemodectl {__version__}"
    env = {"PATH": "/usr/bin:/bin", "HOME": str(venv)}
    status = run(venv, "voicemodectl", "--socket", str(daemon.socket), "--json", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["version"] == __version__
    where = run(
        venv, "python", "-c", "import voicemodectl, grpc; print(voicemodectl.__file__, grpc.__file__)"
    )
    assert where.stdout.startswith(str(venv)), "the CLI ran from the wheel, not from the checkout"
    doctor = run(venv, "voicemodectl", "--socket", str(daemon.socket), "doctor", "--no-probe", env=env)
    assert "Traceback" not in doctor.stderr and "socket" in doctor.stdout


def test_upgrade_to_the_wheel_and_hold_a_turn(built: Built, daemon_env: DaemonHandle) -> None:
    venv = built.venv("full", SITE)
    assert run(venv, "voicemoded", "--version").stdout.strip() == f"voicemoded {__version__}"
    where = run(venv, "python", "-c", "import voicemoded.__main__ as m, faster_whisper; print(m.__file__)")
    assert where.stdout.startswith(str(venv)), (
        f"the daemon comes from the wheel: {where.stdout}{where.stderr}"
    )
    audio = VirtualAudioRig().start()
    try:
        daemon_env.env.update(audio.env)
        ports = {"VOICEMODE_WHISPER_PORT": str(free_port()), "VOICEMODE_PIPER_PORT": str(free_port())}
        daemon_env.env.update(ports, VOICEMODE_AUTOSTART_SERVICES="whisper,piper")
        # The old install runs its speech servers ...
        daemon_env.start()
        with daemon_env.client() as client:
            old = client.call(
                client.supervisor.StartService, services_pb2.ServiceRequest(name="piper"), timeout=120
            )
        assert old.command[0] == sys.executable
        # ... and is replaced by the wheel's daemon on the same socket and state.
        assert daemon_env.stop() == 0
        assert not psutil.pid_exists(old.pid) or psutil.Process(old.pid).status() == psutil.STATUS_ZOMBIE
        new = subprocess.Popen(
            [str(venv / "bin" / "voicemoded"), "--socket", str(daemon_env.socket), "--log-format", "json"],
            env=daemon_env.env, cwd=built.root, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            start_new_session=True,
        )  # fmt: skip
        try:
            hold_a_turn(venv, daemon_env, audio, new)
        finally:
            new.terminate()
            assert new.wait(30) == 0
    finally:
        audio.stop()


def hold_a_turn(
    venv: Path, daemon: DaemonHandle, audio: VirtualAudioRig, new: subprocess.Popen[bytes]
) -> None:
    ctl = [str(venv / "bin" / "voicemodectl"), "--socket", str(daemon.socket)]
    with daemon.client() as client:
        client.wait_until_ready(30, alive=lambda: new.poll() is None)
        for name in ("whisper", "piper"):
            info = client.call(
                client.supervisor.StartService, services_pb2.ServiceRequest(name=name), timeout=300
            )
            assert info.command[0] == str(venv / "bin" / "python"), "servers run from the new install"
        request = providers_pb2.SynthesizeRequest(text=ANSWER, provider="piper")
        answer = b"".join(c.audio for c in client.stream(client.providers.Synthesize, request, timeout=120))
    status = subprocess.run([*ctl, "status"], env=daemon.env, capture_output=True, text=True, timeout=30)
    assert status.returncode == 0 and f"voicemoded {__version__}: running" in status.stdout, status.stderr
    turn = subprocess.Popen(
        [*ctl, "--json", "converse", QUESTION, "--events"], env=daemon.env, stdout=subprocess.PIPE,
        stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    players: list[threading.Thread] = []
    text = ""
    assert turn.stdout is not None
    for line in turn.stdout:
        event = json.loads(line)
        if event.get("kind") == "LISTENING":
            player = threading.Thread(
                target=lambda: asyncio.run(audio.play_into_mic(answer, AudioFormat(24000, 2, 1)))
            )
            player.start()
            players.append(player)
        if event.get("kind") == "DONE":
            text = event["result"]["text"]
    assert turn.wait(120) == 0, turn.stderr.read() if turn.stderr else ""
    for player in players:
        player.join(30)
    heard = set(text.lower().replace(".", "").replace(",", "").split())
    want = ANSWER.lower().replace(".", "").split()
    assert sum(w in heard for w in want) / len(want) >= 0.9, text


def test_uv_tool_install_gives_the_front_doors(built: Built, daemon: DaemonHandle) -> None:
    """`uv tool install voicemode` from the wheel: grpcio and protobuf come from the registry, nothing else."""
    uv = Path(sys.executable).parent / "uv"
    tools, bins = built.root / "uv-tools", built.root / "uv-bin"
    env = {
        "PATH": f"{bins}:/usr/bin:/bin",
        "HOME": str(built.root),
        "UV_TOOL_DIR": str(tools),
        "UV_TOOL_BIN_DIR": str(bins),
        "UV_CACHE_DIR": str(Path.home() / ".cache" / "uv"),
        "UV_NATIVE_TLS": "1",  # trust the system's certificates, as pip does (proxies with their own CA)
        **{k: v for k, v in os.environ.items() if k in TLS_AND_PROXY},
    }
    installed = subprocess.run(
        [str(uv), "tool", "install", "--python", sys.executable, str(built.wheel)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    tool_site = next(tools.glob("voicemode/lib/python*/site-packages"))
    assert not (tool_site / "numpy").exists() and not (tool_site / "mcp").exists(), "front doors only"
    version = subprocess.run(
        [str(bins / "voicemodectl"), "--version"], env=env, capture_output=True, text=True
    )
    assert version.stdout.strip() == f"voicemodectl {__version__}"
    status = subprocess.run(
        [str(bins / "voicemodectl"), "--socket", str(daemon.socket), "--json", "status"],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert status.returncode == 0 and json.loads(status.stdout)["pid"] == daemon.process.pid  # type: ignore[union-attr]
    daemon_alone = subprocess.run(
        [str(bins / "voicemoded"), "--socket", str(built.root / "x.sock")],
        env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert daemon_alone.returncode == 1
    assert "pip install 'voicemode[daemon]'" in daemon_alone.stderr

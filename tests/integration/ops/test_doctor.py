"""voicemodectl doctor against a healthy rig, then against each problem it claims to find; for each, the
printed fix is run as printed and doctor is asked again."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from voicemoded.testing.daemon import DaemonHandle, daemon_handle, engines_daemon
from voicemoded.testing.ports import free_port
from voicemoded.testing.rig import VirtualAudioRig

pytestmark = [pytest.mark.audio, pytest.mark.slow]


def doctor(daemon: DaemonHandle, env: dict[str, str] | None = None) -> tuple[int, dict[str, Any]]:
    result = daemon.ctl("--json", "doctor", env=env)
    assert result.stdout, result.stderr
    return result.returncode, json.loads(result.stdout)


def failures(report: dict[str, Any]) -> list[dict[str, str]]:
    return [c for c in report["checks"] if c["status"] == "fail"]


def apply_fix(daemon: DaemonHandle, fix: str) -> None:
    """Run a fix exactly as printed, with `voicemodectl` meaning this checkout's CLI."""
    shim_dir = daemon.root / "shim"
    shim_dir.mkdir(exist_ok=True)
    shim = shim_dir / "voicemodectl"
    shim.write_text(f'#!/bin/sh\nexec {sys.executable} -m voicemodectl --socket {daemon.socket} "$@"\n')
    shim.chmod(0o755)
    env = {**daemon.env, "PATH": f"{shim_dir}:{daemon.env.get('PATH', '/usr/bin:/bin')}"}
    done = subprocess.run(["sh", "-c", fix], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, f"{fix}: {done.stderr}"


@pytest.fixture(scope="module")
def rig() -> Iterator[DaemonHandle]:
    """A daemon on virtual audio with the embedded Whisper and Piper running: everything healthy."""
    for handle, _audio, _client in engines_daemon(("whisper", "piper")):
        yield handle


def test_healthy_rig_passes(rig: DaemonHandle) -> None:
    code, report = doctor(rig)
    assert code == 0 and report["ok"], failures(report)
    by_name = {c["name"]: c for c in report["checks"]}
    for name in ("daemon", "socket", "sound server", "portaudio", "input device", "output device", "config"):
        assert by_name[name]["status"] == "ok", by_name[name]
    assert "pulseaudio" in by_name["sound server"]["detail"]
    assert "0600" in by_name["socket"]["detail"] and "folder 0700" in by_name["socket"]["detail"]
    assert (
        by_name["service whisper"]["status"] == "ok"
        and "model tiny.en" in by_name["service whisper"]["detail"]
    )
    assert "model en_US-joe-medium" in by_name["service piper"]["detail"]
    assert (
        by_name["stt endpoint whisper"]["status"] == "ok" and by_name["tts endpoint piper"]["status"] == "ok"
    )
    human = rig.ctl("doctor")
    assert human.returncode == 0 and human.stdout.rstrip().endswith("all good"), human.stdout


def test_wrong_socket_mode_is_found_and_fixed(rig: DaemonHandle) -> None:
    os.chmod(rig.socket, 0o666)
    try:
        code, report = doctor(rig)
        [problem] = failures(report)
        assert code == 1 and problem["name"] == "socket" and "0666" in problem["detail"]
        assert problem["fix"] == f"chmod 600 {rig.socket}"
        apply_fix(rig, problem["fix"])
    finally:
        os.chmod(rig.socket, 0o600)
    assert doctor(rig)[0] == 0


def test_dead_endpoint_is_found_and_fixed(rig: DaemonHandle) -> None:
    dead = f"http://127.0.0.1:{free_port()}/v1"
    assert rig.ctl("config", "set", "VOICEMODE_STT_BASE_URLS", dead).returncode == 0
    code, report = doctor(rig)
    [problem] = failures(report)
    assert code == 1 and problem["name"].startswith("stt endpoint 127.0.0.1:")
    assert "connection refused" in problem["detail"] and dead in problem["detail"]
    assert problem["fix"].endswith("voicemodectl config unset VOICEMODE_STT_BASE_URLS")
    apply_fix(rig, problem["fix"].rpartition("or drop it: ")[2])
    assert doctor(rig)[0] == 0


def test_bad_config_is_found_and_fixed(rig: DaemonHandle) -> None:
    rig.user_file.write_text("# older notes\nVOICEMODE_TTS_SPEED=fast\n")
    code, report = doctor(rig)
    [problem] = failures(report)
    assert code == 1 and problem["name"] == "config"
    assert "VOICEMODE_TTS_SPEED" in problem["detail"] and f"{rig.user_file}:2" in problem["detail"]
    assert problem["fix"] == "voicemodectl config unset VOICEMODE_TTS_SPEED"
    apply_fix(rig, problem["fix"])
    assert doctor(rig)[0] == 0


def test_no_sound_server_is_found(rig: DaemonHandle) -> None:
    # The shell's PULSE_SERVER names a server that is gone (the daemon's own rig still runs).
    code, report = doctor(rig, env={"PULSE_SERVER": f"unix:{rig.root / 'gone' / 'pulse.sock'}"})
    [problem] = failures(report)
    assert code == 1 and problem["name"] == "sound server" and "no such socket" in problem["detail"]
    assert problem["fix"] in ("pulseaudio --start", "systemctl --user restart pipewire pipewire-pulse")


def test_daemon_without_a_sound_server_has_no_devices() -> None:
    root = Path(tempfile.mkdtemp(prefix="vm-nosnd-"))
    server = f"unix:{root / 'pulse.sock'}"
    try:
        for handle in daemon_handle():
            handle.env.update(PULSE_SERVER=server, ALSA_CONFIG_PATH=str(root / "asound.conf"))
            (root / "asound.conf").write_text("pcm.!default { type pulse }\nctl.!default { type pulse }\n")
            handle.start()
            code, report = doctor(handle)
            names = {c["name"]: c for c in failures(report)}
            assert code == 1
            assert {"sound server", "input device", "output device"} <= set(names), names
            assert "no input device" in names["input device"]["detail"]
            assert names["input device"]["fix"] == names["sound server"]["fix"], "the server is the cause"
    finally:
        shutil.rmtree(root, ignore_errors=True)


def test_daemon_down_still_checks_what_it_can(daemon_env: DaemonHandle) -> None:
    code, report = doctor(daemon_env)
    by_name = {c["name"]: c for c in report["checks"]}
    assert code == 1 and by_name["daemon"]["status"] == "fail"
    assert by_name["daemon"]["fix"] == "voicemodectl daemon start"
    assert by_name["portaudio"]["status"] == "ok" and "libportaudio" in by_name["portaudio"]["detail"]
    apply_fix(daemon_env, by_name["daemon"]["fix"])
    try:
        assert doctor(daemon_env)[1]["checks"][0]["status"] == "ok"
    finally:
        assert daemon_env.ctl("daemon", "stop").returncode == 0


def test_doctor_without_a_daemon_writes_nothing_home(daemon_env: DaemonHandle) -> None:
    """libpulse writes ~/.config/pulse/cookie for a client that finds none; doctor's own query must not."""
    audio = VirtualAudioRig().start()
    try:
        env = {k: v for k, v in audio.env.items() if k != "PULSE_COOKIE"}
        before = sorted(daemon_env.home.rglob("*"))
        code, report = doctor(daemon_env, env={**env, "XDG_CONFIG_HOME": ""})
        by_name = {c["name"]: c for c in report["checks"]}
        assert code == 1 and by_name["daemon"]["status"] == "fail"
        assert by_name["sound server"]["status"] == "ok", by_name["sound server"]
        assert sorted(daemon_env.home.rglob("*")) == before == [], "doctor wrote to the home folder"
    finally:
        audio.stop()

"""The supervisor through the real daemon and the real CLI, with the real Piper engine as the child."""

from __future__ import annotations

import json
import socket

import pytest

from voicemoded.testing.daemon import DaemonHandle
from voicemoded.testing.ports import free_port


@pytest.fixture
def daemon_with_ports(daemon_env: DaemonHandle) -> DaemonHandle:
    daemon_env.start(
        {
            "VOICEMODE_PIPER_PORT": str(free_port()),
            "VOICEMODE_WHISPER_PORT": str(free_port()),
            "VOICEMODE_KOKORO_PORT": str(free_port()),
            "VOICEMODE_LIVEKIT_PORT": str(free_port()),
        }
    )
    return daemon_env


def ctl_json(daemon: DaemonHandle, *args: str) -> dict:
    result = daemon.ctl("--json", *args)
    assert result.returncode == 0, result.stdout + result.stderr
    return json.loads(result.stdout)


def test_service_lifecycle_from_the_cli(daemon_with_ports: DaemonHandle) -> None:
    daemon = daemon_with_ports
    services = {s["name"]: s for s in ctl_json(daemon, "service", "list")["services"]}
    assert set(services) == {"whisper", "kokoro", "piper", "livekit", "web"}
    assert all(s["host"] == "127.0.0.1" for s in services.values()), "servers bind loopback by default"
    assert services["piper"]["state"] == "STOPPED"

    started = ctl_json(daemon, "service", "start", "piper")
    assert started["state"] == "RUNNING" and started["pid"] > 0
    assert started["url"].startswith("http://127.0.0.1:")
    human = daemon.ctl("service", "list").stdout
    assert "piper" in human and "running" in human

    # The provider registry learns about the running child from the supervisor.
    providers = ctl_json(daemon, "provider", "list", "--kind", "tts")["providers"]
    assert [p["url"] for p in providers] == [started["url"]]

    logs = daemon.ctl("service", "logs", "piper", "-n", "20")
    assert logs.returncode == 0 and "engine" in logs.stdout
    log_file = daemon.base / "logs" / "piper.log"
    log_file.rename(log_file.with_suffix(".log.rotated"))
    reopened = ctl_json(daemon, "service", "reopen-logs")
    assert str(log_file) in reopened["files"] and log_file.exists()

    restarted = ctl_json(daemon, "service", "restart", "piper")
    assert restarted["state"] == "RUNNING" and restarted["pid"] != started["pid"]
    stopped = ctl_json(daemon, "service", "stop", "piper")
    assert stopped["state"] == "STOPPED" and stopped["pid"] == 0
    assert ctl_json(daemon, "provider", "list", "--kind", "tts")["providers"] == []


def test_autostart_choice_is_persisted(daemon_with_ports: DaemonHandle) -> None:
    daemon = daemon_with_ports
    assert ctl_json(daemon, "service", "enable", "kokoro")["autostart"] is True
    assert ctl_json(daemon, "service", "disable", "whisper")["autostart"] is False
    state = json.loads((daemon.base / "services" / "autostart.json").read_text())
    assert state == {"kokoro": True, "whisper": False}


def test_missing_backend_names_the_fix(daemon_with_ports: DaemonHandle) -> None:
    result = daemon_with_ports.ctl("service", "start", "livekit")
    assert result.returncode == 6, result.stderr
    assert "livekit-server" in result.stderr and "VOICEMODE_LIVEKIT_SERVER_PATH" in result.stderr
    unknown = daemon_with_ports.ctl("service", "start", "nope")
    assert unknown.returncode == 4 and "nope" in unknown.stderr


def test_port_taken_by_a_foreign_process_is_reported(daemon_with_ports: DaemonHandle) -> None:
    info = ctl_json(daemon_with_ports, "service", "status", "piper")
    port = info["port"]
    with socket.socket() as blocker:
        blocker.bind(("127.0.0.1", port))
        blocker.listen()
        result = daemon_with_ports.ctl("service", "start", "piper")
    assert result.returncode == 6
    assert f"port {port}" in result.stderr and "taken by" in result.stderr


def test_changed_endpoint_settings_reach_the_provider_registry(daemon_with_ports: DaemonHandle) -> None:
    from tests.integration.daemon.test_config import watch_events

    daemon = daemon_with_ports
    with watch_events(daemon, {"providers.reconfigured"}) as reconfigured:
        result = daemon.ctl("config", "set", "VOICEMODE_TTS_BASE_URLS", "http://127.0.0.1:9/v1")
        assert result.returncode == 0, result.stderr
        assert reconfigured.wait(10)
    providers = ctl_json(daemon, "provider", "list", "--kind", "tts")["providers"]
    assert [(p["url"], p["source"]) for p in providers] == [("http://127.0.0.1:9/v1", "user")]
    probed = ctl_json(daemon, "provider", "probe", "--kind", "tts")["providers"]
    assert probed[0]["health"] == "unhealthy" and "refused" in probed[0]["last_error"]


def test_start_and_restart_answer_with_the_outcome_of_their_own_attempt(daemon_env: DaemonHandle) -> None:
    """A start from FATAL awaits the new attempt; a restart that ends FATAL is a failure, not exit 0."""
    from voicemoded.testing.children import stand_in_whisper_server

    marker = daemon_env.root / "broken"
    daemon_env.start(stand_in_whisper_server(daemon_env.root, broken_while=marker))
    first = ctl_json(daemon_env, "service", "start", "whisper")
    assert first["state"] == "RUNNING"

    marker.touch()  # every start fails from now on, until the flap policy gives up
    restarted = daemon_env.ctl("--json", "service", "restart", "whisper", timeout=120)
    assert restarted.returncode == 6, restarted.stdout + restarted.stderr
    error = json.loads(restarted.stdout)["error"]
    assert "did not restart" in error["message"] and "giving up" in error["message"]
    assert error["state"] == "FATAL"

    marker.unlink()  # fixed: a start from FATAL is judged by the attempt it makes now
    started = daemon_env.ctl("--json", "service", "start", "whisper", timeout=120)
    assert started.returncode == 0, started.stdout + started.stderr
    info = json.loads(started.stdout)
    assert info["state"] == "RUNNING" and info["pid"] not in (0, first["pid"])

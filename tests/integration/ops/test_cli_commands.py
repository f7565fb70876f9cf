"""The real voicemodectl as a person types it: ``--json`` before or after the command, and service
verbs given several names."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from voicemoded.testing.children import stand_in_whisper_server
from voicemoded.testing.daemon import DaemonHandle, daemon_handle


@pytest.fixture
def daemon_with_whisper(daemon_env: DaemonHandle) -> DaemonHandle:
    """A daemon whose ``whisper`` is a cheap real child (a stand-in whisper-server)."""
    daemon_env.start(stand_in_whisper_server(daemon_env.root, broken_while=daemon_env.root / "broken"))
    return daemon_env


@pytest.fixture(scope="module")
def shared_daemon() -> Iterator[DaemonHandle]:
    """One daemon for the read-only commands."""
    for handle in daemon_handle():
        handle.start()
        yield handle


@pytest.mark.parametrize(
    "command",
    [["status"], ["service", "list"], ["config", "get", "VOICEMODE_VOICES"],
     ["events", "--replay", "1", "--count", "1"], ["doctor", "--no-probe"]],
)  # fmt: skip
def test_json_is_accepted_after_the_command_as_before_it(
    shared_daemon: DaemonHandle, command: list[str]
) -> None:
    def document(text: str) -> dict[str, object]:
        # events prints one JSON line per event; the others one document
        parsed = json.loads(text.splitlines()[0] if command[0] == "events" else text)
        assert isinstance(parsed, dict)
        return parsed

    before = shared_daemon.ctl("--json", *command)
    after = shared_daemon.ctl(*command, "--json")
    assert "unrecognized arguments" not in after.stderr, after.stderr
    assert after.returncode == before.returncode, after.stderr
    assert document(after.stdout).keys() == document(before.stdout).keys()


def test_without_json_anywhere_people_get_the_table(shared_daemon: DaemonHandle) -> None:
    plain = shared_daemon.ctl("service", "list")
    assert plain.returncode == 0 and plain.stdout.startswith("NAME"), plain.stderr


def test_json_after_a_command_that_needs_no_daemon(daemon_env: DaemonHandle) -> None:
    after = daemon_env.ctl("config", "path", "--json")
    assert after.returncode == 0, after.stderr
    assert json.loads(after.stdout)["socket"] == str(daemon_env.socket)
    down = daemon_env.ctl("status", "--json")
    assert down.returncode == 3
    assert json.loads(down.stdout)["error"]["code"] == "UNAVAILABLE", "the error is JSON too"


def test_service_start_acts_on_each_name_in_order_and_exits_with_the_worst(
    daemon_with_whisper: DaemonHandle,
) -> None:
    daemon = daemon_with_whisper
    result = daemon.ctl("service", "start", "whisper", "nope", "livekit", timeout=120)
    assert result.returncode == 6, result.stdout + result.stderr  # unavailable (6) beats not found (4)
    rows = result.stdout.splitlines()
    assert rows[0].startswith("NAME") and rows[1].split()[:2] == ["whisper", "running"]
    assert result.stderr.index("nope") < result.stderr.index("livekit-server"), result.stderr

    stopped = daemon.ctl("--json", "service", "stop", "nope", "whisper", timeout=120)
    assert stopped.returncode == 4, stopped.stdout + stopped.stderr
    first, second = json.loads(stopped.stdout)["services"]
    assert first["name"] == "nope" and first["error"]["code"] == "NOT_FOUND"
    assert second["name"] == "whisper" and second["state"] == "STOPPED"


def test_several_names_that_all_succeed_exit_0_and_persist(daemon: DaemonHandle) -> None:
    enabled = daemon.ctl("service", "enable", "kokoro", "whisper")
    assert enabled.returncode == 0, enabled.stderr
    assert [line.split()[0] for line in enabled.stdout.splitlines()[1:]] == ["kokoro", "whisper"]
    disabled = daemon.ctl("service", "disable", "piper", "kokoro", "--json")
    assert disabled.returncode == 0, disabled.stderr
    assert [(s["name"], s["autostart"]) for s in json.loads(disabled.stdout)["services"]] == [
        ("piper", False),
        ("kokoro", False),
    ]
    state = json.loads((daemon.base / "services" / "autostart.json").read_text())
    assert state == {"kokoro": False, "whisper": True, "piper": False}


def test_one_name_keeps_the_single_answer(daemon: DaemonHandle) -> None:
    one = daemon.ctl("--json", "service", "enable", "kokoro")
    assert one.returncode == 0 and json.loads(one.stdout)["name"] == "kokoro", "an object, not a list"
    unknown = daemon.ctl("service", "stop", "nope")
    assert unknown.returncode == 4 and "nope" in unknown.stderr and unknown.stdout == ""


def test_several_names_without_a_daemon_say_so_once(daemon_env: DaemonHandle) -> None:
    result = daemon_env.ctl("service", "start", "whisper", "piper")
    assert result.returncode == 3
    assert result.stderr.count("voicemoded is not running") == 1, result.stderr

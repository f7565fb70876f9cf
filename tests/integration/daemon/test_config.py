"""Configuration through the real daemon and the real CLI: precedence, reload, errors, editing, secrets."""

from __future__ import annotations

import json
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from voicemoded.api.v1 import common_pb2, daemon_pb2
from voicemoded.testing.daemon import DaemonHandle

SECRET = "sk-test-0123456789abcdefSECRETVALUE"


@contextmanager
def watch_events(daemon: DaemonHandle, kinds: set[str]) -> Iterator[threading.Event]:
    """Yields an Event set when an event of one of ``kinds`` arrives (after the watch is established)."""
    seen = threading.Event()
    ready = threading.Event()
    client = daemon.client()
    stream = client.daemon.WatchEvents(daemon_pb2.WatchEventsRequest(replay=1))

    def follow() -> None:
        try:
            for event in stream:
                ready.set()
                if event.kind in kinds:
                    seen.set()
        except grpc.RpcError:
            pass

    thread = threading.Thread(target=follow, daemon=True)
    thread.start()
    assert ready.wait(10), "the event stream did not start"
    try:
        yield seen
    finally:
        stream.cancel()
        client.close()


def get(daemon: DaemonHandle, key: str, **kw: object) -> dict[str, str]:
    result = daemon.ctl("--json", "config", "get", key, **kw)  # type: ignore[arg-type]
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_each_layer_beats_the_next(daemon_env: DaemonHandle) -> None:
    key = "VOICEMODE_TTS_SPEED"
    daemon_env.base.mkdir(parents=True)
    project = daemon_env.root / "project"
    nested = project / "src" / "deep"
    nested.mkdir(parents=True)
    daemon_env.start()

    value = get(daemon_env, key, cwd=nested)
    assert (value["value"], value["layer"], value["default"]) == ("1", "default", "1")
    assert (value["file"], value["line"]) == ("", 0), "a default comes from no file"
    assert value == get(daemon_env, key, cwd=daemon_env.root), "no project file yet: same everywhere"

    daemon_env.ctl("config", "set", key, "1.25")
    value = get(daemon_env, key, cwd=nested)
    assert (value["value"], value["layer"]) == ("1.25", "user")

    (project / ".voicemode.env").write_text(f"# project voice settings\n{key}=1.5\n")
    value = get(daemon_env, key, cwd=nested)
    assert (value["value"], value["layer"], value["line"]) == ("1.5", "project", 2)
    assert value["file"] == str(project / ".voicemode.env")
    # The project file applies only to callers inside the project.
    assert get(daemon_env, key, cwd=daemon_env.root)["value"] == "1.25"

    value = get(daemon_env, key, cwd=nested, env={key: "1.75"})
    assert (value["value"], value["layer"]) == ("1.75", "environment")

    # And back down: each removal exposes the layer below.
    daemon_env.ctl("config", "unset", key)
    assert get(daemon_env, key, cwd=nested)["value"] == "1.5"
    (project / ".voicemode.env").unlink()
    assert get(daemon_env, key, cwd=nested)["layer"] == "default"


def test_the_daemon_environment_sits_below_the_user_file(daemon_env: DaemonHandle) -> None:
    daemon_env.base.mkdir(parents=True)
    daemon_env.user_file.write_text("VOICEMODE_VAD_AGGRESSIVENESS=1\n")
    daemon_env.start({"VOICEMODE_VAD_AGGRESSIVENESS": "3", "VOICEMODE_TTS_SPEED": "0.5"})
    assert get(daemon_env, "VOICEMODE_VAD_AGGRESSIVENESS")["value"] == "1"
    speed = get(daemon_env, "VOICEMODE_TTS_SPEED")
    assert (speed["value"], speed["layer"]) == ("0.5", "daemon-environment")


def test_user_file_is_reloaded_when_it_changes(daemon: DaemonHandle) -> None:
    daemon.base.mkdir(parents=True, exist_ok=True)
    with watch_events(daemon, {"config.reloaded"}) as reloaded:
        daemon.user_file.write_text("VOICEMODE_SILENCE_THRESHOLD_MS=1400\n")
        assert reloaded.wait(10), "no config.reloaded event after editing the user file"
    assert get(daemon, "VOICEMODE_SILENCE_THRESHOLD_MS")["value"] == "1400"


def test_bad_value_keeps_last_good_config_and_is_reported(daemon: DaemonHandle) -> None:
    daemon.ctl("config", "set", "VOICEMODE_VAD_AGGRESSIVENESS", "1")
    with watch_events(daemon, {"config.error"}) as failed:
        text = daemon.user_file.read_text()
        daemon.user_file.write_text(text + "# a comment\nVOICEMODE_VAD_AGGRESSIVENESS=7\n")
        assert failed.wait(10), "no config.error event after writing a bad value"
    assert get(daemon, "VOICEMODE_VAD_AGGRESSIVENESS")["value"] == "1", "the last good value must stay"

    status = json.loads(daemon.ctl("--json", "status").stdout)
    [error] = status["config_errors"]
    assert error["key"] == "VOICEMODE_VAD_AGGRESSIVENESS"
    assert error["file"] == str(daemon.user_file)
    assert error["line"] == len(text.splitlines()) + 2
    assert "between 0 and 3" in error["reason"]
    human = daemon.ctl("status").stdout
    assert f"VOICEMODE_VAD_AGGRESSIVENESS at {daemon.user_file}:{error['line']}" in human
    assert "degraded" in human
    log = daemon.log_text()
    assert '"config.error"' in log and "VOICEMODE_VAD_AGGRESSIVENESS" in log

    # Fixing the file clears the error.
    daemon.ctl("config", "set", "VOICEMODE_VAD_AGGRESSIVENESS", "2")
    status = json.loads(daemon.ctl("--json", "status").stdout)
    assert status["config_errors"] == []
    assert get(daemon, "VOICEMODE_VAD_AGGRESSIVENESS")["value"] == "2"


def test_bad_project_value_fails_the_call_naming_key_file_line(daemon: DaemonHandle) -> None:
    project = daemon.root / "proj"
    project.mkdir()
    (project / ".voicemode.env").write_text("\n\nVOICEMODE_CHIME_ENABLED=maybe\n")
    result = daemon.ctl("config", "show", cwd=project)
    assert result.returncode == 5
    assert "VOICEMODE_CHIME_ENABLED" in result.stderr
    assert f"{project / '.voicemode.env'}:3" in result.stderr
    assert "expected true or false" in result.stderr
    # The daemon is fine and other callers are unaffected.
    assert daemon.ctl("config", "show").returncode == 0


def test_sighup_reloads_when_watching_is_off(daemon_env: DaemonHandle) -> None:
    daemon_env.start({"VOICEMODE_CONFIG_WATCH": "false"})
    daemon_env.user_file.write_text("VOICEMODE_TTS_SPEED=2.5\n")
    assert get(daemon_env, "VOICEMODE_TTS_SPEED")["value"] == "1"
    with watch_events(daemon_env, {"config.reloaded"}) as reloaded:
        daemon_env.signal(signal.SIGHUP)
        assert reloaded.wait(10)
    assert get(daemon_env, "VOICEMODE_TTS_SPEED")["value"] == "2.5"
    # An explicit reload does the same.
    daemon_env.user_file.write_text("VOICEMODE_TTS_SPEED=3\n")
    result = json.loads(daemon_env.ctl("--json", "config", "reload").stdout)
    assert result["changed_keys"] == ["VOICEMODE_TTS_SPEED"]


def test_config_set_keeps_comments_and_other_lines(daemon: DaemonHandle) -> None:
    daemon.user_file.write_text(
        "# my settings\nVOICEMODE_VOICES=af_sky,nova  # favourites\n\nexport VOICEMODE_TTS_SPEED=1.1\n# end\n"
    )
    result = daemon.ctl("config", "set", "tts_speed", "1.3")
    assert result.returncode == 0, result.stderr
    assert daemon.user_file.read_text() == (
        "# my settings\nVOICEMODE_VOICES=af_sky,nova  # favourites\n\nVOICEMODE_TTS_SPEED=1.3\n# end\n"
    )
    daemon.ctl("config", "set", "VOICEMODE_STT_LANGUAGE", "en")
    assert daemon.user_file.read_text().endswith("# end\n\nVOICEMODE_STT_LANGUAGE=en\n")
    assert get(daemon, "VOICEMODE_VOICES")["value"] == "af_sky,nova"
    daemon.ctl("config", "unset", "VOICEMODE_TTS_SPEED")
    assert "TTS_SPEED" not in daemon.user_file.read_text()
    assert "# my settings" in daemon.user_file.read_text()


def test_invalid_and_unknown_keys_are_refused_with_hints(daemon: DaemonHandle) -> None:
    bad = daemon.ctl("config", "set", "VOICEMODE_WHISPER_PORT", "99999")
    assert bad.returncode == 5 and "between 1 and 65535" in bad.stderr
    unknown = daemon.ctl("config", "set", "VOICEMODE_TTS_SPEEDD", "1")
    assert unknown.returncode == 4 and "did you mean VOICEMODE_TTS_SPEED" in unknown.stderr
    daemon_wide = daemon.ctl("config", "set", "--scope", "project", "VOICEMODE_WHISPER_PORT", "2023")
    assert daemon_wide.returncode == 5 and "daemon-wide" in daemon_wide.stderr
    assert not daemon.user_file.exists() or "99999" not in daemon.user_file.read_text()


def test_secrets_never_reach_logs_or_output(daemon_env: DaemonHandle) -> None:
    daemon_env.base.mkdir(parents=True)
    daemon_env.user_file.write_text(f"OPENAI_API_KEY={SECRET}\nVOICEMODE_TTS_SPEED=oops {SECRET}\n")
    daemon_env.start({"LIVEKIT_API_SECRET": SECRET + "-lk"}, wait=True)
    outputs = [
        daemon_env.ctl("config", "show"),
        daemon_env.ctl("--json", "config", "show"),
        daemon_env.ctl("--json", "config", "get", "OPENAI_API_KEY"),
        daemon_env.ctl("config", "set", "OPENAI_API_KEY", SECRET),
        daemon_env.ctl("config", "get", "OPENAI_API_KEY", env={"OPENAI_API_KEY": SECRET}),
        daemon_env.ctl("status"),
        daemon_env.ctl("--json", "status"),
        daemon_env.ctl("--json", "events", "--replay", "50", "--count", "3"),
    ]
    with daemon_env.client() as client:
        snapshot = client.call(
            client.daemon.GetConfig,
            daemon_pb2.GetConfigRequest(caller=common_pb2.CallerContext(env={"OPENAI_API_KEY": SECRET})),
        )
    daemon_env.stop()
    texts = [o.stdout + o.stderr for o in outputs] + [str(snapshot), daemon_env.log_text()]
    texts += [p.read_text(errors="replace") for p in daemon_env.base.rglob("*.log")]
    for text in texts:
        assert SECRET not in text
    shown = next(v for v in snapshot.values if v.key == "OPENAI_API_KEY")
    assert shown.secret and shown.value == "…ALUE"
    assert "VOICEMODE_TTS_SPEED" in daemon_env.log_text(), (
        "the bad line itself is reported, without the secret"
    )

"""A configuration file written for an older version still loads: what is known applies, what is not is a
warning that names the key and the line (in the log, in the events and in doctor), never a refusal."""

from __future__ import annotations

import json

from voicemoded.testing.daemon import DaemonHandle

OLD_FILE = """\
# written by voicemode 0.0.x
VOICEMODE_TTS_SPEED=1.25
VOICEMODE_PREFER_LOCAL=true
VOICEMODE_STREAMING_ENABLED=false
VOICEMODE_VOICES=af_sky,alloy
"""


def test_unknown_keys_from_an_older_version_warn_and_the_rest_applies(daemon_env: DaemonHandle) -> None:
    daemon_env.base.mkdir(parents=True)
    daemon_env.user_file.write_text(OLD_FILE)
    daemon_env.start()
    speed = json.loads(daemon_env.ctl("--json", "config", "get", "VOICEMODE_TTS_SPEED").stdout)
    assert (speed["value"], speed["layer"], speed["line"]) == ("1.25", "user", 2)
    voices = json.loads(daemon_env.ctl("--json", "config", "get", "VOICEMODE_VOICES").stdout)
    assert voices["value"] == "af_sky,alloy" and voices["layer"] == "user"
    status = json.loads(daemon_env.ctl("--json", "status").stdout)
    assert status["config_errors"] == []
    log = daemon_env.log_text()
    for key, line in (("VOICEMODE_PREFER_LOCAL", 3), ("VOICEMODE_STREAMING_ENABLED", 4)):
        assert f"{key} ({daemon_env.user_file}:{line})" in log, "the log names the key and where it is"
    events = daemon_env.ctl("events", "--replay", "50", "--subsystem", "config", "--count", "2")
    assert events.returncode == 0 and "VOICEMODE_PREFER_LOCAL" in events.stdout
    report = json.loads(daemon_env.ctl("--json", "doctor", "--no-probe").stdout)
    config = [c for c in report["checks"] if c["name"] == "config"]
    assert {c["status"] for c in config} == {"warn"}, config
    assert any("VOICEMODE_STREAMING_ENABLED" in c["detail"] for c in config)

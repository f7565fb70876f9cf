"""The daemon's answers in the page's JSON shapes."""

from __future__ import annotations

from voicemode_web import views
from voicemoded.api.v1 import conversation_pb2, services_pb2


def test_a_running_service_has_its_process_and_a_stopped_one_has_none() -> None:
    running = services_pb2.ServiceInfo(
        name="piper", state=services_pb2.RUNNING, pid=42, uptime_seconds=3.5, restarts=1,
        cpu_percent=2.25, resident_bytes=1000, installed=True, autostart=True, reason="ready after 2 s",
    )  # fmt: skip
    shown = views.service(running)
    assert shown["state"] == "running" and shown["pid"] == 42 and shown["uptime_s"] == 3.5
    assert shown["memory_bytes"] == 1000 and shown["error"] == "" and shown["autostart"] is True
    stopped = views.service(
        services_pb2.ServiceInfo(name="piper", state=services_pb2.STOPPED, pid=42, installed=True)
    )
    assert stopped["pid"] is None and stopped["uptime_s"] is None and stopped["cpu_percent"] is None
    failed = services_pb2.ServiceInfo(
        name="x", state=services_pb2.FATAL, last_exit="exit code 1", installed=True
    )
    assert views.service(failed)["error"] == "exit code 1"
    missing = services_pb2.ServiceInfo(
        name="x", state=services_pb2.STOPPED, install_hint="voicemodectl service install x"
    )
    assert views.service(missing)["error"] == "not installed: voicemodectl service install x"


def test_history_is_newest_first_with_the_plotted_latencies_named() -> None:
    old = conversation_pb2.TurnRecord(
        turn_id="a", timings=conversation_pb2.TurnTimings(ttfa=0.2, endpoint_delay=0.5)
    )
    new = conversation_pb2.TurnRecord(turn_id="b", recording_kept=True)
    turns = views.history([old, new])["turns"]
    assert [t["turn_id"] for t in turns] == ["b", "a"] and turns[0]["recording"] is True
    timings = turns[1]["timings"]
    assert timings["time_to_first_audio"] == timings["ttfa"] == 0.2
    assert timings["last_voiced_to_text"] == timings["endpoint_delay"] == 0.5
    assert timings["total"] is None, "a timing the daemon did not measure is null, not 0"


def test_times_are_iso_in_utc() -> None:
    assert views.iso(0.25) == "1970-01-01T00:00:00.250Z"

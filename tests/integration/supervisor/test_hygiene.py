"""Process hygiene: SIGKILL escalation, whole process groups, no zombies, memory limits."""

from __future__ import annotations

import os
import signal
import time

import psutil

from tests.integration.supervisor.conftest import EventRecorder, MakeSupervisor, make_spec
from voicemoded.supervisor import BackoffSettings, FlapSettings, ServiceState
from voicemoded.supervisor.orphans import wait_gone


def _grandchildren(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def _gone(procs: list[psutil.Process], timeout: float = 5.0) -> list[psutil.Process]:
    """Processes still alive after ``timeout`` (a zombie waiting for init to reap it counts as dead)."""
    return wait_gone(procs, timeout)


def _zombie_children() -> list[psutil.Process]:
    return [p for p in psutil.Process().children(recursive=True) if p.status() == psutil.STATUS_ZOMBIE]


async def test_child_ignoring_sigterm_is_killed_with_its_group_after_the_stop_timeout(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int
) -> None:
    sup = make_supervisor(make_spec("stubborn", "ignores_term", "--grandchild", port=port, stop_timeout=0.5))
    await sup.start("stubborn")
    await recorder.wait_state("stubborn", "RUNNING")
    pid = sup.get("stubborn").pid
    assert pid is not None
    group = [psutil.Process(pid), *_grandchildren(pid)]
    assert len(group) == 2

    began = time.monotonic()
    await sup.stop("stubborn")
    elapsed = time.monotonic() - began
    stopped = await recorder.wait_state("stubborn", "STOPPED")
    assert elapsed >= 0.5
    assert "SIGKILL" in stopped.fields["reason"]
    assert stopped.fields["escalated"] == "True"
    status = sup.get("stubborn")
    assert status.last_exit is not None and status.last_exit.signal == signal.SIGKILL
    assert _gone(group) == []
    assert any("sent SIGKILL" in line for line in await sup.tail_logs("stubborn", 10))


async def test_fifty_kill9_loops_leave_no_zombie_and_no_orphan(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int
) -> None:
    spec = make_spec(
        "victim",
        "ready_late",
        "--grandchild",
        port=port,
        backoff=BackoffSettings(initial=0.01, multiplier=1.0, maximum=0.01, jitter=0.0),
    )
    sup = make_supervisor(spec)
    await sup.start("victim")
    seen: list[psutil.Process] = []
    mark = 0
    for _ in range(50):
        running = await recorder.wait_state("victim", "RUNNING", since=mark)
        pid = int(running.fields["pid"])
        leader = psutil.Process(pid)
        seen += [leader, *_grandchildren(pid)]
        mark = recorder.mark()
        os.kill(pid, signal.SIGKILL)
        backoff = await recorder.wait_state("victim", "BACKOFF", since=mark)
        assert backoff.fields["exit_signal"] == str(int(signal.SIGKILL))
    await recorder.wait_state("victim", "RUNNING", since=mark)
    await sup.stop("victim")
    assert sup.get("victim").state is ServiceState.STOPPED
    assert len(seen) == 100  # every leader had its grandchild
    assert _gone(seen) == []
    assert _zombie_children() == []
    assert sup.get("victim").restarts == 50


async def test_child_over_its_memory_limit_is_restarted_and_the_event_says_why(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int
) -> None:
    limit = 120 * 1024 * 1024
    spec = make_spec(
        "leaky",
        "leak",
        "--mb",
        10,
        "--every",
        0.05,
        port=port,
        memory_limit_bytes=limit,
        memory_check_interval=0.2,
    )
    sup = make_supervisor(spec)
    await sup.start("leaky")
    first = await recorder.wait_state("leaky", "RUNNING")
    stopping = await recorder.wait_state("leaky", "STOPPING", timeout=20)
    assert "memory limit exceeded" in stopping.fields["reason"]
    assert int(stopping.fields["rss_bytes"]) > limit
    assert stopping.level == "warning"
    again = await recorder.wait_state("leaky", "RUNNING", since=recorder.events.index(stopping))
    assert again.fields["pid"] != first.fields["pid"]
    assert recorder.states("leaky")[:5] == ["STARTING", "RUNNING", "STOPPING", "STARTING", "RUNNING"]
    assert not psutil.pid_exists(int(first.fields["pid"]))
    assert sup.get("leaky").restarts >= 1


async def test_a_child_that_keeps_exceeding_its_memory_limit_ends_fatal_as_flapping(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int
) -> None:
    """Memory-limit restarts count against the flap window like crashes do: no endless restart loop."""
    spec = make_spec(
        "hog",
        "leak",
        "--mb",
        20,
        "--every",
        0.02,
        port=port,
        memory_limit_bytes=60 * 1024 * 1024,
        memory_check_interval=0.05,
        flapping=FlapSettings(max_restarts=2, window=60.0, retry_after=None),
    )
    sup = make_supervisor(spec)
    await sup.start("hog")
    fatal = await recorder.wait_state("hog", "FATAL", timeout=30)
    assert "restarted 2 times within 60 s: giving up" in fatal.fields["reason"]
    states = recorder.states("hog")
    assert states == ["STARTING", "RUNNING", "STOPPING"] * 3 + ["FATAL"]
    reasons = [e.fields["reason"] for e in recorder.state_events("hog") if e.fields["state"] == "STOPPING"]
    assert all("memory limit exceeded" in r for r in reasons)
    status = sup.get("hog")
    assert status.state is ServiceState.FATAL and status.pid is None and status.restarts == 2

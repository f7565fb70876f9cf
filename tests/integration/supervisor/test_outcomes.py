"""A start or restart answers with the outcome of the attempt it launched, not a state left from before."""

from __future__ import annotations

from pathlib import Path

from tests.integration.supervisor.conftest import EventRecorder, MakeSupervisor, make_spec
from voicemoded.supervisor import FlapSettings, ServiceSpec, ServiceState


def _flaky(marker: Path, port: int) -> ServiceSpec:
    return make_spec(
        "flaky",
        "fails_while",
        "--while",
        marker,
        port=port,
        flapping=FlapSettings(max_restarts=2, window=60.0, retry_after=None),
    )


async def test_start_of_a_fatal_service_awaits_the_new_attempt(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int, tmp_path: Path
) -> None:
    marker = tmp_path / "broken"
    marker.touch()
    sup = make_supervisor(_flaky(marker, port))
    await sup.start("flaky")
    await recorder.wait_state("flaky", "FATAL")

    marker.unlink()  # the user fixed it
    mark = recorder.mark()
    status = await sup.start_and_wait("flaky", 10.0)
    assert status.state is ServiceState.RUNNING, status.reason
    assert recorder.states("flaky", mark) == ["STARTING", "RUNNING"]


async def test_a_restart_that_ends_fatal_answers_fatal_and_a_fatal_restart_tries_again(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int, tmp_path: Path
) -> None:
    marker = tmp_path / "broken"
    sup = make_supervisor(_flaky(marker, port))
    assert (await sup.start_and_wait("flaky", 10.0)).state is ServiceState.RUNNING

    marker.touch()
    status = await sup.restart_and_wait("flaky", 10.0)
    assert status.state is ServiceState.FATAL
    assert "giving up" in status.reason

    # Restarting a FATAL service is a new attempt too: it must be seen to run and fail again.
    mark = recorder.mark()
    status = await sup.restart_and_wait("flaky", 10.0)
    assert status.state is ServiceState.FATAL
    assert recorder.states("flaky", mark)[0] == "STARTING"
    assert recorder.states("flaky", mark)[-1] == "FATAL"


async def test_start_of_a_running_service_answers_at_once(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int, tmp_path: Path
) -> None:
    sup = make_supervisor(_flaky(tmp_path / "absent", port))
    first = await sup.start_and_wait("flaky", 10.0)
    mark = recorder.mark()
    again = await sup.start_and_wait("flaky", 10.0)
    assert again.state is ServiceState.RUNNING and again.pid == first.pid
    assert recorder.states("flaky", mark) == []

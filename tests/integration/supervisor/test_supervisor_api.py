"""The calls the daemon's API maps onto: autostart (persisted), restart, list, config reload."""

from __future__ import annotations

import os
import socket

from tests.integration.supervisor.conftest import Dirs, EventRecorder, MakeSupervisor, make_spec
from voicemoded.supervisor import ServiceState, Supervisor
from voicemoded.testing.ports import free_port


async def test_autostart_choice_is_persisted_and_used_by_the_next_startup(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, dirs: Dirs
) -> None:
    a = make_spec("alpha", "ready_late", port=free_port())
    b = make_spec("beta", "ready_late", port=free_port(), autostart=True)
    first = make_supervisor(a, b)
    assert [s.name for s in first.list()] == ["alpha", "beta"]
    assert first.get("beta").autostart and not first.get("alpha").autostart
    first.set_autostart("alpha", True)
    first.set_autostart("beta", False)
    assert (dirs["state_dir"] / "autostart.json").is_file()

    second = make_supervisor(a, b)
    assert second.get("alpha").autostart and not second.get("beta").autostart
    await second.startup()
    await recorder.wait_state("alpha", "RUNNING")
    assert second.get("beta").state is ServiceState.STOPPED


async def test_autostart_onto_a_port_held_by_a_foreign_program_is_reported(
    make_supervisor: MakeSupervisor, recorder: EventRecorder
) -> None:
    port = free_port()
    sup = make_supervisor(make_spec("squatted", "ready_late", port=port, autostart=True))
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        await sup.startup()
        failed = await recorder.wait(lambda e: e.kind == "service.start_failed")
    assert failed.fields["name"] == "squatted" and failed.level == "error"
    assert f"pid {os.getpid()}" in failed.fields["reason"]
    status = sup.get("squatted")
    assert status.state is ServiceState.STOPPED
    assert f"port {port}" in status.reason


async def test_restart_replaces_the_process_without_a_backoff(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int
) -> None:
    sup = make_supervisor(make_spec("svc", "ready_late", port=port))
    await sup.start("svc")
    first = await recorder.wait_state("svc", "RUNNING")
    mark = recorder.mark()
    await sup.restart("svc")
    second = await recorder.wait_state("svc", "RUNNING", since=mark)
    assert recorder.states("svc", since=mark) == ["STOPPING", "STARTING", "RUNNING"]
    assert second.fields["pid"] != first.fields["pid"]
    assert sup.get("svc").restarts == 0  # asked for, not a crash


async def test_replace_spec_restarts_a_running_service_on_the_new_spec(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int
) -> None:
    old = make_spec("svc", "ready_late", port=port)
    sup: Supervisor = make_supervisor(old)
    await sup.start("svc")
    await recorder.wait_state("svc", "RUNNING")
    assert not await sup.replace_spec(old)  # unchanged: nothing happens
    new_port = free_port()
    mark = recorder.mark()
    assert await sup.replace_spec(make_spec("svc", "ready_late", port=new_port))
    await recorder.wait_state("svc", "RUNNING", since=mark)
    assert sup.get("svc").port == new_port
    assert any(f"127.0.0.1:{new_port}" in line for line in await sup.tail_logs("svc", 10))
    await sup.remove_spec("svc")
    assert sup.names == []

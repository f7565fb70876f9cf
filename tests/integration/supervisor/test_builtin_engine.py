"""The built-in piper spec runs our real embedded engine under the supervisor."""

from __future__ import annotations

import signal

import psutil
import pytest

from tests.integration.supervisor.conftest import EventRecorder, MakeSupervisor
from voicemoded.supervisor import BuiltinService, BuiltinSettings, HttpProbe, ServiceState, builtin_specs
from voicemoded.supervisor.probe import probe_once

pytestmark = pytest.mark.engines


async def test_embedded_piper_starts_answers_health_and_stops(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int
) -> None:
    specs = {s.name: s for s in builtin_specs(BuiltinSettings(piper=BuiltinService(port=port)))}
    piper = specs["piper"]
    assert piper.not_installed is None, piper.not_installed.message
    sup = make_supervisor(piper)
    await sup.start("piper")
    running = await recorder.wait_state("piper", "RUNNING", timeout=60)
    assert running.fields["reason"].startswith("ready after")
    assert await probe_once(HttpProbe("/health"), "127.0.0.1", port)
    status = sup.get("piper")
    assert status.backend == "embedded" and status.rss_bytes and status.rss_bytes > 50 * 2**20
    pid = status.pid
    assert pid is not None

    await sup.stop("piper")
    stopped = sup.get("piper")
    assert stopped.state is ServiceState.STOPPED
    assert stopped.last_exit is not None
    assert stopped.last_exit.code == 0 or stopped.last_exit.signal == signal.SIGTERM
    assert not psutil.pid_exists(pid)
    assert not await probe_once(HttpProbe("/health"), "127.0.0.1", port)

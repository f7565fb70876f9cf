"""Fixtures for the providers tests: fault servers on loopback and a Speech with short timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import replace

import pytest

from tests.unit.providers.faultserver import FaultServer
from voicemoded.events import EventBus
from voicemoded.providers import BreakerPolicy, ProviderSettings, Speech

#: Short timeouts so a hung endpoint costs fractions of a second in tests.
FAST = ProviderSettings(
    local_connect_timeout=0.5,
    request_timeout=0.6,
    stream_timeout=0.4,
    probe_timeout=0.5,
    probe_interval=60.0,
    breaker=BreakerPolicy(failure_threshold=3, cooldown=30.0, max_cooldown=60.0),
    voices=("af_sky", "alloy"),
)

ServerFactory = Callable[..., Awaitable[FaultServer]]


@pytest.fixture
async def server() -> AsyncIterator[ServerFactory]:
    """Start fault servers on demand; all are closed at the end of the test."""
    started: list[FaultServer] = []

    async def make(mode: str = "ok", port: int = 0, **kwargs: object) -> FaultServer:
        srv = await FaultServer(mode=mode, **kwargs).start(port)  # type: ignore[arg-type]
        started.append(srv)
        return srv

    yield make
    for srv in started:
        await srv.close()


SpeechFactory = Callable[..., Awaitable[Speech]]


@pytest.fixture
async def speech() -> AsyncIterator[SpeechFactory]:
    """Build a Speech (no background probing, publishing to ``events``) from FAST plus overrides."""
    built: list[Speech] = []

    async def make(
        local: dict[str, dict[str, str]] | None = None, events: EventBus | None = None, **overrides: object
    ) -> Speech:
        sp = Speech(replace(FAST, **overrides), events)  # type: ignore[arg-type]
        for kind, endpoints in (local or {}).items():
            sp.set_local_endpoints(kind, endpoints)  # type: ignore[arg-type]
        await sp.start(probe=False)
        built.append(sp)
        return sp

    yield make
    for sp in built:
        await sp.aclose()

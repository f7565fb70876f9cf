"""Shared pieces for the supervisor tests: a real Supervisor in a temp tree and an event recorder."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import pytest

from voicemoded.events import Event, EventBus
from voicemoded.supervisor import (
    BackoffSettings,
    FlapSettings,
    HttpProbe,
    RestartPolicy,
    ServiceSpec,
    Supervisor,
)
from voicemoded.testing.children import child_command
from voicemoded.testing.ports import free_port

MakeSupervisor = Callable[..., Supervisor]
Dirs = dict[str, Path]


class EventRecorder:
    """Keeps every event from the bus and lets a test await one (with a timeout, never a sleep loop)."""

    def __init__(self, bus: EventBus) -> None:
        self.bus = bus
        self.events: list[Event] = []
        self._changed = asyncio.Condition()
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)  # let the subscription register before anything is published

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        async for event in self.bus.subscribe():
            self.events.append(event)
            async with self._changed:
                self._changed.notify_all()

    def mark(self) -> int:
        return len(self.events)

    def states(self, name: str, since: int = 0) -> list[str]:
        return [
            e.fields["state"]
            for e in self.events[since:]
            if e.kind == "service.state" and e.fields.get("name") == name
        ]

    def state_events(self, name: str, since: int = 0) -> list[Event]:
        return [e for e in self.events[since:] if e.kind == "service.state" and e.fields.get("name") == name]

    async def wait(
        self, predicate: Callable[[Event], bool], *, since: int = 0, timeout: float = 10.0
    ) -> Event:
        async with asyncio.timeout(timeout), self._changed:
            while True:
                for event in self.events[since:]:
                    if predicate(event):
                        return event
                await self._changed.wait()

    async def wait_state(self, name: str, state: str, *, since: int = 0, timeout: float = 10.0) -> Event:
        try:
            return await self.wait(
                lambda e: (
                    e.kind == "service.state"
                    and e.fields.get("name") == name
                    and e.fields.get("state") == state
                ),
                since=since,
                timeout=timeout,
            )
        except TimeoutError:
            seen = self.states(name, since)
            raise AssertionError(f"{name} never reached {state} within {timeout} s; saw {seen}") from None


def make_spec(
    name: str, script: str, *args: object, port: int | None = None, **overrides: Any
) -> ServiceSpec:
    """A test spec with short timeouts and backoffs; a port adds ``--port`` and an HTTP probe."""
    argv = child_command(script, *args, *(("--port", port) if port is not None else ()))
    base = ServiceSpec(
        name=name,
        command=argv,
        port=port,
        probe=HttpProbe("/health") if port is not None else None,
        probe_interval=0.02,
        start_timeout=10.0,
        stop_timeout=3.0,
        restart=RestartPolicy.ON_FAILURE,
        backoff=BackoffSettings(initial=0.05, multiplier=2.0, maximum=0.4, jitter=0.2, reset_after=60.0),
        flapping=FlapSettings(max_restarts=1000, window=60.0, retry_after=None),
    )
    return dataclasses.replace(base, **overrides)


@pytest.fixture
def bus() -> EventBus:
    return EventBus(history=5000)


@pytest.fixture
async def recorder(bus: EventBus) -> AsyncIterator[EventRecorder]:
    rec = EventRecorder(bus)
    await rec.start()
    yield rec
    await rec.stop()


@pytest.fixture
def dirs(tmp_path: Path) -> dict[str, Path]:
    return {"logs_dir": tmp_path / "logs", "run_dir": tmp_path / "run", "state_dir": tmp_path / "state"}


@pytest.fixture
async def make_supervisor(bus: EventBus, dirs: dict[str, Path]) -> AsyncIterator[Callable[..., Supervisor]]:
    made: list[Supervisor] = []

    def build(*specs: ServiceSpec) -> Supervisor:
        sup = Supervisor(
            specs, logs_dir=dirs["logs_dir"], run_dir=dirs["run_dir"], state_dir=dirs["state_dir"], events=bus
        )
        made.append(sup)
        return sup

    yield build
    for sup in made:
        await sup.stop_all()


@pytest.fixture
def port() -> int:
    return free_port()

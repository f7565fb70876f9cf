"""The daemon's supervisor: a named set of services, their logs, pid files and autostart choices.

It is the only object the daemon talks to: the API layer maps its calls one to one (list, get, start, stop,
restart, enable/disable, tail/follow logs, reopen logs), config reload uses ``add_spec``/``replace_spec``/
``remove_spec``, and every state change is published on the event bus as ``service.state``.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import json
import random
from collections.abc import AsyncGenerator, Collection, Iterable
from pathlib import Path
from types import TracebackType

import structlog

from voicemoded.api.errors import AlreadyExists, NotFound, VoicemodeError
from voicemoded.api.paths import storage_error
from voicemoded.events import EventBus, Level
from voicemoded.supervisor.logs import LogSink
from voicemoded.supervisor.orphans import PidFiles, end_leftovers
from voicemoded.supervisor.process import ServiceProcess
from voicemoded.supervisor.spawn import parent_death_hook
from voicemoded.supervisor.spec import ServiceSpec
from voicemoded.supervisor.states import ServiceState
from voicemoded.supervisor.stats import ServiceStatus

log = structlog.get_logger(__name__)

SUBSYSTEM = "supervisor"
#: Where an attempt ends up: ready, given up, exited under its restart policy, or stopped meanwhile.
OUTCOMES = frozenset({ServiceState.RUNNING, ServiceState.FATAL, ServiceState.EXITED, ServiceState.STOPPED})
_LEVELS: dict[ServiceState, Level] = {
    ServiceState.BACKOFF: "warning",
    ServiceState.FATAL: "error",
}


class Supervisor:
    """Owns every supervised child of the daemon; build one in the composition root, ``async with`` it."""

    def __init__(
        self,
        specs: Iterable[ServiceSpec],
        *,
        logs_dir: Path,
        run_dir: Path,
        state_dir: Path,
        events: EventBus | None = None,
        leftover_grace: float = 3.0,
        rng: random.Random | None = None,
    ) -> None:
        """``logs_dir`` gets ``<service>.log``; ``run_dir`` the pid files; ``state_dir`` ``autostart.json``."""
        self.logs_dir = logs_dir
        self.pid_files = PidFiles(run_dir)
        self.state_file = state_dir / "autostart.json"
        self._events = events
        self._leftover_grace = leftover_grace
        self._rng = rng
        self._preexec = parent_death_hook()
        self._services: dict[str, ServiceProcess] = {}
        self._leftovers_ended: asyncio.Event | None = None
        self._autostart: dict[str, bool] = self._load_autostart()
        for spec in specs:
            self._add(spec)

    # -- lifecycle ---------------------------------------------------------------------------------------

    async def __aenter__(self) -> Supervisor:
        await self.startup()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop_all()

    async def startup(self) -> None:
        """End leftovers of a previous daemon (before their ports are needed), then start autostart services.

        A service that cannot start (backend missing, port held by a foreign program) stays STOPPED with the
        reason in its status and an error event; the others start regardless.
        """
        self._leftovers_ended = asyncio.Event()
        try:
            ended = await end_leftovers(self.pid_files, grace=self._leftover_grace)
        finally:
            self._leftovers_ended.set()
        for name, pids in ended.items():
            self._publish(
                "service.leftover_ended",
                f"{name}: ended {len(pids)} leftover process(es) of a previous daemon",
                level="warning",
                name=name,
                pids=",".join(map(str, pids)),
            )
        wanted = [p for p in self._services.values() if self.autostart(p.name)]
        await asyncio.gather(*(self._autostart_one(p) for p in wanted))

    async def _autostart_one(self, proc: ServiceProcess) -> None:
        try:
            await proc.start(reason="autostart")
        except VoicemodeError as exc:
            proc.reason = f"autostart failed: {exc.message}"
            self._publish(
                "service.start_failed",
                f"{proc.name}: {exc.message}",
                level="error",
                name=proc.name,
                reason=exc.message,
                hint=exc.hint,
            )

    async def stop_all(self) -> None:
        """Stop every child concurrently (each with its own stop timeout), then close the logs."""
        await asyncio.gather(*(p.stop(reason="daemon stopping") for p in self._services.values()))
        for proc in self._services.values():
            await proc.sink.aclose()

    # -- requests ----------------------------------------------------------------------------------------

    async def start(self, name: str) -> ServiceStatus:
        """Start (or retry now) a service; returns its status once the first attempt is under way."""
        proc = self._get(name)
        await self._after_leftovers()
        await proc.start()
        return self.get(name)

    async def stop(self, name: str) -> ServiceStatus:
        proc = self._get(name)
        await proc.stop()
        return self.get(name)

    async def restart(self, name: str) -> ServiceStatus:
        proc = self._get(name)
        await self._after_leftovers()
        await proc.restart()
        return self.get(name)

    async def start_and_wait(self, name: str, timeout: float) -> ServiceStatus:
        """Start, then the status once *this* attempt has an outcome (ready, given up, exited, stopped).

        A service that was FATAL is FATAL again only if the new attempt fails too: the wait counts only
        the states entered after the request, never the one the service was in when it came.
        """
        proc = self._get(name)
        await self._after_leftovers()
        after = await proc.start()
        await proc.wait_for(OUTCOMES, timeout, after=after)
        return self.get(name)

    async def restart_and_wait(self, name: str, timeout: float) -> ServiceStatus:
        """Restart, then the status once the new attempt has an outcome (see ``start_and_wait``)."""
        proc = self._get(name)
        await self._after_leftovers()
        after = await proc.restart()
        await proc.wait_for(OUTCOMES, timeout, after=after)
        return self.get(name)

    async def _after_leftovers(self) -> None:
        """Hold a start until ``startup`` has ended a previous run's children.

        Their ports are about to be free, and they must not be reported as foreign owners meanwhile.
        """
        if self._leftovers_ended is not None:
            await self._leftovers_ended.wait()

    async def wait_for(self, name: str, states: Collection[ServiceState], timeout: float) -> ServiceState:
        """Await a state (e.g. RUNNING after ``start``); raises Timeout naming the state it is stuck in."""
        return await self._get(name).wait_for(states, timeout)

    def set_autostart(self, name: str, enabled: bool) -> ServiceStatus:
        """Persist whether the service starts with the daemon (does not start or stop it now)."""
        self._get(name)
        choices = {**self._autostart, name: enabled}
        tmp = self.state_file.with_suffix(".json.tmp")
        try:
            self.state_file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp.write_text(json.dumps(choices, indent=2, sort_keys=True) + "\n")
            tmp.replace(self.state_file)
        except OSError as exc:
            # Nothing changed: the choice in memory stays what the file says, so a restart agrees.
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise storage_error(exc, self.state_file, f"save the autostart choice for {name}") from None
        self._autostart = choices
        log.info("service.autostart", name=name, enabled=enabled)
        return self.get(name)

    def autostart(self, name: str) -> bool:
        return self._autostart.get(name, self._get(name).spec.autostart)

    def get(self, name: str) -> ServiceStatus:
        return self._get(name).status(autostart=self.autostart(name))

    def list(self) -> list[ServiceStatus]:
        return [self.get(name) for name in sorted(self._services)]

    def spec(self, name: str) -> ServiceSpec:
        return self._get(name).spec

    @property
    def names(self) -> builtins.list[str]:
        return sorted(self._services)

    # -- logs --------------------------------------------------------------------------------------------

    async def tail_logs(self, name: str, n: int = 100) -> builtins.list[str]:
        sink = self._get(name).sink
        with contextlib.suppress(TimeoutError):
            await sink.flush(timeout=1.0)
        return await asyncio.to_thread(sink.tail, n)

    def follow_logs(self, name: str, n: int = 0) -> AsyncGenerator[str, None]:
        """The last ``n`` lines then new ones as they come; ends when the supervisor stops."""
        return self._get(name).sink.follow(n)

    async def reopen_logs(self) -> None:
        """For logrotate's ``postrotate``: write to fresh files at the configured paths."""
        await asyncio.gather(*(p.sink.reopen() for p in self._services.values()))
        log.info("service.logs_reopened", count=len(self._services))

    # -- config reload -----------------------------------------------------------------------------------

    def add_spec(self, spec: ServiceSpec) -> None:
        if spec.name in self._services:
            raise AlreadyExists(f"service {spec.name} already exists", hint="use replace_spec to change it")
        self._add(spec)

    async def replace_spec(self, spec: ServiceSpec, *, restart: bool = True) -> bool:
        """Swap in a changed spec; a running service is restarted on it when ``restart``. True if changed."""
        proc = self._get(spec.name)
        if proc.spec == spec:
            return False
        proc.replace_spec(spec)
        if restart and proc.state in (ServiceState.STARTING, ServiceState.RUNNING, ServiceState.BACKOFF):
            await proc.restart(reason="configuration changed")
        return True

    async def remove_spec(self, name: str) -> None:
        proc = self._get(name)
        await proc.stop(reason="removed from configuration")
        await proc.sink.aclose()
        del self._services[name]

    # -- internals ---------------------------------------------------------------------------------------

    def _add(self, spec: ServiceSpec) -> None:
        sink = LogSink(self.logs_dir / f"{spec.name}.log", spec.logs, service=spec.name)
        self._services[spec.name] = ServiceProcess(
            spec,
            sink=sink,
            pid_files=self.pid_files,
            on_state=self._on_state,
            preexec=self._preexec,
            rng=self._rng,
        )

    def _get(self, name: str) -> ServiceProcess:
        try:
            return self._services[name]
        except KeyError:
            known = ", ".join(sorted(self._services)) or "none"
            raise NotFound(
                f"no service named {name!r} (known: {known})",
                hint="voicemodectl service list shows the services",
                fields={"service": name},
            ) from None

    def _on_state(
        self, proc: ServiceProcess, previous: ServiceState, reason: str, fields: dict[str, object]
    ) -> None:
        state = proc.state
        pid = proc.pid
        if pid is None and state is not ServiceState.STARTING:
            pid = proc.last_pid
        level = _LEVELS.get(state, "warning" if "memory" in reason else "info")
        self._publish(
            "service.state",
            f"{proc.name}: {previous} -> {state} ({reason})",
            level=level,
            name=proc.name,
            state=str(state),
            previous=str(previous),
            pid=pid,
            reason=reason,
            **fields,
        )

    def _publish(self, kind: str, message: str, *, level: Level = "info", **fields: object) -> None:
        if self._events is not None:
            self._events.publish(kind, SUBSYSTEM, message, level=level, **fields)

    def _load_autostart(self) -> dict[str, bool]:
        try:
            raw = json.loads(self.state_file.read_text())
        except FileNotFoundError:
            return {}
        except (OSError, ValueError):
            log.warning("service.autostart_unreadable", path=str(self.state_file))
            return {}
        if not isinstance(raw, dict):
            return {}
        return {str(k): bool(v) for k, v in raw.items()}

"""One supervised service over its whole life: spawn, probe, watch, restart with backoff, stop.

A single runner task per service walks the state machine: it notices a crash by awaiting the child's own
exit (no polling), asks the backoff and flap policies what to do, sleeps the delay and starts again at once.
User requests (start/stop/restart) are serialised by a lock and take over by cancelling the runner, so there
is never more than one actor moving a service's state.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import shlex
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Literal

import structlog

from voicemoded.api.errors import FailedPrecondition, Timeout
from voicemoded.supervisor import spawn
from voicemoded.supervisor.backoff import Backoff
from voicemoded.supervisor.flapping import FlapDetector
from voicemoded.supervisor.logs import LogSink
from voicemoded.supervisor.orphans import PidFiles, port_owner, port_taken
from voicemoded.supervisor.probe import wait_ready
from voicemoded.supervisor.spec import RestartPolicy, ServiceSpec
from voicemoded.supervisor.states import IllegalTransition, ServiceState, check_transition
from voicemoded.supervisor.stats import ExitInfo, ServiceStatus, TreeSampler

log = structlog.get_logger(__name__)

S = ServiceState
#: Called on every state change: (service, previous state, reason, extra fields).
StateListener = Callable[["ServiceProcess", ServiceState, str, dict[str, object]], None]

_DRAIN_TIMEOUT = 2.0


@dataclass(eq=False)
class _Child:
    """The live process of one attempt and what the supervisor attached to it."""

    spec: ServiceSpec
    proc: asyncio.subprocess.Process
    output: asyncio.ReadTransport
    exited: asyncio.Task[int]
    pump: asyncio.Task[None]
    started: float
    started_wall: float


@dataclass(frozen=True)
class _Outcome:
    kind: Literal["start_failed", "exited", "memory"]
    exit: ExitInfo | None
    reason: str


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


class ServiceProcess:
    """The supervisor's handle on one service (one at a time; the spec may be replaced between runs)."""

    def __init__(
        self,
        spec: ServiceSpec,
        *,
        sink: LogSink,
        pid_files: PidFiles,
        on_state: StateListener | None = None,
        preexec: Callable[[], None] | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.spec = spec
        self.sink = sink
        self.state = S.STOPPED
        self.reason = "not started"
        self.since = time.time()
        self.restarts = 0
        self.last_exit: ExitInfo | None = None
        self.last_pid: int | None = None
        self._pid_files = pid_files
        self._on_state = on_state
        self._preexec = preexec
        self._backoff = Backoff(spec.backoff, rng)
        self._flap = FlapDetector(spec.flapping)
        self._sampler = TreeSampler()
        self._child: _Child | None = None
        self._runner: asyncio.Task[None] | None = None
        self._retry: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._waiters: list[tuple[frozenset[ServiceState], int, asyncio.Future[ServiceState]]] = []
        self.transitions = 0
        """How many state changes so far: a request remembers it to await only what comes after."""

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def pid(self) -> int | None:
        return self._child.proc.pid if self._child else None

    # -- requests ----------------------------------------------------------------------------------------

    async def start(self, reason: str = "start requested") -> int:
        """Begin supervising; returns once the first attempt is under way.

        Starting a service in BACKOFF or FATAL skips the wait; the policies forget past failures. Returns
        the transition count to pass to ``wait_for(after=…)`` so the caller awaits this attempt's outcome,
        not the state the service was in when asked (FATAL is also where a failed new attempt ends).
        """
        self.check_installed()
        async with self._lock:
            if self.state in (S.STARTING, S.RUNNING):
                return self.transitions - 1  # the current state is this request's outcome (or on its way)
            await self._halt(reason)
            self._check_port()
            return self._launch(reason)

    async def stop(self, reason: str = "stop requested") -> None:
        """Stop signal to the group, SIGKILL after the stop timeout; returns in STOPPED."""
        async with self._lock:
            escalated = await self._halt(reason)
            if self.state != S.STOPPED:
                done = "stopped"
                if escalated:
                    done += (
                        f": no exit within {self.spec.stop_timeout:g} s of "
                        f"{self.spec.stop_signal.name}, sent SIGKILL"
                    )
                self._set(S.STOPPED, done, escalated=escalated)

    async def restart(self, reason: str = "restart requested") -> int:
        """Stop (if running) and start at once, without a backoff delay: STOPPING → STARTING.

        Returns the transition count to await the new attempt's outcome with (see ``start``).
        """
        self.check_installed()
        async with self._lock:
            had_child = self._child is not None
            await self._halt(reason)
            if not had_child:
                self._check_port()
            return self._launch(reason)

    async def _halt(self, reason: str) -> bool:
        """Take over from the runner and end the child; True when SIGKILL was needed."""
        self._cancel_retry()
        await self._cancel_runner()
        if self.state in (S.STARTING, S.RUNNING):
            self._set(S.STOPPING, reason)
        return await self._end_child()

    def _launch(self, reason: str) -> int:
        self._flap.reset()
        self._backoff.reset()
        self._runner = asyncio.create_task(self._run_guarded(reason), name=f"service:{self.name}")
        return self.transitions

    async def wait_for(
        self, states: Collection[ServiceState], timeout: float, *, after: int | None = None
    ) -> ServiceState:
        """Until the service enters one of ``states``; Timeout names the state it is in.

        With ``after`` (a ``transitions`` count) only a state entered after that change counts: the
        outcome of an attempt launched then, not a state left over from before it.
        """
        wanted = frozenset(states)
        since = -1 if after is None else after
        if self.state in wanted and self.transitions > since:
            return self.state
        fut: asyncio.Future[ServiceState] = asyncio.get_running_loop().create_future()
        entry = (wanted, since, fut)
        self._waiters.append(entry)
        try:
            async with asyncio.timeout(timeout):
                return await fut
        except TimeoutError:
            raise Timeout(
                f"service {self.name} did not reach {'/'.join(sorted(wanted))} within {timeout:g} s; "
                f"it is {self.state} ({self.reason})",
                hint=f"see its log: voicemodectl service logs {self.name}",
            ) from None
        finally:
            if entry in self._waiters:
                self._waiters.remove(entry)

    def replace_spec(self, spec: ServiceSpec) -> None:
        """Use a new spec from the next attempt on (a live child keeps the one it was started with)."""
        self.spec = spec
        self.sink.configure(spec.logs)
        if spec.backoff != self._backoff.settings:
            self._backoff = Backoff(spec.backoff)
        if spec.flapping != self._flap.settings:
            self._flap = FlapDetector(spec.flapping)

    def check_installed(self) -> None:
        missing = self.spec.not_installed
        if missing is not None:
            raise FailedPrecondition(missing.message, hint=missing.hint, fields={"service": self.name})

    def status(self, *, autostart: bool) -> ServiceStatus:
        child = self._child
        figures = self._sampler.sample(child.proc.pid) if child else None
        return ServiceStatus(
            name=self.name,
            state=self.state,
            backend=self.spec.backend,
            autostart=autostart,
            host=self.spec.host,
            port=self.spec.port,
            pid=child.proc.pid if child else None,
            uptime=time.monotonic() - child.started if child else None,
            restarts=self.restarts,
            last_exit=self.last_exit,
            cpu_percent=figures.cpu_percent if figures else None,
            rss_bytes=figures.rss_bytes if figures else None,
            reason=self.reason,
            since=self.since,
            log_path=str(self.sink.path),
            log_dropped_bytes=self.sink.dropped_bytes,
            installed=self.spec.not_installed is None,
            install_hint=self.spec.not_installed.hint if self.spec.not_installed else "",
        )

    # -- the runner --------------------------------------------------------------------------------------

    async def _run_guarded(self, reason: str) -> None:
        """A bug in the loop must not leave a child unsupervised or a state that lies: end it, go FATAL."""
        try:
            await self._run(reason)
        except Exception as exc:
            log.exception("service.runner_failed", name=self.name)
            with contextlib.suppress(Exception):
                await self._end_child()
            try:
                self._set(S.FATAL, f"supervisor error: {exc!r}")
            except IllegalTransition:
                self.reason = f"supervisor error: {exc!r}"

    async def _run(self, reason: str) -> None:
        while True:
            outcome = await self._attempt(reason)
            spec = self.spec
            if outcome.kind == "memory":
                if self._flap.record_restart(time.monotonic()):
                    self._give_up(self._flap.reason())
                    return
                self.restarts += 1
                reason = f"restarting: {outcome.reason}"
                continue
            if not self._wants_restart(spec, outcome):
                final = S.FATAL if outcome.kind == "start_failed" else S.EXITED
                self._set(final, outcome.reason, **self._exit_fields(outcome.exit))
                return
            if self._flap.record_restart(time.monotonic()):
                self._give_up(f"{outcome.reason}; {self._flap.reason()}")
                return
            delay = self._backoff.next_delay()
            self._set(S.BACKOFF, outcome.reason, delay=round(delay, 3), **self._exit_fields(outcome.exit))
            await asyncio.sleep(delay)
            self.restarts += 1
            reason = f"restart {self.restarts} after {delay:.2f} s backoff"

    async def _attempt(self, reason: str) -> _Outcome:
        spec = self.spec
        self._set(S.STARTING, reason)
        if spec.port is not None and port_taken(spec.host, spec.port):
            owner = await asyncio.to_thread(port_owner, spec.host, spec.port)
            if owner is not None:
                return _Outcome("start_failed", None, f"port {spec.port} is taken by {owner.describe()}")
        try:
            spawned = await spawn.spawn(
                spec.command, env=spec.env, cwd=spec.cwd, preexec=self._preexec, env_drop=spec.env_drop
            )
        except OSError as exc:
            return _Outcome("start_failed", None, f"cannot run {spec.command[0]}: {exc.strerror or exc}")
        proc = spawned.proc
        child = _Child(
            spec,
            proc,
            spawned.transport,
            asyncio.create_task(proc.wait()),
            asyncio.create_task(self.sink.pump(spawned.output)),
            time.monotonic(),
            time.time(),
        )
        self._child = child
        self._pid_files.write(spec.name, proc.pid, spec.command)
        self.sink.note(f"started pid {proc.pid}: {shlex.join(spec.command)}")
        log.info("service.spawned", name=self.name, pid=proc.pid)

        ready, why = await self._await_ready(child)
        if not ready:
            await spawn.stop_group(proc, child.exited, spec.stop_signal, spec.stop_timeout)
            exit_info = await self._reap(child)
            return _Outcome("start_failed", exit_info, why)
        self._pid_files.write(spec.name, proc.pid, spec.command)  # now with the kernel's command line
        self._set(S.RUNNING, why)

        watch = asyncio.create_task(self._watch_memory(child)) if spec.memory_limit_bytes else None
        try:
            await asyncio.wait([t for t in (child.exited, watch) if t], return_when=asyncio.FIRST_COMPLETED)
        finally:
            if watch is not None:
                watch.cancel()
        if watch is not None and watch.done() and not watch.cancelled() and not child.exited.done():
            rss = watch.result()
            why = f"memory limit exceeded: {_mib(rss)} > {_mib(spec.memory_limit_bytes or 0)}"
            self._set(S.STOPPING, why, rss_bytes=rss, memory_limit_bytes=spec.memory_limit_bytes)
            await spawn.stop_group(proc, child.exited, spec.stop_signal, spec.stop_timeout)
            return _Outcome("memory", await self._reap(child), why)
        ran = time.monotonic() - child.started
        exit_info = await self._reap(child)
        self._backoff.observe_run(ran)
        return _Outcome("exited", exit_info, f"{exit_info.describe()} after {ran:.1f} s")

    async def _await_ready(self, child: _Child) -> tuple[bool, str]:
        spec = child.spec
        if spec.probe is None or spec.port is None:
            return True, "spawned (no readiness probe)"
        probing = asyncio.create_task(wait_ready(spec.probe, spec.host, spec.port, spec.probe_interval))
        try:
            await asyncio.wait(
                [probing, child.exited], timeout=spec.start_timeout, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            probing.cancel()
        if child.exited.done():
            code = ExitInfo.from_returncode(child.exited.result())
            return False, f"{code.describe()} before becoming ready"
        if probing.done() and not probing.cancelled() and probing.exception() is None:
            return True, f"ready after {time.monotonic() - child.started:.2f} s"
        return False, f"not ready within {spec.start_timeout:g} s"

    async def _watch_memory(self, child: _Child) -> int:
        limit = child.spec.memory_limit_bytes or 0
        while True:
            await asyncio.sleep(child.spec.memory_check_interval)
            rss = self._sampler.tree_rss(child.proc.pid)
            if rss is not None and rss > limit:
                return rss

    async def _reap(self, child: _Child) -> ExitInfo:
        """After the leader exited: end its group, drain its output, forget its pid file."""
        returncode = await child.exited
        spawn.kill_stragglers(child.proc.pid)
        try:
            async with asyncio.timeout(_DRAIN_TIMEOUT):
                await asyncio.shield(child.pump)
        except TimeoutError:  # a descendant that left the group still holds the pipe
            child.pump.cancel()
        child.output.close()
        exit_info = ExitInfo.from_returncode(returncode)
        if self._child is child:
            self._child = None
            self.last_exit = exit_info
            self.last_pid = child.proc.pid
            self._pid_files.remove(child.spec.name)
            self.sink.note(f"pid {child.proc.pid} {exit_info.describe()}")
            log.info("service.exited", name=self.name, pid=child.proc.pid, exit=exit_info.describe())
        return exit_info

    async def _end_child(self) -> bool:
        """Stop the current child if there is one; True when SIGKILL was needed."""
        child = self._child
        if child is None:
            return False
        escalated = await spawn.stop_group(
            child.proc, child.exited, child.spec.stop_signal, child.spec.stop_timeout
        )
        if escalated:
            self.sink.note(f"pid {child.proc.pid} ignored {child.spec.stop_signal.name}: sent SIGKILL")
            log.warning("service.kill_escalated", name=self.name, pid=child.proc.pid)
        await self._reap(child)
        return escalated

    # -- helpers -----------------------------------------------------------------------------------------

    @staticmethod
    def _wants_restart(spec: ServiceSpec, outcome: _Outcome) -> bool:
        if outcome.kind == "start_failed":
            return spec.restart is not RestartPolicy.NEVER
        if spec.restart is RestartPolicy.ALWAYS:
            return True
        if spec.restart is RestartPolicy.ON_FAILURE:
            return outcome.exit is None or outcome.exit.failed
        return False

    @staticmethod
    def _exit_fields(exit_info: ExitInfo | None) -> dict[str, object]:
        if exit_info is None:
            return {}
        return {"exit_code": exit_info.code, "exit_signal": exit_info.signal}

    def _give_up(self, reason: str) -> None:
        """FATAL after flapping; a later retry when configured."""
        self._set(S.FATAL, reason)
        retry = self.spec.flapping.retry_after
        if retry is not None:
            self._retry = asyncio.create_task(self._retry_later(retry))

    async def _retry_later(self, delay: float) -> None:
        await asyncio.sleep(delay)
        self._retry = None
        try:
            await self.start(reason=f"retrying {delay:g} s after giving up")
        except FailedPrecondition as exc:
            log.warning("service.retry_failed", name=self.name, error=str(exc))

    def _check_port(self) -> None:
        spec = self.spec
        if spec.port is None or not port_taken(spec.host, spec.port):
            return
        owner = port_owner(spec.host, spec.port)
        if owner is None:
            return
        raise FailedPrecondition(
            f"port {spec.port} on {spec.host} is taken by {owner.describe()}",
            hint=f"stop that program or give {self.name} another port",
            fields={"service": self.name, "port": str(spec.port), "pid": str(owner.pid or "")},
        )

    def _cancel_retry(self) -> None:
        if self._retry is not None and self._retry is not asyncio.current_task():
            self._retry.cancel()
        self._retry = None

    async def _cancel_runner(self) -> None:
        runner, self._runner = self._runner, None
        # Cancel until it is really over: a cancellation can be lost inside library code (Python 3.11's
        # wait_for swallows one that races a completion), and a runner that lives on restarts the child.
        while runner is not None and not runner.done():
            runner.cancel()
            await asyncio.wait({runner}, timeout=1.0)
        if runner is not None and not runner.cancelled():
            runner.exception()  # retrieved: _run_guarded already logged anything unexpected

    def _set(self, new: ServiceState, reason: str, **fields: object) -> None:
        old = self.state
        check_transition(old, new)
        self.state, self.reason, self.since = new, reason, time.time()
        self.transitions += 1
        log.info("service.state", name=self.name, state=str(new), previous=str(old), reason=reason)
        if self._on_state is not None:
            self._on_state(self, old, reason, fields)
        for wanted, since, fut in list(self._waiters):
            if new in wanted and self.transitions > since and not fut.done():
                fut.set_result(new)

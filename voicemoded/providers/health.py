"""Health: active probes on a schedule, passive marks from real requests, and the events both cause.

Probes find a dead endpoint before a person's request does, and act as the half-open trial of an open
breaker (so a hung endpoint is re-tested in the background, not on someone's sentence). Real requests mark
endpoints too, because a probe every 30 s is far too coarse to notice a child that just died.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable

import structlog

from voicemoded.events import EventBus
from voicemoded.providers.breaker import BreakerState, Transition
from voicemoded.providers.client import AttemptError, EndpointClient
from voicemoded.providers.endpoint import EndpointState, Health, update_state
from voicemoded.providers.registry import Registry
from voicemoded.providers.settings import ProviderSettings

log = structlog.get_logger(__name__)
SUBSYSTEM = "providers"


class HealthTracker:
    """Owns every change of health, breaker and load, so each change is logged and published once."""

    def __init__(
        self,
        settings: ProviderSettings,
        registry: Registry,
        client: EndpointClient,
        events: EventBus | None = None,
    ) -> None:
        self._settings = settings
        self._registry = registry
        self._client = client
        self._events = events
        self._task: asyncio.Task[None] | None = None

    # -- passive marks -------------------------------------------------------------------------------

    def admit(self, state: EndpointState) -> bool:
        """Ask the breaker for permission to send one request (a half-open endpoint admits one trial)."""
        allowed, change = state.breaker.allow()
        self._announce(state, change)
        return allowed

    def force_trial(self, state: EndpointState) -> bool:
        """Admit one request to a cooling-down endpoint when nothing else is left to try.

        Refused unless its last failure was quick (refused, reset, an error answer): a hung endpoint would
        cost its whole timeout on every request, and the cool-down exists to spare people that.
        """
        if state.last_timed_out:
            return False
        allowed, change = state.breaker.force_trial()
        self._announce(state, change)
        return allowed

    def begin(self, state: EndpointState) -> None:
        """A request goes to ``state`` now: count it in flight and as served (which spreads the load)."""
        update_state(state, in_flight=state.in_flight + 1, served=state.served + 1)

    def end(self, state: EndpointState) -> None:
        """The request :meth:`begin` counted is over, however it ended."""
        update_state(state, in_flight=state.in_flight - 1)

    def mark_success(self, state: EndpointState, latency: float | None = None) -> None:
        if latency is not None:
            update_state(state, latency=latency)
        change = state.breaker.record_success()
        self._set_health(state, Health.HEALTHY, change)

    def mark_failure(self, state: EndpointState, error: AttemptError) -> None:
        """Record a failed attempt; a rejection (HTTP 4xx) proves the endpoint alive and counts as success."""
        if error.rejected:
            self.mark_success(state)
            return
        update_state(
            state, last_error=error.reason, last_error_at=time.time(), last_timed_out=error.timed_out
        )
        change = state.breaker.record_failure(hard=error.hard)
        health = Health.UNHEALTHY if error.hard or state.breaker.state is BreakerState.OPEN else state.health
        self._set_health(state, health, change)

    def release(self, state: EndpointState) -> None:
        """The caller went away mid-request: no verdict on the endpoint, free its trial slot."""
        state.breaker.release()

    def reset(self, state: EndpointState) -> None:
        """Forget an endpoint's past, as if it had just been added: circuit closed, health unknown."""
        self._set_health(state, Health.UNKNOWN, state.breaker.reset())

    def _set_health(self, state: EndpointState, health: Health, change: Transition | None) -> None:
        old = state.health
        update_state(state, health=health)
        if old is not health or change is not None:
            self._announce(state, change, old_health=old)

    def _announce(
        self, state: EndpointState, change: Transition | None, old_health: Health | None = None
    ) -> None:
        if change is None and (old_health is None or old_health is state.health):
            return
        ep = state.endpoint
        level = "warning" if state.health is Health.UNHEALTHY else "info"
        breaker = state.breaker.state.value
        log.log(
            30 if level == "warning" else 20,
            "provider.health",
            endpoint=ep.url,
            kind=ep.kind,
            health=state.health.value,
            breaker=breaker,
            reason=state.last_error,
        )
        if self._events is not None:
            self._events.publish(
                "provider.health",
                SUBSYSTEM,
                f"{ep.kind.upper()} {ep.name} is {state.health.value} (circuit {breaker})",
                level=level,
                url=ep.url,
                name=ep.name,
                kind=ep.kind,
                health=state.health.value,
                breaker=breaker,
                previous_breaker="" if change is None else change[0].value,
                reason=state.last_error if state.health is Health.UNHEALTHY else "",
            )

    def failover(self, state: EndpointState, reason: str, to: EndpointState | None) -> None:
        """Publish that a request moved on from ``state`` (to ``to``, or to nothing left)."""
        ep = state.endpoint
        target = "" if to is None else to.endpoint.url
        log.warning("provider.failover", kind=ep.kind, endpoint=ep.url, reason=reason, to=target)
        if self._events is not None:
            self._events.publish(
                "provider.failover",
                SUBSYSTEM,
                f"{ep.kind.upper()} {ep.name} failed ({reason})"
                + (f"; trying {to.endpoint.name}" if to else "; no endpoint left"),
                level="warning",
                url=ep.url,
                name=ep.name,
                kind=ep.kind,
                reason=reason,
                to=target,
            )

    # -- active probes -------------------------------------------------------------------------------

    async def probe(self, state: EndpointState) -> None:
        """One probe: ``/health`` at the server root, ``/models`` when there is no such route."""
        ep = state.endpoint
        breaker = state.breaker
        if breaker.state is not BreakerState.CLOSED and not self.admit(state):
            return  # open and cooling down: the probe would be a trial it is not yet time for
        timeout = self._settings.probe_timeout
        started = time.monotonic()
        try:
            status, _ = await self._client.get_json(ep, f"{ep.root}/health", timeout)
            if status == 404 or status == 405:
                status, _ = await self._client.get_json(ep, f"{ep.url}/models", timeout)
        except AttemptError as exc:
            self.mark_failure(state, exc)
            return
        except asyncio.CancelledError:
            self.release(state)
            raise
        if status >= 500 or status in (401, 403):
            self.mark_failure(state, AttemptError(f"health check answered HTTP {status}", hard=status < 500))
            return
        self.mark_success(state, time.monotonic() - started)
        if state.models is None or not state.discovery_fresh(self._settings.discovery_ttl):
            await self._registry.discover(state)

    async def probe_all(self, states: Iterable[EndpointState] | None = None) -> None:
        targets = list(self._registry.all_states() if states is None else states)
        await asyncio.gather(*(self.probe(state) for state in targets))

    def start(self) -> None:
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._run(), name="providers-health")

    async def aclose(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _run(self) -> None:
        interval = self._settings.probe_interval
        while True:
            try:
                await self.probe_all()
            except Exception:
                log.exception("providers.probe_loop_error")
            await asyncio.sleep(interval)

"""One request's walk over its planned endpoints, the same for synthesis and transcription.

The walk is what both kinds share: pass over an endpoint whose circuit is open (trying a cooling-down one
anyway when nothing else is left), count each try in flight, mark the endpoint with the outcome, move on
after a failure, and when nothing served the request, say what happened at every endpoint. Only the call
made at each endpoint differs, so that is all a caller writes::

    attempts = Attempts("stt", plan, health)
    for attempt in attempts:
        with attempt:  # a failed call is recorded here, and the walk goes on
            answer = await call(attempt.endpoint)
            attempt.succeed()
        if attempt.succeeded:
            return answer
    raise attempts.error()

Once :meth:`Attempt.succeed` was called the request is committed to that endpoint (for synthesis: audio
has reached the caller, and starting over elsewhere would repeat it), so a later failure is not failed
over but leaves the ``with`` block for the caller to report.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Literal

import structlog

from voicemoded.api.errors import InvalidArgument, Unavailable, VoicemodeError
from voicemoded.providers.breaker import BreakerState
from voicemoded.providers.client import AttemptError
from voicemoded.providers.endpoint import Endpoint, EndpointState, Kind
from voicemoded.providers.health import HealthTracker
from voicemoded.providers.plan import Candidate, Plan

log = structlog.get_logger(__name__)

Outcome = Literal["skipped", "rejected", "failed"]


@dataclass(frozen=True, slots=True)
class Miss:
    """An endpoint a request passed over, and why."""

    state: EndpointState
    reason: str
    outcome: Outcome
    """``skipped`` (never contacted), ``rejected`` (refused the request: HTTP 4xx) or ``failed``."""


def all_failed(kind: Kind, misses: Sequence[Miss]) -> VoicemodeError:
    """The error when no endpoint served the request: every endpoint with its own reason.

    When every endpoint that was contacted refused the request itself (HTTP 4xx), the request is what is
    wrong, so the error is InvalidArgument rather than Unavailable.
    """
    lines = [
        f"{m.state.endpoint.name} ({m.state.endpoint.url}, {m.state.endpoint.source.label}): {m.reason}"
        for m in misses
    ]
    fields = {m.state.endpoint.url: m.reason for m in misses}
    message = f"no {kind.upper()} endpoint could serve the request:\n  - " + "\n  - ".join(lines)
    contacted = [m for m in misses if m.outcome != "skipped"]
    if contacted and all(m.outcome == "rejected" for m in contacted):
        return InvalidArgument(message, hint="the endpoints refused these parameters", fields=fields)
    service = "whisper" if kind == "stt" else "piper"
    return Unavailable(
        message,
        hint=f"check 'voicemodectl provider probe'; start a local service (voicemodectl service start {service})",
        fields=fields,
    )


class Attempts:
    """The tries of one request, in plan order; iterate it once, and ``with`` each try it yields."""

    def __init__(self, kind: Kind, plan: Plan, health: HealthTracker) -> None:
        self.kind = kind
        self._candidates = plan.candidates
        self._health = health
        self._misses = [Miss(state, reason, "skipped") for state, reason in plan.skipped]

    @property
    def failed_over(self) -> tuple[tuple[str, str], ...]:
        """(endpoint URL, reason) for each endpoint passed over so far."""
        return tuple((m.state.endpoint.url, m.reason) for m in self._misses)

    def error(self) -> VoicemodeError:
        """What to raise when the walk ended without an endpoint that served."""
        return all_failed(self.kind, self._misses)

    def __iter__(self) -> Iterator[Attempt]:
        for candidate in self._admitted():
            yield Attempt(self, candidate, self._health)

    def _admitted(self) -> Iterator[Candidate]:
        """The candidates whose breakers let a request through, in plan order.

        When every one of them is cooling down, the first whose last failure was quick is tried anyway:
        with nothing else left, answering "circuit open" would refuse the person for the whole cool-down
        over one failed connect to a server that may well be back (a restarted child, a dropped
        connection), while trying costs next to nothing.
        """
        cooling: list[Candidate] = []
        for candidate in self._candidates:
            if self._health.admit(candidate.state):
                yield candidate
            else:
                self._misses.append(Miss(candidate.state, _open_reason(candidate.state), "skipped"))
                cooling.append(candidate)
        if not cooling or len(cooling) < len(self._candidates):
            return
        for candidate in cooling:
            if self._health.force_trial(candidate.state):
                log.info("providers.last_resort", endpoint=candidate.state.endpoint.url)
                self._misses = [m for m in self._misses if m.state is not candidate.state]
                yield candidate
                return

    def _moved_on(self, candidate: Candidate, error: AttemptError) -> None:
        """Record a failed try and publish where the request goes next."""
        state = candidate.state
        self._misses.append(Miss(state, error.reason, "rejected" if error.rejected else "failed"))
        index = self._candidates.index(candidate)
        after = self._candidates[index + 1].state if index + 1 < len(self._candidates) else None
        self._health.failover(state, error.reason, after)


class Attempt:
    """One try at one endpoint: the call goes inside ``with attempt:``, then :meth:`succeed` once it served.

    Leaving the block marks the endpoint: a failed call (an :class:`AttemptError`) before success is
    recorded and swallowed, so the walk goes on; after success it is the request's own error and passes
    through. Anything else (the caller cancelled) gives back a half-open trial slot, with no verdict.
    """

    def __init__(self, attempts: Attempts, candidate: Candidate, health: HealthTracker) -> None:
        self.candidate = candidate
        self.succeeded = False
        self._attempts = attempts
        self._health = health
        self._started = 0.0

    @property
    def state(self) -> EndpointState:
        return self.candidate.state

    @property
    def endpoint(self) -> Endpoint:
        return self.candidate.state.endpoint

    def succeed(self) -> None:
        """The endpoint served (the answer, or the first audio): mark it healthy with the latency so far."""
        if not self.succeeded:
            self.succeeded = True
            self._health.mark_success(self.state, time.monotonic() - self._started)

    def __enter__(self) -> Attempt:
        self._health.begin(self.state)
        self._started = time.monotonic()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> bool:
        try:
            return self._settle(exc)
        finally:
            self._health.end(self.state)

    def _settle(self, exc: BaseException | None) -> bool:
        """Mark the endpoint with how the try ended; True when the walk may go on to the next one."""
        if exc is None:
            return False
        if isinstance(exc, AttemptError):
            self._health.mark_failure(self.state, exc)
            if self.succeeded:
                return False
            self._attempts._moved_on(self.candidate, exc)
            return True
        if not self.succeeded:
            self._health.release(self.state)
        return False


def _open_reason(state: EndpointState) -> str:
    breaker = state.breaker
    last = state.last_error or "earlier failures"
    if breaker.state is BreakerState.HALF_OPEN:
        return f"circuit half-open, a trial request is in flight (last error: {last})"
    return f"circuit open after: {last}; next try in {breaker.retry_in():.0f} s"

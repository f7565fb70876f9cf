"""The process state machine, readable in one screen.

Every state change goes through :func:`check_transition`, so an impossible sequence (RUNNING without
STARTING, a restart from STOPPED…) is a bug that fails loudly in tests instead of a confusing status.
"""

from __future__ import annotations

from enum import StrEnum


class ServiceState(StrEnum):
    STOPPED = "STOPPED"
    """Not running because nobody asked for it (or somebody stopped it)."""
    STARTING = "STARTING"
    """Spawned; the readiness probe has not passed yet."""
    RUNNING = "RUNNING"
    """The probe passed: clients may use it."""
    BACKOFF = "BACKOFF"
    """Exited or failed to start; waiting out the backoff delay before the next attempt."""
    STOPPING = "STOPPING"
    """Stop signal sent to the process group; SIGKILL follows after the stop timeout."""
    EXITED = "EXITED"
    """Exited on its own and the restart policy says leave it."""
    FATAL = "FATAL"
    """Could not be kept up (flapping, would not start); retried later only if configured."""

    @property
    def is_active(self) -> bool:
        """A process exists or is about to (the supervisor owes it a stop)."""
        return self in _ACTIVE


_ACTIVE = frozenset(
    {ServiceState.STARTING, ServiceState.RUNNING, ServiceState.BACKOFF, ServiceState.STOPPING}
)

S = ServiceState
TRANSITIONS: dict[ServiceState, frozenset[ServiceState]] = {
    S.STOPPED: frozenset({S.STARTING}),
    # STARTING → STOPPING only on a user stop; a failed start goes to BACKOFF (or FATAL when not retried).
    S.STARTING: frozenset({S.RUNNING, S.BACKOFF, S.STOPPING, S.FATAL}),
    S.RUNNING: frozenset({S.BACKOFF, S.STOPPING, S.EXITED, S.FATAL}),
    S.BACKOFF: frozenset({S.STARTING, S.STOPPED}),
    # STOPPING → STARTING is a restart (asked for, or over the memory limit); → FATAL when that
    # restart is one too many for the flap policy.
    S.STOPPING: frozenset({S.STOPPED, S.STARTING, S.FATAL}),
    S.EXITED: frozenset({S.STARTING, S.STOPPED}),
    S.FATAL: frozenset({S.STARTING, S.STOPPED}),
}
del S


class IllegalTransition(RuntimeError):
    """A supervisor bug: the process loop tried a state change the machine does not have."""


def check_transition(old: ServiceState, new: ServiceState) -> None:
    if new not in TRANSITIONS[old]:
        raise IllegalTransition(f"{old} -> {new} is not a valid service state transition")

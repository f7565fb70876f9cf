"""The state machine allows the documented paths and nothing else."""

from __future__ import annotations

import itertools

import pytest

from voicemoded.supervisor.states import TRANSITIONS, IllegalTransition, ServiceState, check_transition

S = ServiceState


@pytest.mark.parametrize(
    "path",
    [
        [S.STOPPED, S.STARTING, S.RUNNING, S.STOPPING, S.STOPPED],
        [S.STOPPED, S.STARTING, S.BACKOFF, S.STARTING, S.RUNNING, S.BACKOFF, S.STARTING, S.FATAL],
        [S.STOPPED, S.STARTING, S.RUNNING, S.EXITED, S.STARTING],
        [S.STOPPED, S.STARTING, S.RUNNING, S.STOPPING, S.STARTING, S.RUNNING],  # restart
        [S.STOPPED, S.STARTING, S.RUNNING, S.STOPPING, S.FATAL, S.STARTING],  # memory restart refused
        [S.BACKOFF, S.STOPPED],
        [S.FATAL, S.STOPPED],
    ],
)
def test_documented_paths_are_allowed(path: list[ServiceState]) -> None:
    for old, new in itertools.pairwise(path):
        check_transition(old, new)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (S.STOPPED, S.RUNNING),  # RUNNING only after STARTING's probe
        (S.STOPPED, S.STOPPING),
        (S.BACKOFF, S.RUNNING),
        (S.EXITED, S.RUNNING),
        (S.STOPPING, S.RUNNING),
        (S.RUNNING, S.STARTING),
        (S.RUNNING, S.RUNNING),
    ],
)
def test_impossible_transitions_fail_loudly(old: ServiceState, new: ServiceState) -> None:
    with pytest.raises(IllegalTransition):
        check_transition(old, new)


def test_every_state_has_an_entry_and_a_way_out() -> None:
    assert set(TRANSITIONS) == set(ServiceState)
    assert all(TRANSITIONS[state] for state in ServiceState)
    assert {s for s in ServiceState if s.is_active} == {S.STARTING, S.RUNNING, S.BACKOFF, S.STOPPING}

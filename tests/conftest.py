"""Shared fixtures: a real daemon on a temp socket."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.daemon_harness import DaemonHandle, daemon_handle


@pytest.fixture
def daemon_env() -> Iterator[DaemonHandle]:
    """A daemon handle that is not started yet (the test sets files/env first)."""
    yield from daemon_handle()


@pytest.fixture
def daemon(daemon_env: DaemonHandle) -> DaemonHandle:
    """A running daemon with default settings and no autostarted services."""
    daemon_env.start()
    return daemon_env

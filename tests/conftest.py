"""Shared fixtures: a real daemon on a temp socket."""

from __future__ import annotations

import os
from collections.abc import Generator, Iterator

import pytest
from hypothesis import settings

from voicemoded.testing.daemon import DaemonHandle, daemon_handle

# Property tests draw the same examples on every run (a CI run must not pass or fail by luck) and keep no
# example database in the checkout; VOICEMODE_HYPOTHESIS=explore draws new ones each run.
settings.register_profile("repeatable", derandomize=True, database=None)
settings.register_profile("explore", database=None)
settings.load_profile("explore" if os.environ.get("VOICEMODE_HYPOTHESIS") == "explore" else "repeatable")


@pytest.fixture
def daemon_env() -> Iterator[DaemonHandle]:
    """A daemon handle that is not started yet (the test sets files/env first)."""
    yield from daemon_handle()


@pytest.fixture
def daemon(daemon_env: DaemonHandle) -> DaemonHandle:
    """A running daemon with default settings and no autostarted services."""
    daemon_env.start()
    return daemon_env


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    """A failed test that used a daemon shows the end of that daemon's log (CI keeps nothing else)."""
    report = yield
    if report.failed and call.when == "call":
        for value in getattr(item, "funcargs", {}).values():
            handle = value if isinstance(value, DaemonHandle) else getattr(value, "daemon", None)
            if isinstance(handle, DaemonHandle):
                tail = "\n".join(handle.log_text().splitlines()[-80:])
                report.sections.append(("daemon log (last 80 lines)", tail))
                break
    return report

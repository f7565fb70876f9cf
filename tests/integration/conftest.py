"""The scripted person's voice, loaded once for every integration folder that speaks."""

from __future__ import annotations

import pytest

from voicemoded.testing.person import Voice


@pytest.fixture(scope="session")
def voice() -> Voice:
    return Voice()

"""A stream whose close never returns (PortAudio under a sound server that died) holds nothing up.

The hang itself comes rarely and only from a dying sound server mid-close, so the stream here is a stand-in
whose ``close()`` blocks until the test lets it go; the backend around it is the real one.
"""

from __future__ import annotations

import threading
import time
from typing import Any, cast

import pytest

from voicemoded.audio import devices
from voicemoded.audio.devices import AudioBackend


class StuckStream:
    def __init__(self) -> None:
        self.release = threading.Event()
        self.closed = False

    def close(self) -> None:
        self.release.wait(30)
        self.closed = True


def test_a_close_that_hangs_is_left_behind_and_the_backend_goes_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(devices, "CLOSE_WAIT_S", 0.2)
    backend = AudioBackend()
    backend._open_streams = 1
    stuck = StuckStream()
    started = time.monotonic()
    backend.close_stream(cast(Any, stuck))
    assert time.monotonic() - started < 2, "the caller waited for the stuck close"
    got = threading.Event()

    def use_the_lock() -> None:
        with backend.lock:
            got.set()

    threading.Thread(target=use_the_lock, daemon=True).start()
    assert got.wait(2), "the next caller is held by the stuck close"
    assert backend.open_streams == 1, "a close in progress still counts: PortAudio is not re-initialised"
    stuck.release.set()
    deadline = time.monotonic() + 5
    while backend.open_streams and time.monotonic() < deadline:
        time.sleep(0.01)
    assert stuck.closed and backend.open_streams == 0


def test_a_close_that_returns_is_waited_for() -> None:
    backend = AudioBackend()
    backend._open_streams = 1
    quick = StuckStream()
    quick.release.set()
    lock = backend.lock
    backend.close_stream(cast(Any, quick))
    assert quick.closed and backend.open_streams == 0 and backend.lock is lock

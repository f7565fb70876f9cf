"""The daemon under load: many clients during a turn all answered; repeated rounds leak nothing.

A short form of ``benchmarks/reliability.py`` (which prints the same figures over 100 rounds). The turn
is real: TTS from a loopback endpoint, playback on the virtual speaker, STT of a real upload.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from voicemoded.testing.daemon import DaemonHandle, ProcessStats, speech_daemon
from voicemoded.testing.endpoint import SpeechEndpoint
from voicemoded.testing.load import CALLS_EACH, CLIENTS, concurrent_status_during_turn, percentile, round_trip

pytestmark = pytest.mark.audio

FD_GROWTH = 4
THREAD_GROWTH = 3
RSS_GROWTH = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[DaemonHandle, SpeechEndpoint]]:
    yield from speech_daemon()


def test_fifty_clients_during_a_turn_are_all_answered(loaded: tuple[DaemonHandle, SpeechEndpoint]) -> None:
    daemon, endpoint = loaded
    endpoint.set_tone(3.0)  # long enough that every concurrent call below lands while it plays
    latencies, failures, overlapped = concurrent_status_during_turn(daemon)
    print(
        f"\n{CLIENTS} clients x {CALLS_EACH} calls during a turn: {len(latencies)} answered, "
        f"p50 {percentile(latencies, 0.5):.1f} ms, p99 {percentile(latencies, 0.99):.1f} ms"
    )
    assert not failures, failures[:5]
    assert len(latencies) == CLIENTS * CALLS_EACH
    assert overlapped, "the calls did not overlap the turn (it ended before they did)"


def test_repeated_rounds_do_not_grow_fds_threads_or_memory(
    loaded: tuple[DaemonHandle, SpeechEndpoint],
) -> None:
    daemon, endpoint = loaded
    from voicemoded.testing.sounds import wav

    audio = wav(16_000, 1, 2, 16_000)
    endpoint.set_tone(0.2)
    seen: dict[int, ProcessStats] = {}
    with daemon.client() as client:
        for number in range(1, 21):
            round_trip(client, audio)
            if number in (5, 20):
                seen[number] = daemon.stats()
    early, late = seen[5], seen[20]
    print(
        f"\nafter 5 rounds: {early.rss / 2**20:.1f} MiB, {early.threads} threads, {early.fds} fds; "
        f"after 20: {late.rss / 2**20:.1f} MiB, {late.threads} threads, {late.fds} fds"
    )
    assert late.fds - early.fds <= FD_GROWTH
    assert late.threads - early.threads <= THREAD_GROWTH
    assert late.rss - early.rss <= RSS_GROWTH
    assert any(r.startswith("POST /v1/audio/speech") for r in endpoint.requests)

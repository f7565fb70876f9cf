"""The daemon under load: many clients during a turn all answered; repeated rounds leak nothing.

A short form of ``benchmarks/reliability.py`` (which prints the same figures over 100 rounds). The turn
is real: TTS from a loopback endpoint, playback on the virtual speaker, STT of a real upload.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import grpc
import pytest

from tests.daemon_harness import DaemonHandle, ProcessStats, SpeechEndpoint, speech_daemon
from voicemoded.api.client import Client
from voicemoded.api.v1 import conversation_pb2, daemon_pb2, providers_pb2

pytestmark = pytest.mark.audio

CLIENTS = 50
CALLS_EACH = 4
FD_GROWTH = 4
THREAD_GROWTH = 3
RSS_GROWTH = 32 * 1024 * 1024


@pytest.fixture(scope="module")
def loaded() -> Iterator[tuple[DaemonHandle, SpeechEndpoint]]:
    yield from speech_daemon()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def speak(client: Client, text: str = "Hello there.") -> conversation_pb2.ConverseRequest:
    return conversation_pb2.ConverseRequest(message=text, wait_for_response=False, chime_enabled=False)


def concurrent_status_during_turn(daemon: DaemonHandle) -> tuple[list[float], list[str], bool]:
    """50 clients, each on its own connection, call GetStatus/GetConfig while a Speak turn plays."""
    speaking = threading.Event()
    turn_errors: list[str] = []

    def turn() -> None:
        with daemon.client() as client:
            try:
                for event in client.conversation.Speak(speak(client), timeout=60):
                    if event.kind == conversation_pb2.ConverseEvent.FIRST_AUDIO:
                        speaking.set()
            except grpc.RpcError as exc:
                turn_errors.append(f"{exc.code().name}: {exc.details()}")
            finally:
                speaking.set()

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(CLIENTS)

    def caller(index: int) -> None:
        with daemon.client() as client:
            start.wait(30)
            for call in range(CALLS_EACH):
                t0 = time.perf_counter()
                try:
                    if (index + call) % 2:
                        client.daemon.GetConfig(daemon_pb2.GetConfigRequest(), timeout=20)
                    else:
                        client.daemon.GetStatus(daemon_pb2.GetStatusRequest(), timeout=20)
                except grpc.RpcError as exc:
                    with lock:
                        failures.append(f"{exc.code().name}: {exc.details()}")
                    continue
                with lock:
                    latencies.append((time.perf_counter() - t0) * 1000)

    turn_thread = threading.Thread(target=turn)
    turn_thread.start()
    assert speaking.wait(30), "the turn never started speaking"
    playing_during = not turn_errors
    callers = [threading.Thread(target=caller, args=(i,)) for i in range(CLIENTS)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(60)
    still_playing = turn_thread.is_alive()
    turn_thread.join(60)
    assert not turn_errors, turn_errors
    return latencies, failures, playing_during and still_playing


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


def round_trip(client: Client, wav: bytes) -> None:
    """One Speak turn and one Transcribe of real audio: every stage of the daemon once."""
    for _ in client.conversation.Speak(speak(client), timeout=60):
        pass
    answer = client.providers.Transcribe(
        providers_pb2.TranscribeRequest(audio=wav, filename="a.wav"), timeout=60
    )
    assert answer.text


def test_repeated_rounds_do_not_grow_fds_threads_or_memory(
    loaded: tuple[DaemonHandle, SpeechEndpoint],
) -> None:
    daemon, endpoint = loaded
    from tests.integration.daemon.test_fuzz_grpc import wav

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

"""Load on a running daemon: many clients calling during a turn, and whole rounds of every stage.

The daemon's load test holds what these produce to its limits; ``benchmarks/reliability.py`` prints
the same figures at a larger scale.
"""

from __future__ import annotations

import threading
import time

import grpc

from voicemoded.api.client import Client
from voicemoded.api.v1 import conversation_pb2, daemon_pb2, providers_pb2
from voicemoded.testing.daemon import DaemonHandle

CLIENTS = 50
"""Clients calling at once during a turn, each on its own connection."""
CALLS_EACH = 4
"""Calls each of them makes (GetStatus and GetConfig in turn)."""


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def speak_request(text: str = "Hello there.") -> conversation_pb2.ConverseRequest:
    """A spoken message that does not wait for an answer and plays no chime."""
    return conversation_pb2.ConverseRequest(message=text, wait_for_response=False, chime_enabled=False)


def concurrent_status_during_turn(
    daemon: DaemonHandle, clients: int = CLIENTS, calls_each: int = CALLS_EACH
) -> tuple[list[float], list[str], bool]:
    """``clients`` clients, each on its own connection, call GetStatus/GetConfig while a Speak turn plays.

    Returns the latencies (ms) of the calls answered, the errors of those that were not, and whether
    every call overlapped the turn (it was playing when they started and still when they ended).
    """
    speaking = threading.Event()
    turn_errors: list[str] = []

    def turn() -> None:
        with daemon.client() as client:
            try:
                for event in client.conversation.Speak(speak_request(), timeout=60):
                    if event.kind == conversation_pb2.ConverseEvent.FIRST_AUDIO:
                        speaking.set()
            except grpc.RpcError as exc:
                turn_errors.append(f"{exc.code().name}: {exc.details()}")
            finally:
                speaking.set()

    latencies: list[float] = []
    failures: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(clients)

    def caller(index: int) -> None:
        with daemon.client() as client:
            start.wait(30)
            for call in range(calls_each):
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
    callers = [threading.Thread(target=caller, args=(i,)) for i in range(clients)]
    for thread in callers:
        thread.start()
    for thread in callers:
        thread.join(60)
    still_playing = turn_thread.is_alive()
    turn_thread.join(60)
    assert not turn_errors, turn_errors
    return latencies, failures, playing_during and still_playing


def round_trip(client: Client, wav: bytes) -> None:
    """One Speak turn and one Transcribe of real audio: every stage of the daemon once."""
    for _ in client.conversation.Speak(speak_request(), timeout=60):
        pass
    answer = client.providers.Transcribe(
        providers_pb2.TranscribeRequest(audio=wav, filename="a.wav"), timeout=60
    )
    assert answer.text

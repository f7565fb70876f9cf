"""Reliability figures: the peer-uid gate's cost, clients during a turn, leaks over many rounds, fuzzing.

Starts a private daemon on a virtual audio rig whose STT/TTS endpoint is a loopback server answering at
once (voicemoded/testing/endpoint.py), so each round runs every daemon stage without model cost.
Prints:
  GetStatus p50/p99 through the public socket (uid-checked, spliced) and on grpc's private socket
  N clients x 4 calls (GetStatus/GetConfig) during a Speak turn: answered, p50/p99
  RSS, threads and open fds of the daemon after 10 and after --rounds Speak+Transcribe rounds
  with --fuzz N: N generated requests per gRPC method, the statuses seen, and any INTERNAL/UNKNOWN

Run: .venv/bin/python benchmarks/reliability.py [--calls 3000] [--clients 50] [--rounds 100] [--fuzz 500]
"""

from __future__ import annotations

import argparse
import collections
import sys
import time
from pathlib import Path

from google.protobuf.descriptor import MethodDescriptor

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicemoded.api.client import Client
from voicemoded.api.v1 import daemon_pb2
from voicemoded.server import private_socket
from voicemoded.testing import fuzz, load
from voicemoded.testing.daemon import DaemonHandle, speech_daemon
from voicemoded.testing.endpoint import SpeechEndpoint
from voicemoded.testing.sounds import wav


def status_latency(socket: Path, calls: int) -> tuple[float, float]:
    with Client(socket, client_name="bench") as client:
        request = daemon_pb2.GetStatusRequest()
        for _ in range(50):
            client.daemon.GetStatus(request)
        times = []
        for _ in range(calls):
            t0 = time.perf_counter()
            client.daemon.GetStatus(request)
            times.append((time.perf_counter() - t0) * 1000)
    return load.percentile(times, 0.5), load.percentile(times, 0.99)


def gate_cost(daemon: DaemonHandle, calls: int) -> None:
    for label, socket in (("public socket (uid checked)", daemon.socket), ("grpc's own socket", None)):
        p50, p99 = status_latency(socket or private_socket(daemon.socket), calls)
        print(f"GetStatus over {calls} calls, {label}: p50 {p50:.3f} ms, p99 {p99:.3f} ms")


def clients_during_turn(daemon: DaemonHandle, endpoint: SpeechEndpoint, clients: int) -> None:
    endpoint.set_tone(3.0)
    latencies, failures, overlapped = load.concurrent_status_during_turn(daemon, clients)
    print(
        f"{clients} clients x {load.CALLS_EACH} calls during a turn: {len(latencies)} of "
        f"{clients * load.CALLS_EACH} answered, {len(failures)} failed, p50 "
        f"{load.percentile(latencies, 0.5):.1f} ms, p99 {load.percentile(latencies, 0.99):.1f} ms"
        f"{'' if overlapped else ' (the turn ended before the calls did)'}"
    )


def rounds(daemon: DaemonHandle, endpoint: SpeechEndpoint, count: int) -> None:
    endpoint.set_tone(0.2)
    audio = wav(16_000, 1, 2, 16_000)
    with daemon.client() as client:
        for number in range(1, count + 1):
            load.round_trip(client, audio)
            if number in (10, count):
                s = daemon.stats()
                print(
                    f"after {number} Speak+Transcribe rounds: RSS {s.rss / 2**20:.1f} MiB, "
                    f"{s.threads} threads, {s.fds} open fds"
                )


def fuzz_method(
    target: fuzz.Target, method: MethodDescriptor, examples: int
) -> tuple[dict[str, int], list[str]]:
    """``examples`` generated requests to one method: the statuses seen and the findings."""
    from hypothesis import HealthCheck, Phase, given, settings

    codes: collections.Counter[str] = collections.Counter()
    bugs: list[str] = []

    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        phases=(Phase.generate,),
        suppress_health_check=list(HealthCheck),
    )
    @given(fuzz.request_strategy(method, target.box))
    def run(request: object) -> None:
        outcome = fuzz.call(target.channel, method, request)
        codes[outcome.code.name] += 1
        if outcome.is_bug():
            bugs.append(f"{outcome.code.name}: {outcome.details[:200]} <- {fuzz.describe(request, 300)}")
        if not target.alive():
            bugs.append(f"daemon died <- {fuzz.describe(request, 300)}")
            target.restart()

    run()
    return dict(codes), bugs


def fuzz_all(examples: int) -> None:
    for target in fuzz.fuzz_target():
        for name, method in fuzz.METHODS.items():
            if method.name == "Shutdown":
                continue  # tests/integration/daemon/test_fuzz_grpc.py fuzzes it on daemons of its own
            t0 = time.monotonic()
            codes, bugs = fuzz_method(target, method, examples)
            print(f"fuzz {name}: {sum(codes.values())} calls in {time.monotonic() - t0:.0f} s {codes}")
            for bug in sorted(set(bugs))[:5]:
                print(f"    FINDING {bug}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=100)
    parser.add_argument("--fuzz", type=int, default=0, help="generated requests per gRPC method (0: none)")
    args = parser.parse_args()

    for daemon, endpoint in speech_daemon():
        gate_cost(daemon, args.calls)
        clients_during_turn(daemon, endpoint, args.clients)
        rounds(daemon, endpoint, args.rounds)
    if args.fuzz:
        fuzz_all(args.fuzz)


if __name__ == "__main__":
    main()

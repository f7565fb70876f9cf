"""Foundation figures: GetStatus round trip, `voicemodectl status` as a process, idle daemon RSS and CPU.

Starts a private daemon on a temp socket (no services autostarted) and prints:
  GetStatus p50/p99 over N calls (target p50 <= 1 ms)
  voicemodectl status, median of 10 runs (target <= 150 ms)
  idle resident memory and CPU over the idle window (targets <= 60 MiB, < 0.5 %)

Run: .venv/bin/python benchmarks/daemon_api.py [--calls 2000] [--idle 60]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from voicemoded.api.v1 import daemon_pb2
from voicemoded.testing.daemon import daemon_handle


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--idle", type=float, default=60.0)
    args = parser.parse_args()

    for handle in daemon_handle():
        handle.start()
        assert handle.process is not None
        with handle.client() as client:
            request = daemon_pb2.GetStatusRequest()
            for _ in range(50):  # warm the channel
                client.daemon.GetStatus(request)
            times = []
            for _ in range(args.calls):
                t0 = time.perf_counter()
                client.daemon.GetStatus(request)
                times.append((time.perf_counter() - t0) * 1000)
        print(
            f"GetStatus round trip over {args.calls} calls: p50 {percentile(times, 0.5):.3f} ms, "
            f"p99 {percentile(times, 0.99):.3f} ms (target p50 <= 1 ms)"
        )

        runs = []
        for _ in range(10):
            t0 = time.perf_counter()
            result = handle.ctl("status")
            runs.append((time.perf_counter() - t0) * 1000)
            assert result.returncode == 0, result.stderr
        bare = []
        for _ in range(10):
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-c", "pass"], check=True)
            bare.append((time.perf_counter() - t0) * 1000)
        print(
            f"voicemodectl status (whole process): median {statistics.median(runs):.0f} ms of 10 "
            f"(bare python start here: {statistics.median(bare):.0f} ms; target <= 150 ms)"
        )

        proc = psutil.Process(handle.process.pid)
        time.sleep(1.0)
        cpu_before = proc.cpu_times()
        t0 = time.monotonic()
        time.sleep(args.idle)
        cpu_after = proc.cpu_times()
        elapsed = time.monotonic() - t0
        used = (cpu_after.user - cpu_before.user) + (cpu_after.system - cpu_before.system)
        rss = proc.memory_info().rss / (1024 * 1024)
        print(
            f"daemon idle: resident {rss:.1f} MiB (target <= 60 MiB), CPU {100 * used / elapsed:.2f} % over "
            f"{elapsed:.0f} s (target < 0.5 %)"
        )


if __name__ == "__main__":
    main()

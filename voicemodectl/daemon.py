"""voicemodectl daemon: start (detached, wait until it answers), stop, restart."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from voicemodectl import output, service_manager
from voicemoded.api import starter
from voicemoded.api.client import Client, ClientError, DaemonNotRunning, daemon_pid

START_TIMEOUT = 20.0
STOP_TIMEOUT = 15.0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("daemon", help="start, stop or restart voicemoded")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    start = verbs.add_parser("start", help="start voicemoded in the background and wait until it answers")
    start.add_argument("--timeout", type=float, default=START_TIMEOUT, help="seconds to wait (default 20)")
    start.set_defaults(func=start_cmd, needs_daemon=False)
    stop = verbs.add_parser("stop", help="stop voicemoded gracefully")
    stop.add_argument("--timeout", type=float, default=STOP_TIMEOUT, help="seconds to wait (default 15)")
    stop.set_defaults(func=stop_cmd, needs_daemon=False)
    restart = verbs.add_parser("restart", help="stop, then start")
    restart.add_argument("--timeout", type=float, default=START_TIMEOUT)
    restart.set_defaults(func=restart_cmd, needs_daemon=False)
    service_manager.register_manager(verbs)


def spawn(client: Client, timeout: float) -> tuple[int, bool]:
    """Start the daemon (through its systemd/launchd unit when installed, else detached); (pid, already)."""
    started = starter.start(client, timeout)
    return started.pid, started.already_running


def start_cmd(args: argparse.Namespace, client: Client) -> int:
    pid, already = spawn(client, args.timeout)
    if args.json:
        output.print_json({"pid": pid, "socket": str(client.socket), "already_running": already})
    elif already:
        print(f"voicemoded is already running (pid {pid}) on {client.socket}")
    else:
        print(f"voicemoded started (pid {pid}) on {client.socket}; log: {starter.log_file()}")
    return output.OK


def _wait_gone(socket: Path, pid: int, timeout: float) -> bool:
    """Gone once the daemon released its lock (its last act) or the process no longer exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if daemon_pid(socket) != pid:
            return True
        time.sleep(0.02)
    return False


def stop(client: Client, timeout: float) -> int | None:
    """Stop the daemon; returns the pid that was stopped, or None when none was running."""
    pid = daemon_pid(client.socket)
    if pid is None:
        return None
    try:
        client.shutdown(timeout=5.0)
    except DaemonNotRunning:
        return None
    if not _wait_gone(client.socket, pid, timeout):
        raise ClientError(
            "DEADLINE_EXCEEDED",
            f"voicemoded (pid {pid}) did not stop within {timeout:g} s",
            f"end it with `kill {pid}` (or `kill -9 {pid}`)",
        )
    return pid


def stop_cmd(args: argparse.Namespace, client: Client) -> int:
    pid = stop(client, args.timeout)
    if args.json:
        output.print_json({"stopped": pid is not None, "pid": pid or 0})
    elif pid is None:
        print("voicemoded was not running")
    else:
        print(f"voicemoded (pid {pid}) stopped")
    return output.OK


def restart_cmd(args: argparse.Namespace, client: Client) -> int:
    stop(client, STOP_TIMEOUT)
    client.close()
    pid, _ = spawn(client, args.timeout)
    if args.json:
        output.print_json({"pid": pid, "socket": str(client.socket)})
    else:
        print(f"voicemoded restarted (pid {pid}) on {client.socket}")
    return output.OK

"""voicemodectl status: is the daemon there, what it runs, and what is wrong."""

from __future__ import annotations

import argparse

from voicemodectl import output
from voicemoded.api.client import Client

_STATE = {0: "unknown", 1: "ok", 2: "degraded", 3: "down", 4: "disabled"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "status", help="daemon status, configuration sources and errors, subsystem health"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, client: Client) -> int:
    status = client.status()
    if args.json:
        output.print_json(status)
        return output.OK
    manager = f" under {status.manager}" if status.manager else ""
    print(
        f"voicemoded {status.version}: running{manager}, pid {status.pid}, up {output.human_seconds(status.uptime_seconds)}"
    )
    print(f"socket:   {status.socket}")
    print(f"state:    {status.base_dir}")
    print(f"memory:   {output.human_bytes(status.resident_bytes)}")
    print("\nconfiguration (lowest to highest precedence):")
    rows = [
        (s.layer, s.path or "-", ("loaded" if s.loaded else "absent") if s.path else "", s.keys)
        for s in status.config_sources
    ]
    print(output.table(rows, ["LAYER", "FILE", "", "KEYS"]))
    if status.config_errors:
        print("\nconfiguration errors (the last good configuration is in force):")
        for e in status.config_errors:
            print(f"  {e.key or 'line'} at {e.file}:{e.line}: {e.reason}")
    print()
    print(
        output.table(
            [(h.name, _STATE.get(h.state, "?"), h.detail) for h in status.subsystems],
            ["SUBSYSTEM", "HEALTH", "DETAIL"],
        )
    )
    return output.OK

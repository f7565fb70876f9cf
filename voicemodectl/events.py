"""voicemodectl events: follow the daemon's events as they happen."""

from __future__ import annotations

import argparse
import json
import time

from voicemodectl import output
from voicemoded.api.client import Client


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("events", help="follow daemon events (Ctrl-C to stop)")
    parser.add_argument("--replay", type=int, default=0, metavar="N", help="show the last N events first")
    parser.add_argument("--subsystem", action="append", default=[], help="only this subsystem (repeatable)")
    parser.add_argument("--count", type=int, default=0, metavar="N", help="exit after N events")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, client: Client) -> int:
    events = client.watch_events(replay=args.replay, subsystems=args.subsystem)
    for seen, event in enumerate(events, start=1):
        if args.json:
            print(json.dumps(output.to_dict(event)), flush=True)
        else:
            when = time.strftime("%H:%M:%S", time.localtime(event.time.seconds))
            fields = " ".join(f"{k}={v}" for k, v in event.fields.items())
            print(
                f"{when} {event.level:7} {event.subsystem:12} {event.kind:22} {event.message} {fields}".rstrip(),
                flush=True,
            )
        if args.count and seen >= args.count:
            break
    return output.OK

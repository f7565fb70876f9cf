"""voicemodectl status: is the daemon there, what it runs (plugins and webhooks too), and what is wrong."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterable
from typing import TYPE_CHECKING

from voicemodectl import output
from voicemoded.api.client import Client

if TYPE_CHECKING:
    from voicemoded.api.v1 import daemon_pb2

_STATE = {0: "unknown", 1: "ok", 2: "degraded", 3: "down", 4: "disabled"}
_PLUGIN_STATE = {0: "unknown", 1: "loaded", 2: "failed", 3: "disabled"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "status", help="daemon status, configuration sources and errors, subsystem health, plugins, webhooks"
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
    if status.plugins:
        print("\nplugins (VOICEMODE_PLUGINS picks which load):")
        print(plugins_table(status.plugins))
    if status.webhooks:
        print("\nwebhooks:")
        for hook in status.webhooks:
            print(f"  {webhook_line(hook, time.time())}")
    return output.OK


def plugins_table(plugins: Iterable[daemon_pb2.PluginInfo]) -> str:
    rows = [
        (
            p.name,
            p.group,
            f"{p.distribution} {p.version}".strip() or "-",
            p.provides or "-",
            _PLUGIN_STATE.get(p.state, "?"),
            p.error,
        )
        for p in plugins
    ]
    return output.table(rows, ["NAME", "GROUP", "DISTRIBUTION", "PROVIDES", "STATE", "ERROR"])


def webhook_line(hook: daemon_pb2.WebhookInfo, now: float) -> str:
    """One URL's deliveries: counts, whether they are signed, and the last failure or success."""
    parts = [
        f"{hook.delivered} delivered",
        f"{hook.failed} failed",
        f"{hook.dropped} dropped",
        f"{hook.retries} retries",
        f"{hook.queue_length} queued",
        "signed" if hook.signed else "unsigned",
    ]
    line = f"{hook.url}  ({', '.join(hook.events) or 'no events'}): {', '.join(parts)}"
    if hook.HasField("last_delivered_at"):
        ago = max(0.0, now - hook.last_delivered_at.ToNanoseconds() / 1e9)
        line += f"; last delivered {output.human_seconds(ago)} ago"
    if hook.last_error:
        line += f"; last error: {hook.last_error}"
    return line

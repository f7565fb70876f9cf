"""voicemodectl service: the supervised local speech servers (whisper, kokoro, piper, livekit)."""

from __future__ import annotations

import argparse
import json
import sys

from voicemodectl import output
from voicemoded.api.client import Client
from voicemoded.api.v1 import services_pb2

STATE_NAMES = {v.number: v.name.lower() for v in services_pb2.ServiceState.DESCRIPTOR.values}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("service", help="local speech servers: list, start, stop, logs, install")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", help="every service, its state and figures").set_defaults(func=list_cmd)
    for verb, helptext in (
        ("status", "one service in detail"),
        ("start", "start a service and wait until it is ready"),
        ("stop", "stop a service"),
        ("restart", "restart a service"),
        ("enable", "start it with the daemon (persisted)"),
        ("disable", "do not start it with the daemon (persisted)"),
        ("install", "install what the service's backend needs"),
    ):
        verb_parser = verbs.add_parser(verb, help=helptext)
        verb_parser.add_argument("name")
        verb_parser.set_defaults(func=globals()[f"{verb}_cmd"])
    verbs.add_parser("reopen-logs", help="reopen every log file (for logrotate)").set_defaults(
        func=reopen_cmd
    )
    logs = verbs.add_parser("logs", help="the service's log; -f to follow")
    logs.add_argument("name")
    logs.add_argument("-n", "--lines", type=int, default=50)
    logs.add_argument("-f", "--follow", action="store_true")
    logs.set_defaults(func=logs_cmd)


def state_name(info: services_pb2.ServiceInfo) -> str:
    return STATE_NAMES.get(info.state, "?")


def _row(s: services_pb2.ServiceInfo) -> tuple[object, ...]:
    running = s.state == services_pb2.RUNNING
    return (
        s.name,
        state_name(s) + ("" if s.installed else " (not installed)"),
        s.backend,
        f"{s.host}:{s.port}" if s.port else "-",
        s.pid or "-",
        output.human_seconds(s.uptime_seconds) if running else "-",
        s.restarts,
        f"{s.cpu_percent:.1f}%" if running else "-",
        output.human_bytes(s.resident_bytes) if s.resident_bytes else "-",
        "yes" if s.autostart else "no",
        s.reason or s.last_exit,
    )


HEADERS = [
    "NAME",
    "STATE",
    "BACKEND",
    "ADDRESS",
    "PID",
    "UPTIME",
    "RESTARTS",
    "CPU",
    "MEMORY",
    "AUTOSTART",
    "NOTE",
]


def print_service(args: argparse.Namespace, info: services_pb2.ServiceInfo) -> int:
    if args.json:
        output.print_json(info)
    else:
        print(output.table([_row(info)], HEADERS))
        if info.state == services_pb2.FATAL and info.reason:
            print(
                f"\n{info.name} gave up: {info.reason}\n  `voicemodectl service logs {info.name}` shows why"
            )
    return output.OK


def list_cmd(args: argparse.Namespace, client: Client) -> int:
    response = client.call(client.supervisor.ListServices, services_pb2.ListServicesRequest())
    if args.json:
        output.print_json(response)
    else:
        print(output.table([_row(s) for s in response.services], HEADERS))
    return output.OK


def status_cmd(args: argparse.Namespace, client: Client) -> int:
    info = client.call(client.supervisor.GetService, services_pb2.ServiceRequest(name=args.name))
    if args.json:
        output.print_json(info)
        return output.OK
    fields = [
        ("state", state_name(info) + (f" ({info.reason})" if info.reason else "")),
        ("backend", info.backend + ("" if info.installed else f" — not installed: {info.install_hint}")),
        ("command", " ".join(info.command)),
        ("url", info.url or "-"),
        ("pid", info.pid or "-"),
        ("uptime", output.human_seconds(info.uptime_seconds) if info.pid else "-"),
        ("restarts", info.restarts),
        ("last exit", info.last_exit or "-"),
        ("cpu", f"{info.cpu_percent:.1f}%"),
        (
            "memory",
            output.human_bytes(info.resident_bytes)
            + (f" (limit {output.human_bytes(info.memory_limit_bytes)})" if info.memory_limit_bytes else ""),
        ),
        ("autostart", "yes" if info.autostart else "no"),
        ("log", info.log_path),
    ]
    for key, value in fields:
        print(f"{key + ':':11}{value}")
    return output.OK


def _action(args: argparse.Namespace, client: Client, method: object, timeout: float = 180.0) -> int:
    request = services_pb2.ServiceRequest(name=args.name, caller=client.caller())
    return print_service(args, client.call(method, request, timeout=timeout))  # type: ignore[arg-type]


def start_cmd(args: argparse.Namespace, client: Client) -> int:
    return _action(args, client, client.supervisor.StartService)


def stop_cmd(args: argparse.Namespace, client: Client) -> int:
    return _action(args, client, client.supervisor.StopService)


def restart_cmd(args: argparse.Namespace, client: Client) -> int:
    return _action(args, client, client.supervisor.RestartService)


def _autostart(args: argparse.Namespace, client: Client, enabled: bool) -> int:
    request = services_pb2.SetAutostartRequest(name=args.name, autostart=enabled)
    return print_service(args, client.call(client.supervisor.SetAutostart, request))


def enable_cmd(args: argparse.Namespace, client: Client) -> int:
    return _autostart(args, client, True)


def disable_cmd(args: argparse.Namespace, client: Client) -> int:
    return _autostart(args, client, False)


def logs_cmd(args: argparse.Namespace, client: Client) -> int:
    request = services_pb2.TailLogsRequest(name=args.name, lines=args.lines, follow=args.follow)
    for line in client.stream(client.supervisor.TailLogs, request):
        print(
            json.dumps({"service": line.service, "line": line.line}) if args.json else line.line, flush=True
        )
    return output.OK


def reopen_cmd(args: argparse.Namespace, client: Client) -> int:
    response = client.call(client.supervisor.ReopenLogs, services_pb2.ReopenLogsRequest())
    if args.json:
        output.print_json(response)
    else:
        print("reopened " + ", ".join(response.files))
    return output.OK


def print_progress(args: argparse.Namespace, stream: object) -> int:
    """Shared by service install and models install: progress lines as they come, then the outcome."""
    ok = False
    for progress in stream:  # type: ignore[attr-defined]
        if args.json:
            print(json.dumps(output.to_dict(progress)), flush=True)
        elif progress.line:
            print(progress.line, flush=True)
        if progress.done:
            ok = progress.ok
    if not ok and not args.json:
        print("voicemodectl: installation failed (see the lines above)", file=sys.stderr)
    return output.OK if ok else output.UNAVAILABLE


def install_cmd(args: argparse.Namespace, client: Client) -> int:
    request = services_pb2.InstallServiceRequest(name=args.name, caller=client.caller())
    return print_progress(args, client.stream(client.supervisor.InstallService, request, timeout=1800))

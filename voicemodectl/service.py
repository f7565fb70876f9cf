"""voicemodectl service: the supervised local speech servers (whisper, kokoro, piper, livekit)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Sequence

from voicemodectl import output
from voicemoded.api.client import Client, ClientError, DaemonNotRunning
from voicemoded.api.v1 import services_pb2

STATE_NAMES = {v.number: v.name.lower() for v in services_pb2.ServiceState.DESCRIPTOR.values}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("service", help="local speech servers: list, start, stop, logs, install")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    verbs.add_parser("list", help="every service, its state and figures").set_defaults(func=list_cmd)
    for verb, helptext in (
        ("status", "one service in detail"),
        ("install", "install what the service's backend needs"),
    ):
        verb_parser = verbs.add_parser(verb, help=helptext)
        verb_parser.add_argument("name")
        verb_parser.set_defaults(func=globals()[f"{verb}_cmd"])
    for verb, helptext in (
        ("start", "start services and wait until each is ready"),
        ("stop", "stop services"),
        ("restart", "restart services"),
        ("enable", "start them with the daemon (persisted)"),
        ("disable", "do not start them with the daemon (persisted)"),
    ):
        verb_parser = verbs.add_parser(
            verb, help=helptext, description=f"{helptext[0].upper()}{helptext[1:]}, {MANY_NAMES}"
        )
        verb_parser.add_argument("names", nargs="+", metavar="name")
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


MANY_NAMES = (
    "one after the other in the order given; each outcome is reported, and the exit code is that of the "
    "worst (0 when every one succeeded)."
)


def print_services(args: argparse.Namespace, infos: Sequence[services_pb2.ServiceInfo]) -> int:
    if args.json:
        output.print_json(infos[0])
        return output.OK
    print(output.table([_row(info) for info in infos], HEADERS))
    for info in infos:
        if info.state == services_pb2.FATAL and info.reason:
            print(
                f"\n{info.name} gave up: {info.reason}\n  `voicemodectl service logs {info.name}` shows why"
            )
    return output.OK


def each_named(args: argparse.Namespace, act: Callable[[str], services_pb2.ServiceInfo]) -> int:
    """``act`` on every name in order. One name behaves as it always did (its error is the command's);
    with several, a failure is reported and the others still go ahead, and the worst exit code wins.
    ``--json`` prints one document: ``{"services": [...]}``, an error entry as ``{"name", "error"}``."""
    if len(args.names) == 1:
        return print_services(args, [act(args.names[0])])
    done: list[services_pb2.ServiceInfo] = []
    outcomes: list[dict[str, object]] = []
    worst = output.OK
    for name in args.names:
        try:
            info = act(name)
        except ClientError as exc:
            if isinstance(exc, DaemonNotRunning) and not outcomes:
                raise  # the same for every name: said once, by main
            worst = max(worst, output.exit_code(exc))
            if args.json:
                outcomes.append({"name": name, **output.error_payload(exc)})
            else:
                output.print_error(exc, as_json=False)
            if isinstance(exc, DaemonNotRunning):
                break  # the daemon went away: the names after this one cannot be acted on either
            continue
        done.append(info)
        outcomes.append(output.to_dict(info))
    if args.json:
        output.print_json({"services": outcomes})
    elif done:
        print_services(args, done)
    return worst


def list_cmd(args: argparse.Namespace, client: Client) -> int:
    response = client.list_services()
    if args.json:
        output.print_json(response)
    else:
        print(output.table([_row(s) for s in response.services], HEADERS))
    return output.OK


def status_cmd(args: argparse.Namespace, client: Client) -> int:
    info = client.get_service(args.name)
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


def start_cmd(args: argparse.Namespace, client: Client) -> int:
    return each_named(args, client.start_service)


def stop_cmd(args: argparse.Namespace, client: Client) -> int:
    return each_named(args, client.stop_service)


def restart_cmd(args: argparse.Namespace, client: Client) -> int:
    return each_named(args, client.restart_service)


def enable_cmd(args: argparse.Namespace, client: Client) -> int:
    return each_named(args, lambda name: client.set_autostart(name, True))


def disable_cmd(args: argparse.Namespace, client: Client) -> int:
    return each_named(args, lambda name: client.set_autostart(name, False))


def logs_cmd(args: argparse.Namespace, client: Client) -> int:
    for line in client.tail_logs(args.name, lines=args.lines, follow=args.follow):
        print(
            json.dumps({"service": line.service, "line": line.line}) if args.json else line.line, flush=True
        )
    return output.OK


def reopen_cmd(args: argparse.Namespace, client: Client) -> int:
    response = client.reopen_logs()
    if args.json:
        output.print_json(response)
    else:
        print("reopened " + ", ".join(response.files))
    return output.OK


def print_progress(args: argparse.Namespace, stream: Iterable[services_pb2.InstallProgress]) -> int:
    """Shared by service install and models install: progress lines as they come, then the outcome."""
    ok = False
    for progress in stream:
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
    return print_progress(args, client.install_service(args.name))

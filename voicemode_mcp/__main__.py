"""voicemode-mcp: what an MCP client launches (`claude mcp add voicemode -- voicemode-mcp`).

It holds no state: it finds (or starts) voicemoded, opens one MCP session stream on its socket, and
copies JSON-RPC between stdio and that stream. The MCP server itself runs in the daemon.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from voicemoded import __version__
from voicemoded.api import safe_env
from voicemoded.api.context import FORWARDED_PREFIXES

if TYPE_CHECKING:
    from voicemoded.api.client import ClientError

START_TIMEOUT = 20.0


class ArgumentError(Exception):
    """Bad arguments: answered over JSON-RPC too, since the person reads them in the MCP client."""


class Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise ArgumentError(message)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = Parser(
        prog="voicemode-mcp",
        description="MCP server for voice conversations over stdio. A thin tunnel to the voicemoded daemon, "
        "which it starts when none is running (through its systemd/launchd user unit when installed).",
    )
    parser.add_argument("--version", action="version", version=f"voicemode-mcp {__version__}")
    parser.add_argument(
        "--socket", type=Path, help="daemon socket (default: VOICEMODE_SOCKET or the standard one)"
    )
    parser.add_argument("--no-start", action="store_true", help="do not start the daemon when none answers")
    parser.add_argument(
        "--start-timeout",
        type=float,
        default=START_TIMEOUT,
        help="seconds to wait for a starting daemon (20)",
    )
    parser.add_argument(
        "--daemon-command",
        help="command that starts the daemon when none answers (default: the user unit, else "
        "`python -m voicemoded`), e.g. to run it in a container",
    )
    return parser.parse_args(argv)


def context_problems(argv: list[str]) -> list[str]:
    """Report the caller's context that is not valid UTF-8 and set it aside, so the tunnel still starts.

    A bad ``VOICEMODE_*`` override is dropped (the daemon's own value applies), a bad working directory
    means no project file; both are said on stderr, where MCP clients show a server's messages.
    """
    bad = safe_env.drop_bad_environment(os.environ, FORWARDED_PREFIXES)
    bad += safe_env.bad_arguments(argv)
    cwd = safe_env.bad_cwd()
    if cwd is not None:
        bad.append(cwd)
    return [b.message() for b in bad]


def unusable(socket: Path, given: bool) -> ClientError | None:
    """The tunnel cannot work when the daemon's socket path is not valid UTF-8 (gRPC names it as text)."""
    from voicemoded.api.client import ClientError

    if safe_env.is_utf8(str(socket)):
        return None
    sources = [k for k in safe_env.LOCATION_KEYS if not safe_env.is_utf8(os.environ.get(k, ""))]
    name = "--socket" if given else (sources[0] if sources else "the socket path")
    return ClientError(
        "INVALID_ARGUMENT",
        f"{name} is not valid UTF-8 ('{safe_env.shown(str(socket))}'), so the daemon cannot be reached",
        "give voicemode-mcp a UTF-8 socket path (`--socket` or VOICEMODE_SOCKET) in the MCP client's "
        "configuration",
        {"field": name},
    )


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    try:
        args = parse_args(argv)
    except ArgumentError as exc:
        from voicemode_mcp.tunnel import Wire, answer_with_error, start_reader
        from voicemoded.api.client import ClientError

        wire = Wire()
        return answer_with_error(
            wire,
            start_reader(wire),
            ClientError(
                "INVALID_ARGUMENT",
                f"bad arguments: {exc}",
                "fix the voicemode-mcp command in the MCP client's configuration (`voicemode-mcp --help`)",
            ),
        )
    from voicemode_mcp.tunnel import Tunnel, Wire, answer_with_error, start_reader, warn

    wire = Wire()
    inbox = start_reader(wire)  # read stdin from the start: a failed start still answers `initialize`
    for problem in context_problems(argv):
        warn(problem)
    from voicemoded.api.client import Client, ClientError, DaemonNotRunning

    client = Client(args.socket, client_name="voicemode-mcp")
    blocker = unusable(client.socket, args.socket is not None)
    if blocker is not None:
        return answer_with_error(wire, inbox, blocker)
    try:
        try:
            if args.no_start:
                client.status(timeout=5.0)
            else:
                from voicemoded.api.starter import start

                command = shlex.split(args.daemon_command) if args.daemon_command else None
                started = start(client, args.start_timeout, command=command)
                if not started.already_running:
                    print(
                        f"voicemode-mcp: started voicemoded (pid {started.pid}, {started.how})",
                        file=sys.stderr,
                    )
        except DaemonNotRunning as exc:
            return answer_with_error(wire, inbox, exc)
        except ClientError as exc:
            return answer_with_error(wire, inbox, exc)
        return Tunnel(client, wire, inbox).run()
    except KeyboardInterrupt:
        return 130
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())

"""voicemode-mcp: what an MCP client launches (`claude mcp add voicemode -- voicemode-mcp`).

It holds no state: it finds (or starts) voicemoded, opens one MCP session stream on its socket, and
copies JSON-RPC between stdio and that stream. The MCP server itself runs in the daemon.
"""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from voicemoded import __version__

START_TIMEOUT = 20.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
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


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from voicemode_mcp.tunnel import Tunnel, Wire, answer_with_error, start_reader

    wire = Wire()
    inbox = start_reader()  # read stdin from the start: a failed start still answers `initialize`
    from voicemoded.api.client import Client, ClientError, DaemonNotRunning

    client = Client(args.socket, client_name="voicemode-mcp")
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

"""voicemodectl entry point: one sub-command module per noun."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from voicemodectl import (
    completion,
    config,
    converse,
    daemon,
    devices,
    doctor,
    events,
    models,
    output,
    provider,
    room,
    service,
    speech,
    status,
    web,
)
from voicemoded import __version__
from voicemoded.api import safe_env
from voicemoded.api.context import FORWARDED_PREFIXES

if TYPE_CHECKING:
    import grpc

    from voicemoded.api.client import Client

NOUNS = (
    status,
    config,
    daemon,
    service,
    models,
    provider,
    speech,
    converse,
    devices,
    room,
    events,
    doctor,
    web,
)

JSON_HELP = "machine-readable output (before or after the command)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicemodectl",
        description="Control the voicemode daemon (voicemoded).",
        epilog=output.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"voicemodectl {__version__}")
    parser.add_argument("--socket", type=Path, help="daemon socket (default: $XDG_RUNTIME_DIR/voicemode/)")
    parser.add_argument("--json", action="store_true", help=JSON_HELP)
    sub = parser.add_subparsers(dest="noun", required=True, metavar="COMMAND")
    for noun in NOUNS:
        noun.register(sub)
    completion.register(sub, parser)
    for command in _commands(parser):
        # Given after the command as well: SUPPRESS leaves the value the top level set when it is not.
        command.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help=JSON_HELP)
    return parser


def _commands(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    """Every sub-command's parser below ``parser``, at every depth."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for child in action.choices.values():
                yield child
                yield from _commands(child)


def _actions(parser: argparse.ArgumentParser) -> Iterator[argparse.Action]:
    """Every option and positional of ``parser`` and of its sub-commands."""
    for command in (parser, *_commands(parser)):
        yield from (a for a in command._actions if not isinstance(a, argparse._SubParsersAction))


def _invalid_argument(parser: argparse.ArgumentParser, args: argparse.Namespace) -> str | None:
    """The first text argument that is not valid UTF-8, named as the person typed it. Paths
    (``--out``, a file to transcribe) may hold any bytes, as POSIX allows; text for the daemon may not."""
    names: dict[str, str] = {}
    for action in _actions(parser):
        names.setdefault(action.dest, max(action.option_strings, key=len, default="") or action.dest.upper())
    for dest, value in vars(args).items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not safe_env.is_utf8(item):
                return (
                    f"the argument {names.get(dest, dest)} is not valid UTF-8 text: '{safe_env.shown(item)}'"
                )
    return None


def _checked_client(socket: Path | None) -> Client:
    """The client, refusing at first use a socket path gRPC cannot take (its targets are text), so a
    command that never calls the daemon still works."""
    from voicemoded.api.client import Client, ClientError

    class CheckedClient(Client):
        @property
        def channel(self) -> grpc.Channel:
            if not safe_env.is_utf8(str(self.socket)):
                raise ClientError(
                    "INVALID_ARGUMENT",
                    f"the socket path {safe_env.shown(str(self.socket), 4096)} is not valid UTF-8 text",
                    "give --socket (or VOICEMODE_SOCKET) a path whose name is UTF-8",
                )
            channel: grpc.Channel = Client.channel.fget(self)  # type: ignore[attr-defined]
            return channel

    return CheckedClient(socket, client_name="voicemodectl")


def _context_problem() -> str | None:
    """Set aside the caller context that is not valid UTF-8, as voicemode-mcp does: a bad override is
    dropped with a warning (the daemon's value applies), a bad working folder means no project file.
    A bad variable that says where the daemon lives cannot be dropped: it is the error returned."""
    bad = safe_env.drop_bad_environment(os.environ, FORWARDED_PREFIXES)
    cwd = safe_env.bad_cwd()
    for item in [*bad, *([cwd] if cwd else [])]:
        if item.what in safe_env.LOCATION_KEYS:
            return item.message()
        print(f"voicemodectl: warning: {item.message()}", file=sys.stderr)
    return None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from voicemoded.api.client import ClientError

    problem = _invalid_argument(parser, args)
    if problem:
        print(f"voicemodectl: {problem}", file=sys.stderr)
        return output.USAGE
    problem = _context_problem()
    if problem:
        return output.print_error(ClientError("INVALID_ARGUMENT", problem), args.json)
    client = _checked_client(args.socket)
    try:
        return int(args.func(args, client))
    except ClientError as exc:
        return output.print_error(exc, args.json)
    except KeyboardInterrupt:
        return output.INTERRUPTED
    except BrokenPipeError:
        return output.OK
    finally:
        client.close()


if __name__ == "__main__":
    sys.exit(main())

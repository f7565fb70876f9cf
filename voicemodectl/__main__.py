"""voicemodectl entry point: one sub-command module per noun."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

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
    service,
    speech,
    status,
)
from voicemoded import __version__

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
    events,
    doctor,
    completion,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicemodectl",
        description="Control the voicemode daemon (voicemoded).",
        epilog=output.EXIT_CODES_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"voicemodectl {__version__}")
    parser.add_argument("--socket", type=Path, help="daemon socket (default: $XDG_RUNTIME_DIR/voicemode/)")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    sub = parser.add_subparsers(dest="noun", required=True, metavar="COMMAND")
    for noun in NOUNS:
        noun.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from voicemoded.api.client import Client, ClientError

    client = Client(args.socket, client_name="voicemodectl")
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

"""voicemode-web entry point: bind the port, then serve until stopped (SIGTERM or Ctrl-C)."""

from __future__ import annotations

import argparse
import os
import socket
import sys
from pathlib import Path

from voicemoded import __version__
from voicemoded.api import webtoken
from voicemoded.api.errors import VoicemodeError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8790


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="voicemode-web",
        description="The voicemode web page: dashboard, history and talking from the browser. "
        "`voicemodectl web url` prints its address with this install's token.",
    )
    parser.add_argument("--version", action="version", version=f"voicemode-web {__version__}")
    parser.add_argument(
        "--host",
        default=os.environ.get("VOICEMODE_WEB_HOST") or DEFAULT_HOST,
        help="address to bind (VOICEMODE_WEB_HOST; default 127.0.0.1: beyond loopback every request needs the token)",
    )
    parser.add_argument(
        "--port", type=int, default=None, help=f"port (VOICEMODE_WEB_PORT; default {DEFAULT_PORT})"
    )
    parser.add_argument("--socket", type=Path, help="daemon socket (default: where voicemodectl looks)")
    return parser


def port_of(args: argparse.Namespace) -> int:
    if args.port is not None:
        return int(args.port)
    text = os.environ.get("VOICEMODE_WEB_PORT", "").strip()
    return int(text) if text.isdigit() else DEFAULT_PORT


def bind(host: str, port: int) -> socket.socket:
    """The listening socket, made here so a port in use is one clear sentence, not a server's trace."""
    family = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0][0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
        sock.listen(128)
    except OSError:
        sock.close()
        raise
    return sock


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    port = port_of(args)
    if not 0 <= port <= 65535:
        print(f"voicemode-web: port {port} is out of range (0-65535)", file=sys.stderr)
        return 2
    try:
        token = webtoken.ensure_token(webtoken.token_path())
    except VoicemodeError as exc:
        print(f"voicemode-web: {exc.message}\n  {exc.hint}", file=sys.stderr)
        return 1
    try:
        listener = bind(args.host, port)
    except OSError as exc:
        print(f"voicemode-web: cannot listen on {args.host}:{port}: {exc.strerror or exc}", file=sys.stderr)
        print("  pick another port with --port (or VOICEMODE_WEB_PORT)", file=sys.stderr)
        return 1

    import uvicorn  # the server loads after the checks: --help and a refusal stay quick

    from voicemode_web.app import create_app
    from voicemoded.api.client import Client
    from voicemoded.api.loopback import is_loopback_address as is_loopback

    loopback = is_loopback(args.host)
    if not loopback:
        print(f"voicemode-web: bound to {args.host}: every request needs the token", file=sys.stderr)
    client = Client(args.socket, client_name="voicemode-web")
    app = create_app(client, token, loopback_only=loopback)
    bound = listener.getsockname()[1]
    shown = f"[{args.host}]" if ":" in args.host else args.host
    print(f"voicemode-web {__version__}: serving http://{shown}:{bound}/ (daemon socket {client.socket})",
          file=sys.stderr, flush=True)  # fmt: skip
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=2
    )
    try:
        uvicorn.Server(config).run(sockets=[listener])
    finally:
        client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""voicemodectl web url: the web door's address with this install's token, to open in a browser.

The token rides in the fragment (``#token=…``), which a browser never sends to any server; the page
moves it into its session and out of the address bar. The address is the door's own: its host and
port from the environment (as ``voicemode-web`` reads them), else from the daemon's configuration,
else the defaults. No daemon is needed: the token is a file of this install.
"""

from __future__ import annotations

import argparse
import os

from voicemodectl import output
from voicemoded.api import webtoken
from voicemoded.api.client import Client, ClientError
from voicemoded.api.errors import VoicemodeError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8790
KEYS = ("VOICEMODE_WEB_HOST", "VOICEMODE_WEB_PORT")
#: Bind addresses that mean "every interface": the browser on this machine opens loopback instead.
ANY = ("0.0.0.0", "::", "")


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("web", help="the web page (voicemode-web): its address with the token")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    url = verbs.add_parser("url", help="print the web page's address, with this install's token")
    url.set_defaults(func=run_url)


def where(client: Client) -> tuple[str, int]:
    """The door's host and port: this environment first, then the daemon's settings, then defaults."""
    found = {key: os.environ.get(key, "").strip() for key in KEYS}
    if not all(found.values()):
        try:
            configured = {v.key: v.value for v in client.get_config(list(KEYS)).values}
        except ClientError:
            configured = {}  # no daemon: the defaults are the door's too
        found = {key: found[key] or configured.get(key, "") for key in KEYS}
    host = found["VOICEMODE_WEB_HOST"] or DEFAULT_HOST
    port = found["VOICEMODE_WEB_PORT"]
    return host, int(port) if port.isdigit() else DEFAULT_PORT


def address(host: str, port: int) -> str:
    shown = DEFAULT_HOST if host in ANY else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"
    return f"http://{shown}:{port}/"


def run_url(args: argparse.Namespace, client: Client) -> int:
    path = webtoken.token_path()
    try:
        token = webtoken.ensure_token(path)
    except VoicemodeError as exc:
        raise ClientError.of(exc) from None
    host, port = where(client)
    url = f"{address(host, port)}#token={token}"
    if args.json:
        output.print_json({"url": url, "host": host, "port": port, "token_file": str(path)})
    else:
        print(url)
    return output.OK

"""voicemodectl models: STT models and TTS voices of the embedded engines."""

from __future__ import annotations

import argparse

from voicemodectl import output
from voicemodectl.service import print_progress
from voicemoded.api.client import Client
from voicemoded.api.v1 import services_pb2


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("models", help="STT models and TTS voices: list, install, remove, use")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    listing = verbs.add_parser("list", help="models and voices, installed or available")
    listing.add_argument("--kind", choices=["stt", "tts"], default="")
    listing.set_defaults(func=list_cmd)
    for verb in ("install", "remove", "use"):
        verb_parser = verbs.add_parser(verb, help=f"{verb} a model or voice")
        verb_parser.add_argument("name")
        verb_parser.add_argument("--kind", choices=["stt", "tts"], default="")
        verb_parser.set_defaults(func=globals()[f"{verb}_cmd"])


def list_cmd(args: argparse.Namespace, client: Client) -> int:
    response = client.list_models(args.kind)
    if args.json:
        output.print_json(response)
        return output.OK
    rows = [
        (
            m.kind,
            m.name,
            m.engine,
            m.language,
            m.gender,
            "yes" if m.installed else "no",
            "*" if m.in_use else "",
            m.source,
            m.description,
        )
        for m in response.models
    ]
    headers = ["KIND", "NAME", "ENGINE", "LANGUAGE", "GENDER", "INSTALLED", "IN USE", "SOURCE", "DESCRIPTION"]
    print(output.table(rows, headers))
    return output.OK


def install_cmd(args: argparse.Namespace, client: Client) -> int:
    return print_progress(args, client.install_model(args.name, args.kind))


def _one(args: argparse.Namespace, info: services_pb2.ModelInfo, verb: str) -> int:
    if args.json:
        output.print_json(info)
    else:
        print(f"{info.kind} {info.name} ({info.engine}): {verb}")
    return output.OK


def remove_cmd(args: argparse.Namespace, client: Client) -> int:
    return _one(args, client.remove_model(args.name, args.kind), "removed")


def use_cmd(args: argparse.Namespace, client: Client) -> int:
    info = client.use_model(args.name, args.kind)
    return _one(args, info, "in use (the engine restarts with it)")

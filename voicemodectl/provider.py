"""voicemodectl provider: the STT/TTS endpoints the daemon can use, with their health."""

from __future__ import annotations

import argparse

from voicemodectl import output
from voicemoded.api.client import Client


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("provider", help="STT/TTS endpoints: list with health, probe now")
    verbs = parser.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb, helptext in (
        ("list", "endpoints in priority order with health"),
        ("probe", "probe every endpoint now"),
    ):
        verb_parser = verbs.add_parser(verb, help=helptext)
        verb_parser.add_argument("--kind", choices=["stt", "tts"], default="")
        verb_parser.set_defaults(func=run, probe=verb == "probe")


def run(args: argparse.Namespace, client: Client) -> int:
    response = client.probe_providers(args.kind) if args.probe else client.list_providers(args.kind)
    if args.json:
        output.print_json(response)
        return output.OK
    rows = [
        (
            p.kind,
            p.priority,
            p.name,
            p.url,
            p.health,
            p.breaker,
            f"{p.latency_ms:.0f} ms" if p.latency_ms else "-",
            ",".join(p.voices[:6]) + ("…" if len(p.voices) > 6 else "")
            if p.kind == "tts"
            else ",".join(p.models[:4]),
            p.last_error,
        )
        for p in response.providers
    ]
    if not rows:
        print(
            "no endpoints: start a local service (voicemodectl service start whisper|piper) or set "
            "VOICEMODE_STT_BASE_URLS / VOICEMODE_TTS_BASE_URLS"
        )
        return output.UNAVAILABLE
    print(
        output.table(
            rows,
            ["KIND", "PRIO", "NAME", "URL", "HEALTH", "BREAKER", "LATENCY", "VOICES/MODELS", "LAST ERROR"],
        )
    )
    return output.OK

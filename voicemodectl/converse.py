"""voicemodectl converse / speak / listen: one spoken turn on the daemon's audio devices."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable
from typing import Any

from voicemodectl import output
from voicemoded.api.client import Client, TurnOptions
from voicemoded.api.v1 import conversation_pb2

KIND = {v.number: v.name.lower() for v in conversation_pb2.ConverseEvent.Kind.DESCRIPTOR.values}

#: The daemon's ranges (``voicemoded.conversation.params.RANGES``, which the CLI does not import: it
#: pulls in the audio stack). Checked here too so a bad value is a usage error naming the option.
RANGES: dict[str, tuple[float, float]] = {
    "listen_duration_max": (0.5, 3600.0),
    "listen_duration_min": (0.0, 3600.0),
    "speed": (0.25, 4.0),
    "silence_threshold": (0.1, 10.0),
}


def number_in(name: str) -> Callable[[str], float]:
    """An argparse type: a finite number within the parameter's range (``float`` takes nan and inf)."""
    low, high = RANGES[name]

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            value = math.nan
        if not math.isfinite(value) or not low <= value <= high:
            raise argparse.ArgumentTypeError(f"must be a number between {low:g} and {high:g}, not {text!r}")
        return value

    parse.__name__ = "number"
    return parse


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-wait", action="store_true", help="fail at once if another caller is talking")
    parser.add_argument("--quiet", "-q", action="store_true", help="print only the transcript")
    parser.add_argument("--events", action="store_true", help="with --json: one JSON line per event")
    parser.add_argument(
        "--transport",
        choices=["local", "livekit", "auto"],
        help="this machine's devices (default), a LiveKit room, or the room when a person is in it",
    )
    parser.add_argument("--room", default="", help="the LiveKit room of --transport livekit or auto")


def _speaking(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--voice", default="")
    parser.add_argument("--tts-provider", default="", help="endpoint URL or name (kokoro, piper, openai)")
    parser.add_argument("--tts-model", default="")
    parser.add_argument("--tts-instructions", default="")
    parser.add_argument("--speed", type=number_in("speed"), help="speech rate, 0.25 to 4")


def _listening(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--max",
        dest="listen_duration_max",
        type=number_in("listen_duration_max"),
        help="longest answer, seconds (0.5 to 3600)",
    )
    parser.add_argument(
        "--min",
        dest="listen_duration_min",
        type=number_in("listen_duration_min"),
        help="never stop before, seconds (0 to 3600)",
    )
    parser.add_argument("--vad-aggressiveness", type=int, choices=[0, 1, 2, 3])
    parser.add_argument(
        "--silence-threshold",
        type=number_in("silence_threshold"),
        help="seconds of silence that end the answer (0.1 to 10)",
    )
    parser.add_argument("--no-silence-detection", action="store_true", help="record until --max")
    parser.add_argument("--no-chime", action="store_true")
    parser.add_argument(
        "--barge-in", action="store_true", default=None, help="speech during playback interrupts"
    )
    parser.add_argument(
        "--audio-format", default="", help="format of the saved recording (wav, flac, mp3, opus)"
    )
    parser.add_argument("--language", default="")
    parser.add_argument("--stt-provider", default="")


def register(sub: argparse._SubParsersAction) -> None:
    converse = sub.add_parser("converse", help="speak a message, listen for the answer, print the transcript")
    converse.add_argument("message")
    _speaking(converse)
    _listening(converse)
    _common(converse)
    converse.set_defaults(func=lambda a, c: run_turn(a, c, "converse", a.message))
    speak = sub.add_parser("speak", help="speak a message on the daemon's speaker")
    speak.add_argument("message")
    _speaking(speak)
    _common(speak)
    speak.set_defaults(func=lambda a, c: run_turn(a, c, "speak", a.message))
    listen = sub.add_parser("listen", help="listen for speech and print the transcript")
    _listening(listen)
    _common(listen)
    listen.set_defaults(func=lambda a, c: run_turn(a, c, "listen", ""))


def turn_options(args: argparse.Namespace) -> TurnOptions:
    """The options of ``converse``, ``speak``, ``listen`` and ``say`` (each has only some of them)."""

    def given(name: str) -> Any:
        return getattr(args, name, None)

    return TurnOptions(
        voice=given("voice") or "",
        tts_provider=given("tts_provider") or "",
        tts_model=given("tts_model") or "",
        tts_instructions=given("tts_instructions") or "",
        speed=given("speed"),
        listen_duration_max=given("listen_duration_max"),
        listen_duration_min=given("listen_duration_min"),
        vad_aggressiveness=given("vad_aggressiveness"),
        silence_threshold=given("silence_threshold"),
        disable_silence_detection=True if given("no_silence_detection") else None,
        chime_enabled=False if given("no_chime") else None,
        barge_in=True if given("barge_in") else None,
        audio_format=given("audio_format") or "",
        language=given("language") or "",
        stt_provider=given("stt_provider") or "",
        no_wait=bool(given("no_wait")),
        transport=given("transport") or "",
        room=given("room") or "",
    )


def run_turn(args: argparse.Namespace, client: Client, mode: str, message: str) -> int:
    options = turn_options(args)
    if mode == "listen":
        events = client.listen(options)
    elif mode == "speak":
        events = client.speak(message, options)
    else:
        events = client.converse(message, options)
    result: conversation_pb2.TurnResult | None = None
    for event in events:
        kind = KIND.get(event.kind, "?")
        if args.json and getattr(args, "events", False):
            print(json.dumps(output.to_dict(event)), flush=True)
        elif not args.json and not getattr(args, "quiet", False) and kind != "done":
            detail = f" {event.detail}" if event.detail else ""
            text = f" {event.text!r}" if event.text else ""
            print(f"[{event.t:6.2f}s] {kind}{detail}{text}", file=sys.stderr, flush=True)
        if event.kind == conversation_pb2.ConverseEvent.DONE:
            result = event.result
    if result is None:
        print("voicemodectl: the turn ended without a result", file=sys.stderr)
        return output.ERROR
    if args.json:
        if not getattr(args, "events", False):
            output.print_json(result)
        return output.OK
    if mode != "speak":
        print(result.text)
    if not getattr(args, "quiet", False):
        t = result.timings
        print(
            f"[{result.end_reason}] ttfa {t.ttfa:.2f}s · playback {t.playback:.2f}s · mic gap {t.mic_gap * 1000:.0f} ms"
            f" · record {t.record:.2f}s · stt {t.stt:.2f}s · end-of-speech→result {t.endpoint_delay:.2f}s"
            f" · total {t.total:.2f}s"
            + (f" · recording {result.recording_path}" if result.recording_path else ""),
            file=sys.stderr,
        )
    return output.OK

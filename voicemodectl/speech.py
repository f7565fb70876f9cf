"""voicemodectl say / transcribe: text to speech and speech to text through the daemon's endpoints."""

from __future__ import annotations

import argparse
import sys
import wave
from pathlib import Path

from voicemodectl import output
from voicemoded.api.client import Client
from voicemoded.api.v1 import providers_pb2


def register(sub: argparse._SubParsersAction) -> None:
    say = sub.add_parser("say", help="synthesize text; --out writes a file, else the daemon speaks it")
    say.add_argument("text")
    say.add_argument("--voice", default="")
    say.add_argument("--model", default="")
    say.add_argument("--provider", default="", help="endpoint URL or name (kokoro, piper, openai)")
    say.add_argument("--speed", type=float)
    say.add_argument("--instructions", default="")
    say.add_argument("--out", type=Path, help="write audio here (.wav, or .pcm for raw 24 kHz s16le)")
    say.set_defaults(func=say_cmd)
    tr = sub.add_parser("transcribe", help="transcribe an audio file (or --last: the last recording)")
    tr.add_argument("file", nargs="?", type=Path)
    tr.add_argument("--last", action="store_true", help="retry the most recent recording kept by the daemon")
    tr.add_argument("--language", default="")
    tr.add_argument("--model", default="")
    tr.add_argument("--provider", default="")
    tr.add_argument("--prompt", default="")
    tr.set_defaults(func=transcribe_cmd)


def say_cmd(args: argparse.Namespace, client: Client) -> int:
    if args.out is None:
        from voicemodectl.converse import run_turn

        # `say` without --out is `speak`: the same options under their converse names.
        args.tts_provider, args.tts_model, args.tts_instructions = (
            args.provider,
            args.model,
            args.instructions,
        )
        return run_turn(args, client, mode="speak", message=args.text)
    request = providers_pb2.SynthesizeRequest(
        caller=client.caller(),
        text=args.text,
        voice=args.voice,
        model=args.model,
        provider=args.provider,
        instructions=args.instructions,
        format="pcm",
    )
    if args.speed is not None:
        request.speed = args.speed
    info: providers_pb2.SynthesisInfo | None = None
    chunks: list[bytes] = []
    for chunk in client.stream(client.providers.Synthesize, request, timeout=300):
        if chunk.HasField("info"):
            info = chunk.info
        else:
            chunks.append(chunk.audio)
    audio = b"".join(chunks)
    fmt = info.audio_format if info is not None else None
    rate, width, channels = (fmt.rate, fmt.width, fmt.channels) if fmt and fmt.rate else (24000, 2, 1)
    if args.out.suffix.lower() == ".pcm":
        args.out.write_bytes(audio)
    else:
        with wave.open(str(args.out), "wb") as handle:
            handle.setnchannels(channels)
            handle.setsampwidth(width)
            handle.setframerate(rate)
            handle.writeframes(audio)
    seconds = len(audio) / (rate * width * channels)
    if args.json:
        data = output.to_dict(info) if info is not None else {}
        output.print_json({**data, "file": str(args.out), "seconds": round(seconds, 3)})
    else:
        where = f" by {info.provider_name or info.provider_url} voice {info.voice}" if info else ""
        mapped = f" ({info.mapping})" if info and info.mapping else ""
        print(f"wrote {args.out}: {seconds:.2f} s{where}{mapped}")
    return output.OK


def transcribe_cmd(args: argparse.Namespace, client: Client) -> int:
    if not args.last and args.file is None:
        print("voicemodectl: give a FILE or --last", file=sys.stderr)
        return output.USAGE
    request = providers_pb2.TranscribeRequest(
        caller=client.caller(),
        last=args.last,
        language=args.language,
        model=args.model,
        provider=args.provider,
        prompt=args.prompt,
    )
    if args.file is not None:
        try:
            request.audio = args.file.read_bytes()
        except OSError as exc:
            print(f"voicemodectl: cannot read {args.file}: {exc.strerror}", file=sys.stderr)
            return output.NOT_FOUND
        request.filename = args.file.name
    response = client.call(client.providers.Transcribe, request, timeout=600)
    if args.json:
        output.print_json(response)
    else:
        print(response.text)
    return output.OK

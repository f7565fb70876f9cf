"""voicemodectl say / transcribe: text to speech and speech to text through the daemon's endpoints."""

from __future__ import annotations

import argparse
import functools
import os
import stat
import sys
from pathlib import Path

from voicemodectl import output
from voicemodectl.converse import number_in
from voicemoded.api import audio_file, safe_env
from voicemoded.api.client import MAX_MESSAGE_BYTES, Client, ClientError
from voicemoded.api.errors import NO_SPACE_ERRNOS, VoicemodeError, too_large
from voicemoded.api.files import NotRegular, OverLimit, read_bounded
from voicemoded.api.v1 import providers_pb2

#: The largest file the daemon transcribes (``voicemoded.app.sources.MAX_FILE_BYTES``; a test
#: keeps them equal). A larger one is refused here, before a byte of it is read.
MAX_FILE_BYTES = 64 * 1024 * 1024
#: Bytes sent inside a request (only for a file the daemon cannot open itself) leave room for the rest
#: of the message under gRPC's limit.
MAX_INLINE_BYTES = MAX_MESSAGE_BYTES - 1024 * 1024


def register(sub: argparse._SubParsersAction) -> None:
    say = sub.add_parser("say", help="synthesize text; --out writes a file, else the daemon speaks it")
    say.add_argument("text")
    say.add_argument("--voice", default="")
    say.add_argument("--model", default="")
    say.add_argument("--provider", default="", help="endpoint URL or name (kokoro, piper, openai)")
    say.add_argument("--speed", type=number_in("speed"), help="speech rate, 0.25 to 4")
    say.add_argument("--instructions", default="")
    say.add_argument(
        "--out",
        type=Path,
        help="write audio here, encoded by the extension: "
        f"{', '.join(audio_file.FORMATS)} (.pcm: raw 24 kHz s16le)",
    )
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
    problem = _out_problem(args.out)
    if problem is not None:
        raise problem
    try:
        encoding = audio_file.file_format(args.out)
    except VoicemodeError as exc:
        raise ClientError.of(exc) from None
    info: providers_pb2.SynthesisInfo | None = None
    chunks: list[bytes] = []
    synthesis = client.synthesize(
        args.text,
        voice=args.voice,
        model=args.model,
        provider=args.provider,
        speed=args.speed,
        instructions=args.instructions,
    )
    for chunk in synthesis:
        if chunk.HasField("info"):
            info = chunk.info
        else:
            chunks.append(chunk.audio)
    audio = b"".join(chunks)
    fmt = info.audio_format if info is not None else None
    rate, width, channels = (fmt.rate, fmt.width, fmt.channels) if fmt and fmt.rate else (24000, 2, 1)
    try:
        data = audio_file.encode(audio, encoding, rate, width, channels)
    except VoicemodeError as exc:
        raise ClientError.of(exc) from None
    try:
        args.out.write_bytes(data)
    except OSError as exc:
        raise _os_error(exc, args.out, "write") from None
    seconds = len(audio) / (rate * width * channels)
    if args.json:
        shown = output.to_dict(info) if info is not None else {}
        output.print_json({**shown, "file": str(args.out), "seconds": round(seconds, 3)})
    else:
        where = f" by {info.provider_name or info.provider_url} voice {info.voice}" if info else ""
        mapped = f" ({info.mapping})" if info and info.mapping else ""
        print(f"wrote {safe_env.shown(str(args.out), 4096)}: {seconds:.2f} s{where}{mapped}")
    return output.OK


def _out_problem(out: Path) -> ClientError | None:
    """Why ``--out`` cannot be written, found before the daemon synthesizes anything."""
    name = safe_env.shown(str(out), 4096)
    folder = out.parent
    if out.is_dir():
        return ClientError("INVALID_ARGUMENT", f"{name} is a directory", "give a file name, e.g. speech.wav")
    if not folder.exists():
        return ClientError(
            "NOT_FOUND",
            f"the folder {safe_env.shown(str(folder), 4096)} does not exist",
            "create it first, or write somewhere else",
        )
    if not folder.is_dir():
        return ClientError("INVALID_ARGUMENT", f"{safe_env.shown(str(folder), 4096)} is not a folder", "")
    if not os.access(folder, os.W_OK):
        return ClientError(
            "PERMISSION_DENIED",
            f"cannot write in the folder {safe_env.shown(str(folder), 4096)}",
            "write somewhere you own",
        )
    return None


def _os_error(exc: OSError, path: Path, doing: str) -> ClientError:
    code = "PERMISSION_DENIED" if isinstance(exc, PermissionError) else "ERROR"
    if exc.errno in NO_SPACE_ERRNOS:
        code = "NO_SPACE"
    return ClientError(code, f"cannot {doing} {safe_env.shown(str(path), 4096)}: {exc.strerror or exc}")


def _audio_file(file: Path) -> os.stat_result:
    """The file's status when it is a regular file within the daemon's limit; else the error saying so.
    Nothing is opened: a device (/dev/zero) or a pipe is refused by its type, never read."""
    name = safe_env.shown(str(file), 4096)
    try:
        info = file.stat()
    except FileNotFoundError:
        raise ClientError("NOT_FOUND", f"no such file: {name}", "check the path") from None
    except OSError as exc:
        raise _os_error(exc, file, "read") from None
    if not stat.S_ISREG(info.st_mode):
        raise ClientError(
            "INVALID_ARGUMENT",
            f"{name} is not a regular file",
            "give an audio file (wav, mp3, ogg, webm, flac); save a stream to a file first",
        )
    if info.st_size > MAX_FILE_BYTES:
        raise _too_large(name, info.st_size, MAX_FILE_BYTES)
    return info


def _too_large(name: str, size: int, limit: int) -> ClientError:
    return ClientError.of(too_large(f"{name} is", size, limit))


def _read_inline(file: Path) -> bytes:
    """The file's bytes for a request, read once and at most up to the limit (a file that grows while
    it is read is refused, not followed)."""
    name = safe_env.shown(str(file), 4096)
    try:
        return read_bounded(file, MAX_INLINE_BYTES)
    except NotRegular:
        raise ClientError("INVALID_ARGUMENT", f"{name} is not a regular file") from None
    except OverLimit as exc:
        raise _too_large(name, exc.size, MAX_INLINE_BYTES) from None
    except OSError as exc:
        raise _os_error(exc, file, "read") from None


def _inline(file: Path) -> tuple[bytes, str]:
    """The file's bytes for the request, and the name that tells the daemon their format (UTF-8 only)."""
    name = (
        file.name
        if safe_env.is_utf8(file.name)
        else "audio" + (file.suffix if safe_env.is_utf8(file.suffix) else "")
    )
    return _read_inline(file), name


def transcribe_cmd(args: argparse.Namespace, client: Client) -> int:
    if not args.last and args.file is None:
        print("voicemodectl: give a FILE or --last", file=sys.stderr)
        return output.USAGE
    ask = functools.partial(
        client.transcribe,
        last=args.last,
        language=args.language,
        model=args.model,
        provider=args.provider,
        prompt=args.prompt,
    )
    file = Path(os.path.abspath(args.file)) if args.file is not None else None
    path = ""
    audio, filename = b"", ""
    if file is not None:
        _audio_file(file)
        # The daemon reads the file itself (same user, same machine): no copy of it crosses the socket.
        if safe_env.is_utf8(str(file)):
            path = str(file)
        else:  # a path protobuf cannot carry: its bytes go instead
            audio, filename = _inline(file)
    try:
        response = ask(path=path, audio=audio, filename=filename)
    except ClientError as exc:
        # A daemon that cannot see or open the file (a private /tmp, another user) gets its bytes.
        unseen = exc.code in ("NOT_FOUND", "PERMISSION_DENIED") and exc.fields.get("path") == path
        if file is None or not path or not unseen:
            raise
        audio, filename = _inline(file)
        response = ask(audio=audio, filename=filename)
    if args.json:
        output.print_json(response)
    else:
        print(response.text)
    return output.OK

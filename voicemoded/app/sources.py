"""Where audio to transcribe comes from: the last kept recording, a file the caller names, or bytes.

Every source is bounded before it is read into memory, and a relative path means the caller's folder,
never the daemon's.
"""

from __future__ import annotations

import contextlib
import stat
from dataclasses import dataclass
from pathlib import Path

from voicemoded.api.errors import InvalidArgument, NotFound, quote, too_large
from voicemoded.api.files import NotRegular, OverLimit, read_bounded
from voicemoded.conversation.journal import last_recording

#: The largest audio file transcribed, read from disk or sent inline (voicemodectl refuses a larger one
#: before reading it). An hour of 16 kHz mono s16le is 110 MiB; speech worth one request is far less.
MAX_FILE_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True, slots=True)
class AudioSource:
    """What the caller asked to transcribe; the first of ``last``, ``path``, ``data`` that is set wins."""

    last: bool = False
    path: str = ""
    data: bytes = b""


def load(source: AudioSource, cwd: str, audio_dir: Path) -> tuple[str, bytes]:
    """The file (and its path, "" for bytes) or the bytes to transcribe; blocking (disk reads)."""
    if source.last:
        found = last_recording(audio_dir)
        if found is None:
            raise NotFound(
                f"no kept recording in {audio_dir}",
                hint="recordings are kept when STT fails or VOICEMODE_SAVE_AUDIO=true",
            )
        return str(found), read_audio_file(found)
    if source.path:
        file = caller_path(source.path, cwd)
        return str(file), read_audio_file(file)
    if source.data:
        if len(source.data) > MAX_FILE_BYTES:
            raise too_large("audio", len(source.data), MAX_FILE_BYTES)
        return "", source.data
    raise InvalidArgument("no audio given", hint="send audio bytes, a path, or last=true")


def caller_path(path: str, cwd: str) -> Path:
    """A path the caller gave, as the caller meant it: a relative one is relative to the caller's folder,
    never to the daemon's (which is wherever it was started)."""
    file = Path(path)
    if file.is_absolute():
        return file
    if not cwd or not Path(cwd).is_absolute():
        raise InvalidArgument(
            f"path {quote(path)} is relative and the call did not say which folder it is relative to",
            hint="give an absolute path",
            fields={"path": path},
        )
    return Path(cwd) / file


_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFCHR: "a character device", stat.S_IFBLK: "a block device",
          stat.S_IFIFO: "a pipe", stat.S_IFSOCK: "a socket"}  # fmt: skip


def read_audio_file(path: Path, limit: int = MAX_FILE_BYTES) -> bytes:
    """A regular file of at most ``limit`` bytes, read once and bounded (see :mod:`voicemoded.api.files`)."""
    try:
        return read_bounded(path, limit)
    except FileNotFoundError:
        raise NotFound(
            f"no such file: {quote(path)}", hint="check the path", fields={"path": str(path)}
        ) from None
    except NotRegular as exc:
        kind = _KINDS.get(stat.S_IFMT(exc.mode), "not a regular file")
        raise InvalidArgument(
            f"{quote(path)} is {kind}, not an audio file",
            hint="give a regular file (wav, mp3, ogg, webm, flac)",
            fields={"path": str(path)},
        ) from None
    except OverLimit as exc:
        raise too_large(f"file {quote(path)} is", exc.size, limit) from None


def encoded_seconds(data: bytes) -> float:
    """Duration of an encoded recording; 0 when the container does not say cheaply."""
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        import io
        import wave

        with contextlib.suppress(wave.Error, EOFError), wave.open(io.BytesIO(data)) as w:
            return w.getnframes() / float(w.getframerate())
    return 0.0

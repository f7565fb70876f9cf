"""Speech written to a file in the format its name asks for: .wav, .mp3, .ogg/.opus, .flac, .m4a, .aac, or
raw .pcm.

The format comes from the extension and is checked before anything is synthesized, so a name nobody can
write is refused at once instead of getting WAV bytes under another name. WAV and raw PCM need only the
standard library; the compressed formats are encoded with PyAV, imported on first use, so a front door
that never writes one never loads it.
"""

from __future__ import annotations

import io
import wave
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from voicemoded.api.errors import InvalidArgument, Unavailable


@dataclass(frozen=True, slots=True)
class FileFormat:
    name: str
    container: str = ""
    """FFmpeg's muxer; "" for the formats written without PyAV (wav, pcm)."""
    codec: str = ""
    bit_rate: int = 0
    """0 for the codec's own choice (lossless FLAC); low rates suit mono speech."""


_WAV = FileFormat("wav")
FORMATS: dict[str, FileFormat] = {
    ".wav": _WAV,
    ".pcm": FileFormat("pcm"),
    ".mp3": FileFormat("mp3", "mp3", "libmp3lame", 64_000),
    ".ogg": FileFormat("opus", "ogg", "libopus", 32_000),
    ".opus": FileFormat("opus", "ogg", "libopus", 32_000),
    ".flac": FileFormat("flac", "flac", "flac"),
    ".m4a": FileFormat("aac", "ipod", "aac", 64_000),
    ".aac": FileFormat("aac", "adts", "aac", 64_000),
}

_SAMPLE_FORMATS = {1: "u8", 2: "s16", 4: "s32"}
_FRAME_SECONDS = 1


def file_format(path: Path) -> FileFormat:
    """The format ``path``'s extension names; an error naming the extensions there are, for any other."""
    found = FORMATS.get(path.suffix.lower())
    if found is None:
        what = f"the extension {path.suffix!r}" if path.suffix else "a file name without an extension"
        raise InvalidArgument(
            f"cannot write audio to {path.name}: {what} names no audio format",
            hint=f"end the file name with one of {', '.join(FORMATS)}",
            fields={"field": "--out"},
        )
    return found


def encode(pcm: bytes, fmt: FileFormat, rate: int, width: int, channels: int) -> bytes:
    """The whole file for ``pcm`` (little-endian integer samples at ``rate``) in ``fmt``."""
    if fmt.name == "pcm":
        return pcm
    if fmt == _WAV:
        buffer = io.BytesIO()
        with wave.open(buffer, "wb") as handle:
            handle.setnchannels(channels)
            handle.setsampwidth(width)
            handle.setframerate(rate)
            handle.writeframes(pcm)
        return buffer.getvalue()
    return _compressed(pcm, fmt, rate, width, channels)


def codec_rate(rates: Sequence[int] | None, rate: int) -> int:
    """``rate`` when the codec takes it (Opus takes only a few), else the closest higher one it takes."""
    if not rates or rate in rates:
        return rate
    higher = sorted(r for r in rates if r > rate)
    return higher[0] if higher else max(rates)


def _compressed(pcm: bytes, fmt: FileFormat, rate: int, width: int, channels: int) -> bytes:
    from fractions import Fraction

    import av

    sample_format = _SAMPLE_FORMATS.get(width)
    if sample_format is None:
        raise InvalidArgument(
            f"cannot encode {width * 8}-bit samples as {fmt.name}", hint="write a .wav instead"
        )
    layout = {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")
    frame_bytes = width * channels
    step = rate * _FRAME_SECONDS * frame_bytes
    sink = io.BytesIO()
    try:
        with av.open(sink, mode="w", format=fmt.container) as container:
            stream_rate = codec_rate(av.codec.Codec(fmt.codec, "w").audio_rates, rate)
            stream = container.add_stream(fmt.codec, rate=stream_rate, layout=layout)
            assert isinstance(stream, av.audio.stream.AudioStream)
            if fmt.bit_rate:
                stream.bit_rate = fmt.bit_rate
            pts = 0
            for start in range(0, len(pcm) - len(pcm) % frame_bytes, step):
                block = pcm[start : start + step]
                samples = len(block) // frame_bytes
                # PyAV converts each frame to what the codec takes (planar, float, its rate) itself.
                frame = av.AudioFrame(format=sample_format, layout=layout, samples=samples)
                frame.planes[0].update(block)
                frame.sample_rate, frame.pts, frame.time_base = rate, pts, Fraction(1, rate)
                pts += samples
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode(None):
                container.mux(packet)
    except (av.error.FFmpegError, av.codec.codec.UnknownCodecError) as exc:
        raise Unavailable(
            f"could not encode {fmt.name}: {exc}", hint="write a .wav instead (this PyAV lacks the codec)"
        ) from None
    return sink.getvalue()

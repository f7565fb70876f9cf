"""Compressed audio in and out, through the FFmpeg inside PyAV (no system ffmpeg needed).

Decoding takes whatever a client uploads (wav, mp3, ogg/opus, webm, flac, or raw PCM whose rate the
caller states) down to one ``AudioFormat``, 16 kHz mono int16 unless asked otherwise. Encoding is
incremental: an :class:`Encoder` takes PCM blocks as a TTS engine produces them and hands back whatever
bytes the container has ready, so speech can leave the server sentence by sentence in any format.
"""

from __future__ import annotations

import io
import struct
from dataclasses import dataclass
from fractions import Fraction
from typing import Final

import av
import numpy as np

from voicemoded.api.audio_file import FORMATS as FILE_FORMATS
from voicemoded.api.audio_file import codec_rate
from voicemoded.api.errors import InvalidArgument
from voicemoded.audio.format import SPEECH_FORMAT, AudioFormat, check_format
from voicemoded.audio.resample import Resampler

#: Formats an encoder can produce, in the order OpenAI lists them.
ENCODE_FORMATS: Final = ("mp3", "opus", "aac", "flac", "wav", "pcm")

#: Everything an encoder can write: the speech formats plus webm (what browsers record).
ALL_FORMATS: Final = (*ENCODE_FORMATS, "webm")

CONTENT_TYPES: Final = {
    "mp3": "audio/mpeg",
    "opus": "audio/ogg",
    "aac": "audio/aac",
    "flac": "audio/flac",
    "wav": "audio/wav",
    "pcm": "audio/pcm",
    "webm": "audio/webm",
}


def _muxer(extension: str, options: dict[str, str] | None = None) -> tuple[str, str, int, dict[str, str]]:
    """(container, codec, bit rate, muxer options): the same choices as a file of that name."""
    fmt = FILE_FORMATS[extension]
    return fmt.container, fmt.codec, fmt.bit_rate, options or {}


# Per compressed format; low bit rates suit mono speech.
_MUXERS: Final = {
    "mp3": _muxer(".mp3"),
    # Ogg holds a page until a second of audio is in it; short pages let speech stream.
    "opus": _muxer(".ogg", {"page_duration": "100000"}),
    "aac": _muxer(".aac"),
    "flac": _muxer(".flac"),
    "webm": ("webm", "libopus", 32_000, {"live": "1"}),
}

_DECODE_HINT = "send wav, mp3, ogg/opus, webm or flac, or raw 16-bit PCM with its sample rate"

MAX_DECODE_SECONDS: Final = 3600.0
"""Longest audio a decode produces: an hour of speech is 115 MB at 16 kHz; a small compressed file
(a FLAC of silence) can claim days, and would otherwise be decoded whole into memory."""

_WAVE_FORMAT_EXTENSIBLE = 0xFFFE


def _layout(channels: int) -> str:
    return {1: "mono", 2: "stereo"}.get(channels, f"{channels}c")


@dataclass(frozen=True, slots=True)
class WavInfo:
    """What a RIFF/WAVE header declares: the sample layout and where the samples are."""

    format: AudioFormat
    tag: int
    """1 = integer PCM, 3 = IEEE float, others compressed (FFmpeg decodes what it knows)."""
    data_offset: int
    data_bytes: int
    """Bytes of samples present (a streaming header's 'unknown' size means: to the end of the file)."""


def is_wav(data: bytes) -> bool:
    return data[:4] == b"RIFF" and data[8:12] == b"WAVE"


def parse_wav_header(data: bytes, *, where: str = "file") -> WavInfo:
    """Read a WAV file's ``fmt `` and ``data`` chunks without decoding, and check the layout.

    A WAV header is the one place a client states a rate outright, and decoding trusts it; checking it
    first turns "10 Hz" into a 400 before FFmpeg or soxr allocate anything for it.
    """
    if not is_wav(data):
        raise InvalidArgument(f"{where} is not a WAV file (no RIFF/WAVE header)", hint=_DECODE_HINT)
    pos = 12
    fmt: tuple[int, int, int, int] | None = None
    while pos + 8 <= len(data):
        chunk_id = data[pos : pos + 4]
        (size,) = struct.unpack_from("<I", data, pos + 4)
        body = pos + 8
        if chunk_id == b"fmt ":
            if size < 16 or body + 16 > len(data):
                raise InvalidArgument(f"{where}: the WAV fmt chunk is truncated", hint=_DECODE_HINT)
            tag, channels, rate, _byte_rate, _align, bits = struct.unpack_from("<HHIIHH", data, body)
            if tag == _WAVE_FORMAT_EXTENSIBLE and size >= 40 and body + 26 <= len(data):
                (tag,) = struct.unpack_from("<H", data, body + 24)
            fmt = (tag, channels, rate, bits)
        elif chunk_id == b"data":
            if fmt is None:
                raise InvalidArgument(
                    f"{where}: the WAV data chunk comes before its fmt chunk", hint=_DECODE_HINT
                )
            tag, channels, rate, bits = fmt
            # A sample of 12 or 20 bits is stored in whole bytes; 0 bits is no layout at all.
            width = (bits + 7) // 8
            check_format(rate, width, channels, where=where)
            present = len(data) - body
            declared = present if size in (0, 0xFFFFFFFF) else size
            return WavInfo(AudioFormat(rate, width, channels), tag, body, min(declared, present))
        pos = body + size + (size & 1)
    what = "data" if fmt is not None else "fmt"
    raise InvalidArgument(f"{where}: the WAV file has no {what} chunk", hint=_DECODE_HINT)


def decode(
    data: bytes,
    *,
    target: AudioFormat = SPEECH_FORMAT,
    pcm_format: AudioFormat | None = None,
    max_seconds: float = MAX_DECODE_SECONDS,
) -> bytes:
    """Decode a whole file (or raw PCM in ``pcm_format``) to int16 PCM in ``target``.

    The container is sniffed from the bytes, not trusted from a filename or content type, because
    clients label uploads loosely (``audio/webm`` holding ogg is common). Every declared layout is
    checked before decoding, and decoding stops at ``max_seconds`` of audio.
    """
    if pcm_format is not None:
        if pcm_format.width != 2:
            raise InvalidArgument(
                f"raw PCM must be 16-bit, got {pcm_format.width * 8}-bit", hint=_DECODE_HINT
            )
        _check_length(pcm_format.seconds_for(len(data)), max_seconds)
        return _convert(data, pcm_format, target)
    if not data:
        raise InvalidArgument("the audio file is empty", hint=_DECODE_HINT)
    if is_wav(data):
        parse_wav_header(data)
    try:
        with av.open(io.BytesIO(data), mode="r") as container:
            if not container.streams.audio:
                raise InvalidArgument("the file holds no audio stream", hint=_DECODE_HINT)
            stream = container.streams.audio[0]
            # Whatever the container, its declared layout is checked before a sample is decoded (a
            # stream that declares no rate is checked on its first decoded frame instead).
            if stream.sample_rate:
                check_format(stream.sample_rate, 2, stream.channels or 1, where="file")
            return _decode_stream(container, stream, target, max_seconds)
    except av.error.FFmpegError as exc:
        raise InvalidArgument(f"cannot decode the audio: {exc}", hint=_DECODE_HINT) from exc


def _decode_stream(
    container: av.container.InputContainer,
    stream: av.audio.stream.AudioStream,
    target: AudioFormat,
    max_seconds: float,
) -> bytes:
    resampler: Resampler | None = None
    converter = av.AudioResampler(format="s16", layout=_layout(target.channels))
    out: list[bytes] = []
    seconds = 0.0
    for frame in container.decode(stream):
        for packed in converter.resample(frame):
            if resampler is None:
                source = AudioFormat.checked(packed.sample_rate, 2, target.channels, where="file")
                resampler = Resampler(source, AudioFormat(target.rate, 2, target.channels))
            seconds += packed.samples / packed.sample_rate
            _check_length(seconds, max_seconds)
            out.append(resampler.process(packed.to_ndarray().astype("<i2").tobytes()))
    if resampler is None:
        return b""
    out.append(resampler.flush())
    return _to_width(b"".join(out), target.width)


def _check_length(seconds: float, max_seconds: float) -> None:
    if seconds > max_seconds:
        raise InvalidArgument(
            f"the audio is longer than {max_seconds:g} s",
            hint=f"send at most {max_seconds:g} s per request (split longer recordings)",
            fields={"field": "file"},
        )


def _convert(pcm: bytes, source: AudioFormat, target: AudioFormat) -> bytes:
    pcm = pcm[: len(pcm) - len(pcm) % source.frame_bytes]
    resampler = Resampler(source, AudioFormat(target.rate, 2, target.channels))
    return _to_width(resampler.process(pcm) + resampler.flush(), target.width)


def _to_width(pcm16: bytes, width: int) -> bytes:
    """Widen or narrow int16 samples to ``width`` bytes (little-endian, signed; 8-bit is unsigned)."""
    if width == 2:
        return pcm16
    samples = np.frombuffer(pcm16, dtype="<i2").astype(np.int32)
    if width == 1:
        return (samples // 256 + 128).astype(np.uint8).tobytes()
    if width == 4:
        return (samples << 16).astype("<i4").tobytes()
    shifted = (samples << 8).astype("<i4").tobytes()
    return b"".join(shifted[i : i + 3] for i in range(0, len(shifted), 4))


def wav_header(fmt: AudioFormat, data_bytes: int | None = None) -> bytes:
    """A RIFF/WAVE header; without a length the sizes say 'unknown' (0xFFFFFFFF) for streaming.

    Decoders (FFmpeg, browsers, Python's ``wave``) read such a stream to its end, which is what a
    sentence-by-sentence response needs: the total length is not known when the header leaves.
    """
    size = 0xFFFFFFFF if data_bytes is None else data_bytes
    riff = 0xFFFFFFFF if data_bytes is None else 36 + data_bytes
    return (
        b"RIFF"
        + struct.pack("<I", riff)
        + b"WAVEfmt "
        + struct.pack(
            "<IHHIIHH", 16, 1, fmt.channels, fmt.rate, fmt.bytes_per_second, fmt.frame_bytes, fmt.width * 8
        )
        + b"data"
        + struct.pack("<I", size)
    )


class _Sink(io.RawIOBase):
    """A write-only, unseekable buffer the muxer writes into and the encoder drains."""

    def __init__(self) -> None:
        super().__init__()
        self._parts: list[bytes] = []

    def writable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def write(self, data: bytes | bytearray | memoryview) -> int:  # type: ignore[override]
        self._parts.append(bytes(data))
        return len(data)

    def drain(self) -> bytes:
        data = b"".join(self._parts)
        self._parts.clear()
        return data


class Encoder:
    """Encodes a stream of int16 PCM blocks in ``source`` format to one of :data:`ALL_FORMATS`.

    ``encode`` returns the bytes ready so far (possibly none while a codec fills a frame); ``finish``
    returns the rest. Concatenating every return value gives one valid file.
    """

    def __init__(self, fmt: str, source: AudioFormat) -> None:
        if fmt not in ALL_FORMATS:
            raise InvalidArgument(
                f"unknown audio format {fmt!r}", hint=f"use one of {', '.join(ALL_FORMATS)}"
            )
        if source.width != 2:
            raise InvalidArgument("the encoder takes 16-bit PCM", hint="convert the samples to int16 first")
        self.format = fmt
        self.source = source
        self.content_type = CONTENT_TYPES[fmt]
        self.rate = source.rate
        """Sample rate of the encoded stream: the source's, unless the codec cannot carry it."""
        self._header_sent = False
        self._finished = False
        self._pts = 0
        self._carry = b""
        self._sink: _Sink | None = None
        self._container: av.container.OutputContainer | None = None
        self._stream: av.audio.stream.AudioStream | None = None
        self._resampler: Resampler | None = None
        if fmt in _MUXERS:
            container_name, codec, bit_rate, options = _MUXERS[fmt]
            rate = codec_rate(av.codec.Codec(codec, "w").audio_rates, source.rate)
            if rate != source.rate:
                self._resampler = Resampler(source, AudioFormat(rate, 2, source.channels))
            self.rate = rate
            self._sink = _Sink()
            self._container = av.open(self._sink, mode="w", format=container_name, options=options)
            stream = self._container.add_stream(codec, rate=rate, layout=_layout(source.channels))
            assert isinstance(stream, av.audio.stream.AudioStream)
            if bit_rate:
                stream.bit_rate = bit_rate
            self._stream = stream

    def encode(self, pcm: bytes) -> bytes:
        if self._finished:
            raise RuntimeError("encoder already finished")
        data = self._carry + pcm
        whole = len(data) - len(data) % self.source.frame_bytes
        self._carry = data[whole:]
        data = data[:whole]
        if self.format == "pcm":
            return data
        if self.format == "wav":
            if not self._header_sent:
                self._header_sent = True
                return wav_header(self.source) + data
            return data
        if self._resampler is not None:
            data = self._resampler.process(data)
        if not data:
            return b""
        return self._mux(data)

    def finish(self) -> bytes:
        """Flush the codec and close the container; the encoder cannot be fed afterwards."""
        if self._finished:
            return b""
        self._finished = True
        if self.format == "wav" and not self._header_sent:
            return wav_header(self.source)
        if self._container is None or self._stream is None or self._sink is None:
            return b""
        if self._resampler is not None:
            tail = self._resampler.flush()
            if tail:
                self._mux(tail)
        for packet in self._stream.encode(None):
            self._container.mux(packet)
        self._container.close()
        return self._sink.drain()

    def _mux(self, data: bytes) -> bytes:
        assert self._container is not None and self._stream is not None and self._sink is not None
        samples = np.frombuffer(data, dtype="<i2").reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(samples, format="s16", layout=_layout(self.source.channels))
        frame.sample_rate = self.rate
        frame.pts = self._pts
        frame.time_base = Fraction(1, self.rate)
        self._pts += frame.samples
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        return self._sink.drain()


def encode(pcm: bytes, fmt: str, source: AudioFormat) -> bytes:
    """Encode a whole buffer at once."""
    encoder = Encoder(fmt, source)
    return encoder.encode(pcm) + encoder.finish()

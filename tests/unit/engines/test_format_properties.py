"""Properties of the one audio-format check and of WAV header parsing, over generated inputs.

Whatever numbers or bytes arrive, the outcome is either a layout inside the bounds or an
``InvalidArgument`` naming the field: never another exception, never a format a resampler would have
to inflate a thousandfold.
"""

from __future__ import annotations

import struct

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from voicemoded.api.errors import InvalidArgument
from voicemoded.api.v1 import common_pb2
from voicemoded.audio import codecs
from voicemoded.audio.format import MAX_CHANNELS, MAX_RATE, MIN_RATE, WIDTHS, AudioFormat, FormatError
from voicemoded.rpc.convert import audio_format

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
VALID = st.builds(
    AudioFormat,
    rate=st.integers(MIN_RATE, MAX_RATE),
    width=st.sampled_from(WIDTHS),
    channels=st.integers(1, MAX_CHANNELS),
)


def in_bounds(rate: int, width: int, channels: int) -> bool:
    return MIN_RATE <= rate <= MAX_RATE and width in WIDTHS and 1 <= channels <= MAX_CHANNELS


@FAST
@given(rate=INT32, width=INT32, channels=INT32)
def test_a_format_is_built_exactly_when_every_field_is_in_bounds(
    rate: int, width: int, channels: int
) -> None:
    if in_bounds(rate, width, channels):
        fmt = AudioFormat(rate, width, channels)
        assert fmt.bytes_per_second == rate * width * channels
        return
    with pytest.raises(FormatError) as info:
        AudioFormat.checked(rate, width, channels, where="pcm_format")
    field = info.value.fields["field"]
    assert field in ("pcm_format.rate", "pcm_format.width", "pcm_format.channels")
    assert info.value.message.startswith(field + " must be ")
    assert isinstance(info.value, InvalidArgument) and isinstance(info.value, ValueError)


@FAST
@given(rate=INT32, width=INT32, channels=INT32)
def test_the_rpc_message_converts_to_a_checked_format_or_a_named_error(
    rate: int, width: int, channels: int
) -> None:
    msg = common_pb2.AudioFormat(rate=rate, width=width, channels=channels)
    if not (rate or width or channels):
        assert audio_format(msg, "pcm_format") is None
        return
    expected = (rate, width or 2, channels or 1)
    if in_bounds(*expected):
        fmt = audio_format(msg, "pcm_format")
        assert fmt is not None and (fmt.rate, fmt.width, fmt.channels) == expected
    else:
        with pytest.raises(InvalidArgument, match=r"^pcm_format\.(rate|width|channels) must be"):
            audio_format(msg, "pcm_format")


@FAST
@given(fmt=VALID, data=st.binary(max_size=64), streaming=st.booleans())
def test_a_header_we_write_reads_back_as_the_same_format(
    fmt: AudioFormat, data: bytes, streaming: bool
) -> None:
    data = data[: len(data) - len(data) % fmt.frame_bytes]
    header = codecs.wav_header(fmt, None if streaming else len(data))
    info = codecs.parse_wav_header(header + data)
    assert info.format == fmt
    assert info.data_offset == len(header)
    assert info.data_bytes == len(data)


def wav_fmt(tag: int, channels: int, rate: int, bits: int, extra_chunk: bytes = b"") -> bytes:
    body = struct.pack("<HHIIHH", tag, channels, rate, rate * channels * 2 & 0xFFFFFFFF, 2, bits)
    chunks = (
        extra_chunk
        + b"fmt "
        + struct.pack("<I", len(body))
        + body
        + b"data"
        + struct.pack("<I", 4)
        + b"\0" * 4
    )
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


@FAST
@given(
    channels=st.integers(0, 0xFFFF),
    rate=st.integers(0, 0xFFFFFFFF),
    bits=st.integers(0, 0xFFFF),
    extra=st.binary(max_size=12),
)
def test_any_declared_layout_is_read_or_refused_by_name(
    channels: int, rate: int, bits: int, extra: bytes
) -> None:
    padding = b"LIST" + struct.pack("<I", len(extra)) + extra + (b"\0" if len(extra) % 2 else b"")
    data = wav_fmt(1, channels, rate, bits, padding)
    width = (bits + 7) // 8
    if in_bounds(rate, width, channels):
        assert codecs.parse_wav_header(data).format == AudioFormat(rate, width, channels)
    else:
        with pytest.raises(FormatError, match=r"^file\.(rate|width|channels) must be"):
            codecs.parse_wav_header(data)


@FAST
@given(st.binary(max_size=200))
def test_arbitrary_bytes_are_a_wav_or_an_invalid_argument(data: bytes) -> None:
    for candidate in (data, b"RIFF" + data[:4] + b"WAVE" + data[4:]):
        try:
            info = codecs.parse_wav_header(candidate)
        except InvalidArgument:
            continue
        assert in_bounds(info.format.rate, info.format.width, info.format.channels)
        assert 12 <= info.data_offset <= len(candidate)
        assert 0 <= info.data_bytes <= len(candidate) - info.data_offset


def test_the_10_hz_header_is_refused_before_anything_is_decoded() -> None:
    with pytest.raises(FormatError, match=r"file\.rate must be 8000\.\.192000 Hz, got 10"):
        codecs.decode(wav_fmt(1, 1, 10, 16) + b"\0" * 32_000)


def test_a_decode_stops_at_its_length_bound() -> None:
    pcm = b"\0\0" * 16_000 * 3
    with pytest.raises(InvalidArgument, match=r"longer than 2 s"):
        codecs.decode(codecs.encode(pcm, "flac", AudioFormat(16_000)), max_seconds=2)
    with pytest.raises(InvalidArgument, match=r"longer than 2 s"):
        codecs.decode(pcm, pcm_format=AudioFormat(16_000), max_seconds=2)
    assert len(codecs.decode(pcm, pcm_format=AudioFormat(16_000), max_seconds=3)) == len(pcm)

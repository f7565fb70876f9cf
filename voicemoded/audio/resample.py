"""Streaming int16 rate and channel conversion between two ``AudioFormat``s.

Audio arrives in blocks (a device callback, a TTS sentence, an HTTP body chunk) and must leave in another
rate without clicks at block edges: ``soxr.ResampleStream`` keeps the filter state between blocks, which a
per-block ``soxr.resample`` call would not. Channel mixing happens before the rate change so a stereo
source costs one mono filter, not two.
"""

from __future__ import annotations

import numpy as np
import soxr

from voicemoded.audio.format import AudioFormat

_INT16 = 2


def convert_channels(samples: np.ndarray, src_channels: int, dst_channels: int) -> np.ndarray:
    """Mix interleaved int16 frames (shape ``(frames, src_channels)``) to ``dst_channels``.

    Down to mono averages every channel; mono up to N copies it; other mixes take the first channels
    (or repeat the last one), which is what a speaker layout without a matrix can honestly do.
    """
    if src_channels == dst_channels:
        return samples
    if dst_channels == 1:
        return samples.mean(axis=1, dtype=np.float64).round().astype(np.int16).reshape(-1, 1)
    if src_channels == 1:
        return np.repeat(samples, dst_channels, axis=1)
    if src_channels > dst_channels:
        return np.ascontiguousarray(samples[:, :dst_channels])
    extra = np.repeat(samples[:, -1:], dst_channels - src_channels, axis=1)
    return np.concatenate([samples, extra], axis=1)


class Resampler:
    """Converts a stream of int16 PCM from ``src`` to ``dst``; feed blocks, then ``flush`` once.

    Input blocks need not be whole frames: a trailing partial frame is kept for the next block, since
    HTTP and pipes cut bytes wherever they like.
    """

    def __init__(self, src: AudioFormat, dst: AudioFormat, *, quality: str = "HQ") -> None:
        if src.width != _INT16 or dst.width != _INT16:
            raise ValueError(f"only 16-bit PCM is resampled, got {src.width * 8}-bit -> {dst.width * 8}-bit")
        self.src = src
        self.dst = dst
        self._carry = b""
        self._stream: soxr.ResampleStream | None = None
        if src.rate != dst.rate:
            self._stream = soxr.ResampleStream(
                src.rate, dst.rate, dst.channels, dtype="int16", quality=quality
            )
        self._flushed = False

    @property
    def passthrough(self) -> bool:
        """True when the formats match and bytes are handed back as they came."""
        return self._stream is None and self.src.channels == self.dst.channels

    def process(self, pcm: bytes) -> bytes:
        """Convert one block; may return fewer (or more) bytes than the ratio says, as the filter fills."""
        if self._flushed:
            raise RuntimeError("resampler already flushed")
        data = self._carry + pcm
        whole = len(data) - len(data) % self.src.frame_bytes
        self._carry = data[whole:]
        if whole == 0:
            return b""
        if self.passthrough:
            return data[:whole]
        frames = np.frombuffer(data[:whole], dtype="<i2").reshape(-1, self.src.channels)
        frames = convert_channels(frames, self.src.channels, self.dst.channels)
        if self._stream is None:
            return frames.astype("<i2").tobytes()
        out = self._stream.resample_chunk(np.ascontiguousarray(frames), last=False)
        return np.asarray(out, dtype="<i2").tobytes()

    def flush(self) -> bytes:
        """Drain the filter's tail; the stream cannot be fed afterwards."""
        if self._flushed:
            return b""
        self._flushed = True
        self._carry = b""
        if self._stream is None:
            return b""
        empty = np.zeros((0, self.dst.channels), dtype=np.int16)
        out = self._stream.resample_chunk(empty, last=True)
        return np.asarray(out, dtype="<i2").tobytes()


def resample(pcm: bytes, src: AudioFormat, dst: AudioFormat) -> bytes:
    """Convert a whole buffer at once."""
    resampler = Resampler(src, dst)
    return resampler.process(pcm) + resampler.flush()

"""Audio value types shared from the device to the codec to STT.

One ``AudioFormat`` describes raw interleaved PCM; one ``AudioChunk`` carries a block of it with its
timestamp. Everything that moves audio inside the daemon speaks these two types, so a rate or width
mismatch is a visible field, not a guess.
"""

from __future__ import annotations

from dataclasses import dataclass, field

#: Whisper and webrtcvad both want 16 kHz mono 16-bit: the daemon's working format for speech input.
SPEECH_RATE = 16_000


@dataclass(frozen=True, slots=True)
class AudioFormat:
    """Raw PCM layout: signed little-endian integers, interleaved channels."""

    rate: int = SPEECH_RATE
    """Samples per second per channel."""
    width: int = 2
    """Bytes per sample (2 = int16)."""
    channels: int = 1
    """Interleaved channels."""

    def __post_init__(self) -> None:
        if self.rate <= 0:
            raise ValueError(f"sample rate must be positive, got {self.rate}")
        if self.width not in (1, 2, 3, 4):
            raise ValueError(f"sample width must be 1-4 bytes, got {self.width}")
        if self.channels <= 0:
            raise ValueError(f"channel count must be positive, got {self.channels}")

    @property
    def frame_bytes(self) -> int:
        """Bytes per frame (one sample on every channel)."""
        return self.width * self.channels

    @property
    def bytes_per_second(self) -> int:
        return self.rate * self.frame_bytes

    def bytes_for(self, seconds: float) -> int:
        """Whole-frame byte count for a duration."""
        return round(seconds * self.rate) * self.frame_bytes

    def seconds_for(self, nbytes: int) -> float:
        return nbytes / self.bytes_per_second


SPEECH_FORMAT = AudioFormat()


@dataclass(frozen=True, slots=True)
class AudioChunk:
    """A block of PCM in a known format, stamped with when it was captured or produced."""

    audio: bytes
    format: AudioFormat = SPEECH_FORMAT
    timestamp: float = 0.0
    """Monotonic seconds (``time.monotonic()``) of the chunk's first sample, when known."""
    meta: dict[str, str] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if len(self.audio) % self.format.frame_bytes:
            raise ValueError(
                f"chunk of {len(self.audio)} bytes is not a whole number of "
                f"{self.format.frame_bytes}-byte frames"
            )

    @property
    def frames(self) -> int:
        return len(self.audio) // self.format.frame_bytes

    @property
    def seconds(self) -> float:
        return self.frames / self.format.rate

    @property
    def end(self) -> float:
        """Monotonic time just after the chunk's last sample."""
        return self.timestamp + self.seconds

"""Audio value types shared from the device to the codec to STT.

One ``AudioFormat`` describes raw interleaved PCM; one ``AudioChunk`` carries a block of it with its
timestamp. Everything that moves audio inside the daemon speaks these two types, so a rate or width
mismatch is a visible field, not a guess.

Every format that enters from outside (a WAV header, a decoded stream, the PCM fields of an upload or
an RPC) passes :func:`check_format` before a buffer is sized from it: a 10 Hz "rate" turns a 32 KB
upload into a 1600-fold resampling job, so a nonsense rate is refused, not obeyed.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from voicemoded.api.errors import InvalidArgument

#: Whisper and webrtcvad both want 16 kHz mono 16-bit: the daemon's working format for speech input.
SPEECH_RATE = 16_000

MIN_RATE = 8_000
"""Telephone audio, the lowest rate speech is recorded at; below it the samples hold no words."""
MAX_RATE = 192_000
"""The highest rate sound cards and studio files use."""
WIDTHS = (1, 2, 3, 4)
"""Bytes per sample of signed little-endian PCM (8-bit WAV is unsigned)."""
MAX_CHANNELS = 32
"""More than a multichannel interface offers: a larger count is a corrupt header, not a device."""


class FormatError(InvalidArgument, ValueError):
    """A PCM layout no real audio has; a ``ValueError`` too, as ``AudioFormat`` has always raised."""


def check_format(rate: int, width: int, channels: int, *, where: str = "") -> None:
    """Refuse a PCM layout outside what real audio uses, naming the field it came from.

    ``where`` says where the numbers were read (``pcm_format``, ``wav``), so the error names the one
    to fix (``pcm_format.rate``). It runs before anything is allocated or resampled from the values:
    it is the one bound on how far a declared format can inflate the audio it describes.
    """
    prefix = f"{where}." if where else ""
    if not MIN_RATE <= rate <= MAX_RATE:
        raise FormatError(
            f"{prefix}rate must be {MIN_RATE}..{MAX_RATE} Hz, got {rate}",
            hint="give the rate the audio was recorded at (16000, 24000, 44100, 48000 ...)",
            fields={"field": f"{prefix}rate"},
        )
    if width not in WIDTHS:
        raise FormatError(
            f"{prefix}width must be {WIDTHS[0]}..{WIDTHS[-1]} bytes per sample, got {width}",
            hint="16-bit PCM has width 2",
            fields={"field": f"{prefix}width"},
        )
    if not 1 <= channels <= MAX_CHANNELS:
        raise FormatError(
            f"{prefix}channels must be 1..{MAX_CHANNELS}, got {channels}",
            hint="mono audio has 1 channel, stereo 2",
            fields={"field": f"{prefix}channels"},
        )


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
        check_format(self.rate, self.width, self.channels)

    @classmethod
    def checked(cls, rate: int, width: int, channels: int, *, where: str) -> AudioFormat:
        """A format read from outside (a header, a request): an error names ``where`` when it is off."""
        check_format(rate, width, channels, where=where)
        return cls(rate, width, channels)

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
            raise FormatError(
                f"audio of {len(self.audio)} bytes is not a whole number of "
                f"{self.format.frame_bytes}-byte frames",
                hint="send whole frames: width x channels bytes per sample instant",
                fields={"field": "audio"},
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

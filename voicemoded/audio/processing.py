"""Cleaning the microphone before VAD and Whisper: WebRTC's audio processing module (APM), offline.

A fan, a laptop's hiss or mains hum raises the VAD's noise floor and feeds Whisper the noise it likes to
turn into words; the assistant's own voice coming back from the speaker is worse. WebRTC's APM (the one
inside every browser call) removes all of these on the CPU, and the ``livekit`` package already ships it.

What this module is built around (measured on livekit 1.2.1, 16 kHz mono):

- The APM takes a whole number of 10 ms frames per call and nothing else: any other length is a panic in
  the native library that aborts the whole process, not an exception. Only whole frames reach it here.
- ``process_stream`` writes the result into the frame's buffer: in place for a ``bytearray``; a ``bytes``
  buffer is first copied into a new ``bytearray`` (the caller's bytes stay untouched). Several 10 ms
  frames in one call are split by the library and give bit-identical output to one call per frame, for
  about 40% less CPU, so each ``process`` call hands over all its whole frames at once.
- Noise suppression is WebRTC's default "moderate" level: about 12 dB off steady noise, reached within
  0.25 s; it delays its output by 96 samples (6 ms). It learns the noise from its first frames: with
  0.25 s of room sound before the voice, speech loses under 1 dB; a voice already there in the first
  frame is partly taken for noise and loses 2-3 dB. Open the processor with the microphone.
- Gain control is the adaptive digital controller: it starts with about +14 dB on quiet input and adapts
  at about 6 dB/s, so for the first seconds of a fresh processor it lifts the noise too. Keep one
  processor per microphone stream when gain control is on, rather than one per utterance.
- The echo canceller (AEC3) finds the echo delay by itself; ``set_stream_delay_ms`` is a hint the library
  accepts between 0 and 500 ms.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import structlog

from voicemoded.api.errors import FailedPrecondition
from voicemoded.audio.format import SPEECH_RATE

if TYPE_CHECKING:
    from livekit import rtc

log = structlog.get_logger(__name__)

FRAME_MS = 10
"""The APM's one frame length."""
FRAME_SAMPLES = SPEECH_RATE * FRAME_MS // 1000
FRAME_BYTES = FRAME_SAMPLES * 2
MAX_DELAY_MS = 500
"""The largest echo delay the APM accepts; it refuses anything longer."""

_WORDS = {
    "ns": "noise_suppression",
    "hpf": "high_pass_filter",
    "agc": "auto_gain_control",
    "aec": "echo_cancellation",
}
_ON = ("ns", "hpf", "agc")
_ON_WORDS = frozenset({"on", "true", "yes", "1"})
_OFF_WORDS = frozenset({"off", "false", "no", "0", "none"})
_VALID = "off, on (= ns,hpf,agc), or a comma list of ns, hpf, agc, aec"


@dataclass(frozen=True, slots=True)
class ProcessingConfig:
    """Which of the APM's stages clean the microphone; all off is a plain pass-through."""

    noise_suppression: bool = False
    """Takes about 12 dB off steady noise (fans, hiss) so the VAD's floor stays low and Whisper hears
    fewer phantom words; speech loses under 1 dB."""
    high_pass_filter: bool = False
    """Removes rumble and mains hum below ~80 Hz, where speech carries nothing Whisper needs."""
    auto_gain_control: bool = False
    """Lifts a quiet or distant voice towards a steady level (+13 dB for speech at -37 dBFS); it also
    lifts noise while it adapts, so it suits a long-lived stream better than a fresh one per turn."""
    echo_cancellation: bool = False
    """Removes the assistant's own voice coming back from the speaker; needs the played audio through
    ``MicProcessor.reverse``, so it is off unless asked for."""

    @classmethod
    def parse(cls, text: str) -> ProcessingConfig:
        """Read a setting: ``off``, ``on`` (ns, hpf and agc), or a comma list such as ``ns,hpf,aec``.

        ``on`` may appear in a list (``on,aec`` is everything); ``off`` must stand alone, since
        ``off,ns`` says two things at once.
        """
        words = [w.strip().lower() for w in text.split(",") if w.strip()]
        if not words:
            raise ValueError(f"empty audio processing setting; use {_VALID}")
        chosen: set[str] = set()
        for word in words:
            if word in _OFF_WORDS:
                if len(words) > 1:
                    raise ValueError(f"'off' cannot be combined with other words in {text!r}; use {_VALID}")
            elif word in _ON_WORDS:
                chosen.update(_ON)
            elif word in _WORDS:
                chosen.add(word)
            else:
                raise ValueError(f"unknown audio processing word {word!r}; use {_VALID}")
        return cls(**{_WORDS[w]: True for w in chosen})

    @property
    def enabled(self) -> bool:
        """True when any stage is on, i.e. the APM is needed at all."""
        return (
            self.noise_suppression
            or self.high_pass_filter
            or self.auto_gain_control
            or self.echo_cancellation
        )

    @property
    def setting(self) -> str:
        """The canonical setting text (``parse(c.setting) == c``), for logs and ``config show``."""
        on = [w for w, name in _WORDS.items() if getattr(self, name)]
        if not on:
            return "off"
        if all(w in on for w in _ON):
            return ",".join(["on", *(w for w in on if w not in _ON)])
        return ",".join(on)

    def __str__(self) -> str:
        return self.setting


def _open_apm(config: ProcessingConfig) -> tuple[rtc.AudioProcessingModule, type[rtc.AudioFrame]]:
    """Import livekit only when a processor is built: the import costs 0.3-0.5 s, which a daemon with
    processing off should never pay (the first APM then takes ~10-40 ms, later ones under 1 ms)."""
    try:
        from livekit import rtc
    except (ImportError, OSError) as exc:
        raise FailedPrecondition(
            f"WebRTC audio processing is unavailable: {exc}",
            hint="install the daemon's dependencies (pip install 'voicemode[daemon]'), or turn microphone processing off",
        ) from exc
    apm = rtc.AudioProcessingModule(
        echo_cancellation=config.echo_cancellation,
        noise_suppression=config.noise_suppression,
        high_pass_filter=config.high_pass_filter,
        auto_gain_control=config.auto_gain_control,
    )
    return apm, rtc.AudioFrame


class MicProcessor:
    """Streaming cleaner for 16 kHz mono int16 microphone audio, one per microphone stream or utterance.

    Per stream is better: the suppressor and gain control keep what they learned of the room, where a
    fresh processor per utterance re-learns it while the person is already talking.

    ``process`` takes blocks of any length (a device callback's, a network packet's, even an odd byte
    count) and returns what it could process: whole 10 ms frames only. Up to 10 ms less one byte is held
    for the next call, so the output lags the input by less than 10 ms of framing, plus the 6 ms noise
    suppression adds inside the APM. Over a stream ``process`` + ``flush`` return exactly as many bytes
    as went in.

    ``process`` and ``reverse`` may run on different threads (the library serialises its own calls);
    each of them should be called from one thread at a time.

    With every stage off no APM is built and blocks pass through at once, untouched.
    """

    def __init__(self, config: ProcessingConfig) -> None:
        self.config = config
        self._pending = b""
        self._reverse_pending = b""
        self._delay_ms: int | None = None
        self._flushed = False
        self._apm: rtc.AudioProcessingModule | None = None
        self._frame_type: type[rtc.AudioFrame] | None = None
        if config.enabled:
            self._apm, self._frame_type = _open_apm(config)
        log.debug("mic_processing.opened", setting=config.setting)

    def process(self, pcm: bytes) -> bytes:
        """Clean the whole 10 ms frames available so far; the remainder waits for the next call."""
        if self._flushed:
            raise RuntimeError("mic processor already flushed")
        if self._apm is None:
            return bytes(pcm)
        data = self._pending + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._pending = data[whole:]
        if not whole:
            return b""
        return self._run(data[:whole])

    def flush(self) -> bytes:
        """End the stream: the held remainder, zero-padded to a frame, processed, cut back to its length.

        Processed rather than raw, so the last few milliseconds get the same cleaning as the rest (raw
        noise would come back 12 dB louder for an instant, an AGC-lifted voice would drop back). The
        last ~6 ms of input stay inside the noise suppressor's delay line: an utterance ends in silence,
        so nothing is lost that anyone hears. Later calls to ``process`` raise; ``flush`` again returns
        nothing.
        """
        if self._flushed:
            return b""
        self._flushed = True
        held, self._pending = self._pending, b""
        if not held or self._apm is None:
            return held
        return self._run(held + bytes(FRAME_BYTES - len(held)))[: len(held)]

    def reverse(self, pcm: bytes) -> None:
        """Feed what the speaker plays (16 kHz mono int16, any block length) to the echo canceller.

        Call it as the audio is played, before the microphone hears it back. Without echo
        cancellation it does nothing, so a playback path can tee into it unconditionally.
        """
        if self._apm is None or not self.config.echo_cancellation:
            return
        data = self._reverse_pending + pcm
        whole = len(data) - len(data) % FRAME_BYTES
        self._reverse_pending = data[whole:]
        if whole:
            buf = bytearray(data[:whole])
            self._apm.process_reverse_stream(self._frame(buf))

    def set_delay_ms(self, ms: int) -> None:
        """Tell the echo canceller how late the speaker's sound reaches the microphone.

        AEC3 estimates the delay itself; a good figure (output latency + input latency) only helps it
        settle. Without echo cancellation it is kept and does nothing.
        """
        if not 0 <= ms <= MAX_DELAY_MS:
            raise ValueError(f"echo delay must be between 0 and {MAX_DELAY_MS} ms, got {ms}")
        self._delay_ms = ms

    def _run(self, block: bytes) -> bytes:
        assert self._apm is not None and len(block) % FRAME_BYTES == 0
        buf = bytearray(block)
        if self.config.echo_cancellation and self._delay_ms is not None:
            # WebRTC wants the delay set before each capture call while echo cancellation is on, and
            # must not be given one otherwise.
            self._apm.set_stream_delay_ms(self._delay_ms)
        self._apm.process_stream(self._frame(buf))
        return bytes(buf)

    def _frame(self, buf: bytearray) -> rtc.AudioFrame:
        """A frame over ``buf`` itself: the APM writes its result there, no copy back."""
        assert self._frame_type is not None
        return self._frame_type(buf, SPEECH_RATE, 1, len(buf) // 2)


def process_clip(pcm: bytes, config: ProcessingConfig) -> bytes:
    """A whole recording through a fresh processor; the same length out as in (benchmarks, tests)."""
    if len(pcm) % 2:
        raise ValueError(f"16-bit PCM has an even byte count, got {len(pcm)}")
    proc = MicProcessor(config)
    return proc.process(pcm) + proc.flush()


def _measure() -> None:
    """Print the CPU cost of each configuration, in ms of CPU per second of audio."""
    import logging
    import time

    import numpy as np

    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(logging.INFO))
    seconds = 20
    rng = np.random.default_rng(0)
    noise = (rng.standard_normal(SPEECH_RATE * seconds) * 1000).astype("<i2").tobytes()
    block = FRAME_BYTES * 2  # 20 ms, a typical device callback
    for setting in ("ns", "hpf", "agc", "on", "on,aec"):
        config = ProcessingConfig.parse(setting)
        best = float("inf")
        for _ in range(3):
            proc = MicProcessor(config)
            start = time.process_time()
            for i in range(0, len(noise), block):
                proc.reverse(noise[i : i + block])
                proc.process(noise[i : i + block])
            proc.flush()
            best = min(best, time.process_time() - start)
        print(f"{setting:8s} {best / seconds * 1000:6.2f} ms CPU per second of audio (20 ms blocks)")


if __name__ == "__main__":
    _measure()

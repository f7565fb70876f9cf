"""When has the person finished? Endpointing over audio time, deterministic and free of I/O.

The trade-off. A fixed silence threshold cannot both wait out a 0.8 s thinking pause and return within
0.8 s of the last word: any threshold under 0.8 s cuts the pause, any above it is slow. So the end is
decided in two stages:

- after ``early_end_s`` of silence (default 0.3 s) the endpointer reports a *pause*. The recorder then
  asks a turn predictor (the converse loop runs STT on the audio so far and checks whether the text is
  a finished sentence, see :func:`text_looks_complete`). "Complete" ends the turn once the silence
  reaches ``predicted_end_s`` (0.9 s): text alone cannot tell "I think we should move the meeting" from
  the same words before "to Thursday", so a finished-looking sentence still waits out a thinking pause.
  The transcript the predictor made is ready by then and is the answer: silence -> result is about
  ``predicted_end_s``. "Incomplete" ("my favourite colour is", "I went to the shop and") keeps listening.
  A *confident* "complete" (the converse loop's end-of-turn model also hears a finished voice, see
  :mod:`voicemoded.audio.turn`) needs only ``confident_end_s``.
- after ``end_silence_s`` (default 1.0 s) the turn ends regardless: the bound when no predictor is
  wired, the predictor is unsure, or the person trails off. A person who has already paused longer than
  that once in this utterance gets a longer bound (``pause_margin_s`` beyond their longest pause, capped
  at ``end_silence_max_s``): people who pause long, pause long again.

Background noise cannot hold the turn open: the noise gate (see :mod:`vad`) stops counting steady noise
as voice, and ``max_listen_s`` caps everything. Silence before any speech ends after
``initial_silence_s`` with ``no_speech``, so "no answer" is quick.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum
from typing import Literal

from voicemoded.audio.format import SPEECH_RATE
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
    """Silence after which the turn predictor is asked whether the person has finished."""
    predicted_end_s: float = 0.9
    """Silence a turn the predictor judged finished still needs before it ends: longer than a thinking
    pause inside a sentence (people pause 0.5-0.8 s mid-thought), shorter than ``end_silence_s``. The
    predictor's transcript is ready by then, so silence -> result is about this long."""
    confident_end_s: float = 0.5
    """Silence a turn needs when the predictor is confident it is finished: the words read finished and
    the voice sounds finished (falling, slowing), so this is not a thinking pause."""
    end_silence_s: float = 1.0
    """Silence that ends the turn without a predictor's say (VOICEMODE_SILENCE_THRESHOLD_MS / 1000)."""
    end_silence_max_s: float = 2.0
    """Upper bound for the end silence after it adapted to this speaker's long pauses."""
    pause_margin_s: float = 0.3
    """How much longer than the longest pause so far the end silence must be."""
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

    def __init__(self, config: EndpointConfig | None = None, detector: SpeechDetector | None = None):
        self.config = config = config or EndpointConfig()
        self.detector = detector or config.detector()
        self.detector.reset()
        self.frame_samples = self.detector.frame_samples
        self.frame_bytes = self.frame_samples * 2
        self.frame_s = self.frame_samples / SPEECH_RATE
        c = config
        self.machine = VadStateMachine(
            start_frames=max(1, round(c.start_s / self.frame_s)),
            stop_frames=max(1, round(c.end_silence_max_s / self.frame_s)),
        )
        self.gate = NoiseGate(margin_db=c.gate_margin_db, window_s=c.noise_window_s, frame_s=self.frame_s)
        self.elapsed = 0.0
        self.speech_start: float | None = None
        self.last_voiced_end: float | None = None
        self.voiced_s = 0.0
        self.longest_pause = 0.0
        self.end_silence = c.end_silence_s
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
            if self.paused:
                pause = t - (self.last_voiced_end or t)
                self.longest_pause = max(self.longest_pause, pause)
                self.end_silence = min(
                    c.end_silence_max_s, max(self.end_silence, self.longest_pause + c.pause_margin_s)
                )
                self.paused = False
                events.append(EndpointEvent("resume", t, pause_id=self.pause_id, pause_s=pause))
            self.last_voiced_end = self.elapsed
        if self.speech_start is None and state == VadState.SPEAKING:
            self.speech_start = self._gated_onset(self._run_start)
            self.voiced_s = self.elapsed - self._run_start
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
            out.append(EndpointEvent("pause", now, pause_id=self.pause_id))
        if self.silence >= self.end_silence and now >= c.min_listen_s:
            if self._has_speech():
                out.append(self._end(EndReason.SILENCE))
            else:
                # Too little voice to be an answer (a knock, a cough): forget it and keep waiting.
                self.speech_start = self.last_voiced_end = None
                self.voiced_s = 0.0
                self.paused = False
                if now >= c.initial_silence_s:
                    out.append(self._end(EndReason.NO_SPEECH))
        return out

    def accept_pause(self, pause_id: int, *, confident: bool = False) -> EndpointEvent | None:
        """The turn predictor said the person finished at pause ``pause_id``; end if still paused."""
        if self.ended is not None or not self.paused or pause_id != self.pause_id:
            return None
        if self.elapsed < self.config.min_listen_s or not self._has_speech():
            return None
        c = self.config
        if self.silence < min(c.confident_end_s if confident else c.predicted_end_s, c.end_silence_s):
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


# Words a finished English sentence rarely ends on: articles, prepositions, conjunctions, auxiliaries.
_DANGLING_WORDS = """a an the and or but so because if when while although though than that which who whose whom
    to of in on at by for with from about into onto over under between through after before until
    is are was were am be been being do does did have has had will would can could should shall may
    might must my your his her its our their this these those very really just um uh er like"""
_DANGLING = frozenset(_DANGLING_WORDS.split())


# What Whisper writes over the silence after an unfinished clause ("I think we should go to" heard as
# "I think we should go to you."): phrases of its training data's subtitles, not of the speaker.
_SILENCE_PHRASES = (("thank", "you"), ("thanks", "for", "watching"), ("bye",), ("you",))


def text_looks_complete(text: str) -> bool:
    """A cheap guess whether an STT transcript is a finished turn (for a turn predictor).

    Unfinished: empty, ending with a comma, dash or ellipsis, or with a word that needs a continuation.
    A phrase Whisper is known to invent over trailing silence ("you", "thank you") does not finish a
    clause that was unfinished without it: "go to you." is taken as "go to", and a real "send it to you"
    waits for the silence bound instead of the quick end. Everything else (including text with no final
    punctuation) counts as finished, since the hard silence bound still protects a person who trails off.
    """
    stripped = text.strip()
    if not stripped:
        return False
    if stripped.endswith((",", "-", "...", "…", ":", ";")):
        return False
    words = re.findall(r"[a-zA-Z']+", stripped.lower())
    if words and words[-1] in _DANGLING:
        return False
    for phrase in _SILENCE_PHRASES:
        before = words[: -len(phrase)]
        if tuple(words[-len(phrase) :]) == phrase and before and before[-1] in _DANGLING:
            return False
    return True

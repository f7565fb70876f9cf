"""What the daemon hears at each pause of a corpus clip, recorded once and replayed through any policy.

Everything the end-of-turn policy looks at is fixed by the audio, not by the policy: where the VAD
reports pauses and resumes, the transcript Whisper makes of the answer so far, Whisper's confidence,
the acoustic model's probability, the noise. So each clip is put once through the daemon's own
:class:`~voicemoded.audio.endpointing.Endpointer` (with a bound that never ends the turn), the embedded
Whisper engine and the end-of-turn model, in-process, and the features are cached as JSON. A policy is
then scored by :func:`replay`, which feeds them to the daemon's own
:class:`~voicemoded.audio.end_of_turn.EndOfTurn`: sweeps over thresholds cost nothing.

The verdict at a pause is ready after the STT and the model have run (measured here, on this CPU);
:func:`replay` judges cut-offs both with that delay and with the verdict ready at once (a faster
machine), and counts a cut-off if either cuts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from turn_corpus import Clip, pause_bucket

from voicemoded.audio.end_of_turn import EndOfTurn, TurnPolicy, TurnVerdict
from voicemoded.audio.endpointing import EndpointConfig, Endpointer
from voicemoded.audio.turn import ACOUSTIC_CHECK_S

RATE = 16_000
NEVER = TurnPolicy(bound_s=60.0, bound_max_s=60.0, unfinished_s=60.0, preamble_s=60.0)
"""Extraction hears every pause to the end of the clip: nothing ends the turn."""
DISPATCH_S = 0.01
"""Extra time from a verdict being made to the daemon acting on it (HTTP to the STT child, tasks)."""


@dataclass(frozen=True)
class PauseRecord:
    """One pause the endpointer reported, and what was heard at it."""

    voiced_end: float
    """Audio time of the end of the last voiced frame before the pause."""
    length: float | None
    """Last voiced frame to the next (None: the person did not go on within the clip)."""
    snr_db: float | None
    text: str
    probability: float | None
    avg_logprob: float | None
    no_speech_prob: float | None
    stt_s: float
    model_s: float

    def verdict(self) -> TurnVerdict:
        return TurnVerdict(
            self.text, probability=self.probability, avg_logprob=self.avg_logprob,
            no_speech_prob=self.no_speech_prob, payload=self.text,
        )  # fmt: skip

    @property
    def ready_s(self) -> float:
        """Silence after which the verdict is in hand: reported at ACOUSTIC_CHECK_S, then computed."""
        return ACOUSTIC_CHECK_S + max(self.stt_s, self.model_s) + DISPATCH_S


@dataclass(frozen=True)
class ClipFeatures:
    clip_id: str
    pauses: tuple[PauseRecord, ...]
    final_text: str
    """The final transcript by the final-transcript model (the same as the last pause's with tiny.en)."""
    final_s: float
    """How long that final transcription took (0 when the pause's transcript is reused)."""

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ClipFeatures:
        pauses = tuple(PauseRecord(**p) for p in data["pauses"])
        return cls(data["clip_id"], pauses, data["final_text"], data["final_s"])


@dataclass
class Hearing:
    """The parts that hear a clip: an STT ``transcribe(pcm) -> (text, avg_logprob, no_speech_prob)``,
    the end-of-turn model's ``probability(pcm)`` (None: no model) and an optional front end (noise
    suppression)."""

    transcribe: Callable[[bytes], tuple[str, float | None, float | None]]
    probability: Callable[[bytes], float] | None
    frontend: Callable[[bytes], bytes] | None = None
    tag: str = "tiny.en"
    """Names the combination in the cache."""


def _timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started


def extract(clip: Clip, hearing: Hearing) -> ClipFeatures:
    """Feed the clip frame by frame through the endpointer and hear each pause as the daemon would."""
    pcm = clip.load()
    if hearing.frontend is not None:
        pcm = hearing.frontend(pcm)
    config = EndpointConfig(early_end_s=ACOUSTIC_CHECK_S, turn=NEVER)
    ep = Endpointer(config)
    open_pause: dict[str, Any] | None = None
    records: list[dict[str, Any]] = []
    for at in range(0, len(pcm) - ep.frame_bytes + 1, ep.frame_bytes):
        for ev in ep.feed(pcm[at : at + ep.frame_bytes]):
            if ev.kind == "pause" and ep.last_voiced_end is not None:
                cut = min(at + ep.frame_bytes, round((ep.last_voiced_end + config.tail_s) * RATE) * 2)
                heard = pcm[:cut]
                (text, logprob, no_speech), stt_s = _timed(lambda h=heard: hearing.transcribe(h))
                probability, model_s = (None, 0.0)
                if hearing.probability is not None:
                    probability, model_s = _timed(lambda h=heard: hearing.probability(h))  # type: ignore[misc]
                open_pause = dict(
                    voiced_end=ep.last_voiced_end, length=None, snr_db=ep.snr_db, text=text,
                    probability=probability, avg_logprob=logprob, no_speech_prob=no_speech,
                    stt_s=stt_s, model_s=model_s,
                )  # fmt: skip
                records.append(open_pause)
            elif ev.kind == "resume" and open_pause is not None:
                open_pause["length"] = ev.pause_s
                open_pause = None
    pauses = tuple(PauseRecord(**r) for r in records)
    return ClipFeatures(clip.id, pauses, pauses[-1].text if pauses else "", 0.0)


def with_final(
    clips: list[Clip],
    feats: dict[str, ClipFeatures],
    transcribe: Callable[[bytes], tuple[str, float | None, float | None]],
    frontend: Callable[[bytes], bytes] | None,
    cache: Path,
    tag: str,
) -> dict[str, ClipFeatures]:
    """The features with the final transcript made again, by another model, over the whole answer as
    the recorder slices it (speech start - pre-roll to the last voiced frame + tail); cached."""
    config = EndpointConfig()
    out = dict(feats)
    for clip in clips:
        f = feats[clip.id]
        if not f.pauses:
            continue
        key = hashlib.sha256(f"{clip.sha256}:final:{tag}".encode()).hexdigest()[:20]
        path = cache / f"{clip.id}.{key}.json"
        if path.is_file():
            text, seconds = json.loads(path.read_text())
        else:
            pcm = clip.load() if frontend is None else frontend(clip.load())
            start = max(0, round((clip.speech_start_s - config.pre_roll_s) * RATE) * 2)
            end = round((f.pauses[-1].voiced_end + config.tail_s) * RATE) * 2
            (text, _, _), seconds = _timed(lambda pcm=pcm, start=start, end=end: transcribe(pcm[start:end]))
            path.write_text(json.dumps([text, seconds]))
        out[clip.id] = dataclasses.replace(f, final_text=text, final_s=seconds)
    return out


def cached_features(
    clips: list[Clip], hearing: Hearing, cache: Path, *, log: bool = True
) -> list[ClipFeatures]:
    """Features for every clip, extracted once per (clip audio, hearing) and kept in ``cache``."""
    cache.mkdir(parents=True, exist_ok=True)
    out = []
    started = time.monotonic()
    for n, clip in enumerate(clips, 1):
        key = hashlib.sha256(f"{clip.sha256}:{hearing.tag}".encode()).hexdigest()[:20]
        path = cache / f"{clip.id}.{key}.json"
        if path.is_file():
            out.append(ClipFeatures.from_json(json.loads(path.read_text())))
            continue
        features = extract(clip, hearing)
        path.write_text(json.dumps(features.to_json()))
        out.append(features)
        if log and n % 25 == 0:
            print(
                f"  heard {n}/{len(clips)} clips ({hearing.tag}, {time.monotonic() - started:.0f} s)",
                flush=True,
            )
    return out


@dataclass(frozen=True)
class Outcome:
    """How one clip's turn ended under one policy."""

    clip_id: str
    cut: bool
    cut_bucket: str | None
    """The pause-length bucket of the pause it was cut in ("natural" for a gap not in the script)."""
    held: bool
    """The turn did not end within the clip's tail (noise held it open)."""
    turn_over: float | None
    """Last voiced sample -> turn over (None when cut off)."""
    result: float | None
    """Last voiced sample -> result at the caller."""
    rule: str
    text: str


def _ends(feats: ClipFeatures, policy: TurnPolicy, instant: bool, recent: float) -> tuple[int, float, str] | None:
    """(pause index, silence, rule) where the turn ends; None when it never does within the clip.

    The daemon's own :class:`EndOfTurn` hears the pauses in order, each verdict arriving ``ready`` into
    its pause (at once, or as late as measured): before then the turn may end by the rule without it,
    and a verdict that would arrive after the person went on is never heard, as in the recorder.
    """
    eot = EndOfTurn(policy, recent_pause_s=recent)
    for i, record in enumerate(feats.pauses):
        eot.pause(i + 1, snr_db=record.snr_db)
        before = eot.decision
        ready = ACOUSTIC_CHECK_S if instant else record.ready_s
        # After the last pause the person stays silent beyond the clip: that pause always ends it.
        available = record.length if record.length is not None else float("inf")
        if ready >= before.silence_s:
            silence, rule = before.silence_s, before.rule
        elif ready < available and eot.hear(i + 1, record.verdict()):
            silence, rule = max(ready, eot.decision.silence_s), eot.decision.rule
        else:
            silence, rule = before.silence_s, before.rule
        if silence < available:
            return i, silence, rule
        if record.length is not None:
            eot.resume(record.length)
    return None


def _bucket(clip: Clip, voiced_end: float) -> str:
    for p in clip.pauses:
        if p.start_s - 0.3 <= voiced_end <= p.start_s + 0.15:
            return pause_bucket(p.seconds)
    return "natural"


def replay(clip: Clip, feats: ClipFeatures, policy: TurnPolicy, *, recent_pause_s: float = 0.0) -> Outcome:
    """The turn's end under ``policy``: cut off (if either verdict timing cuts), or its latencies."""
    last = clip.last_voiced_s
    measured = _ends(feats, policy, False, recent_pause_s)
    for end in (_ends(feats, policy, True, recent_pause_s), measured):
        if end is None:
            continue
        i, _, rule = end
        record = feats.pauses[i]
        # Cut off: the person went on after this pause, and what followed was the answer (not noise
        # that the VAD took for voice after the answer was over).
        if record.length is not None and record.voiced_end + record.length < last - 0.05:
            bucket = _bucket(clip, record.voiced_end)
            return Outcome(clip.id, True, bucket, False, None, None, rule, record.text)
    if measured is None:
        text = feats.pauses[-1].text if feats.pauses else ""
        return Outcome(clip.id, False, None, True, clip.duration_s - last, None, "held", text)
    i, silence, rule = measured
    record = feats.pauses[i]
    over = record.voiced_end + silence - last
    ready = record.voiced_end + record.ready_s - last
    result = max(over, ready)
    is_last = i == len(feats.pauses) - 1
    text = feats.final_text if is_last else record.text
    if is_last and feats.final_s > 0:
        result = over + feats.final_s  # a second model transcribes the whole answer after the end
    return Outcome(clip.id, False, None, False, over, result, rule, text)

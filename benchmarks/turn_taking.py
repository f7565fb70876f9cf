"""Turn-taking on a corpus of our own: cut-offs at thinking pauses, end-of-turn latency, transcript errors.

The corpus (``turn_corpus.py``: 5+ offline voices, 60+ answers of the kind people give a coding
assistant, pauses of 0-1.5 s after openers, fillers, markers, conjunctions, prepositions and complete
clauses, quiet and four noises at three SNRs) is split once, by phrasing, into a tuning half and a
test half (``turn_split.json``). Every figure this prints is on the half you name, the test half by
default; ``--tune`` searches thresholds on the tuning half only.

Each clip is heard once by the daemon's own endpointer, embedded Whisper and end-of-turn model
(``turn_features.py``, cached), then the policy is replayed over what was heard. Scores:

- cut-offs: answers whose turn ended inside one of their pauses, by the pause's length;
- latency: last voiced sample -> turn over, and -> result at the caller (median / p90 / worst);
- word error rate of the final transcript;
- VoiceMode 9.0.1's fixed rule (1.0 s of webrtcvad silence, then one transcription), emulated on the
  same clips, as the baseline.

``--sweep`` moves the quick-end threshold and writes the trade-off (cut-offs against median latency)
as an SVG plot.

Run: .venv/bin/python benchmarks/turn_taking.py [--half test] [--frontend off|on|ns,hpf] [--final base]
     [--tune] [--sweep docs/turn-taking-tradeoff.svg]
"""

from __future__ import annotations

import argparse
import dataclasses
import itertools
import statistics
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import turn_corpus
from turn_corpus import Clip
from turn_features import ClipFeatures, Hearing, Outcome, cached_features, replay, with_final
from turn_score import BUCKETS, fixed_rule, plot_svg, wer

from voicemoded.audio.end_of_turn import TurnPolicy


def whisper(name: str) -> Callable[[bytes], tuple[str, float | None, float | None]]:
    """The embedded Whisper engine in-process: text and its confidence, as the daemon's STT child gives."""
    from voicemoded.engines.server import default_models_dir
    from voicemoded.engines.transcript import confidence
    from voicemoded.engines.whisper import TranscribeOptions, WhisperEngine

    engine = WhisperEngine(name, default_models_dir())
    engine.load()

    def transcribe(pcm: bytes) -> tuple[str, float | None, float | None]:
        heard = engine.transcribe(pcm, TranscribeOptions(language="en"))
        c = confidence(heard)
        return heard.text, c.get("avg_logprob"), c.get("no_speech_prob")

    return transcribe


def hearing(frontend: str) -> Hearing:
    """The embedded Whisper engine (tiny.en at pauses) and the end-of-turn model, in-process."""
    from voicemoded.audio.processing import ProcessingConfig, process_clip
    from voicemoded.audio.turn import TurnModel, installed_model

    path = installed_model()
    model = TurnModel(path) if path is not None else None
    config = ProcessingConfig.parse(frontend)
    front = (lambda pcm: process_clip(pcm, config)) if config.enabled else None
    tag = f"tiny.en+{'model' if model else 'nomodel'}+{config.setting}+final:tiny.en"
    return Hearing(
        transcribe=whisper("tiny.en"),
        probability=model.probability if model is not None else None,
        frontend=front,
        tag=tag,
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def longest_pause(clip: Clip) -> float:
    return max((p.seconds for p in clip.pauses), default=0.0)


def report(title: str, clips: list[Clip], outcomes: list[Outcome]) -> dict[str, float]:
    """Print one table; return the headline figures (for the sweep and the tuner)."""
    by_id = {c.id: c for c in clips}
    print(f"\n== {title}: {len(outcomes)} answers")
    line = "   cut off, by the longest pause in the answer: "
    cells = []
    for bucket, lo, hi in BUCKETS:
        group = [o for o in outcomes if lo < longest_pause(by_id[o.clip_id]) <= hi]
        if group:
            cells.append(f"{bucket} {sum(o.cut for o in group)}/{len(group)}")
    print(line + ", ".join(cells))
    kept = [o for o in outcomes if not o.cut and not o.held]
    over = [o.turn_over for o in kept if o.turn_over is not None]
    result = [o.result for o in kept if o.result is not None]
    held = sum(o.held for o in outcomes)
    figures: dict[str, float] = {
        "cut_le_1": float(sum(o.cut for o in outcomes if longest_pause(by_id[o.clip_id]) <= 1.0)),
        "n_le_1": float(sum(longest_pause(by_id[o.clip_id]) <= 1.0 for o in outcomes)),
        "cut_12": float(sum(o.cut for o in outcomes if 1.0 < longest_pause(by_id[o.clip_id]) <= 1.3)),
        "n_12": float(sum(1.0 < longest_pause(by_id[o.clip_id]) <= 1.3 for o in outcomes)),
        "held": float(held),
    }
    if over:
        figures |= {"median": statistics.median(over), "p90": pct(over, 0.9), "worst": max(over)}
        print(
            f"   last voiced sample -> turn over: median {figures['median']:.2f} s, p90 {figures['p90']:.2f} s,"
            f" worst {figures['worst']:.2f} s   (held open past the clip: {held})"
        )
    if result:
        figures["result_median"] = statistics.median(result)
        print(
            f"   last voiced sample -> result:    median {statistics.median(result):.2f} s,"
            f" p90 {pct(result, 0.9):.2f} s, worst {max(result):.2f} s"
        )
    errors = [wer(by_id[o.clip_id].text, o.text) for o in outcomes if not o.cut]
    if errors:
        figures["wer"] = sum(e * w for e, w in errors) / max(1, sum(w for _, w in errors))
        print(
            f"   word error rate of the final transcript (answers not cut off): {100 * figures['wer']:.1f} %"
        )
    rules = Counter(o.rule for o in outcomes)
    print("   ended by: " + ", ".join(f"{k} {v}" for k, v in rules.most_common()))
    return figures


def explain(clips: list[Clip], feats: dict[str, ClipFeatures], outcomes: list[Outcome]) -> None:
    """Each clip's pauses as heard, and how its turn ended."""
    for clip, outcome in zip(clips, outcomes, strict=True):
        mark = "CUT " if outcome.cut else "HELD" if outcome.held else "    "
        over = "" if outcome.turn_over is None else f" {outcome.turn_over:.2f} s"
        print(f"   {mark} {clip.id} [{clip.voice} {clip.noise} {clip.snr_db}] {outcome.rule}{over}: {clip.text!r}")
        for p in feats[clip.id].pauses:
            length = "end" if p.length is None else f"{p.length:.2f}"
            snr = "-" if p.snr_db is None else f"{p.snr_db:.0f}"
            prob = "-" if p.probability is None else f"{p.probability:.2f}"
            lp = "-" if p.avg_logprob is None else f"{p.avg_logprob:.2f}"
            ns = "-" if p.no_speech_prob is None else f"{p.no_speech_prob:.2f}"
            print(
                f"        at {p.voiced_end:5.2f} pause {length:>4} snr {snr:>3} p {prob} lp {lp} ns {ns}"
                f" stt {p.stt_s:.2f}: {p.text!r}"
            )


def split(clips: Iterable[Clip]) -> tuple[list[Clip], list[Clip]]:
    quiet, noisy = [], []
    for c in clips:
        (quiet if c.noise == "quiet" else noisy).append(c)
    return quiet, noisy


def score(clips: list[Clip], feats: dict[str, ClipFeatures], policy: TurnPolicy) -> list[Outcome]:
    return [replay(c, feats[c.id], policy) for c in clips]


GRID = {
    "bound_s": (1.2, 1.3, 1.4),
    "quick_end_s": (0.5, 0.6, 0.7, 0.8, 0.9, 1.0, 1.1, 1.2),
    "words_end_s": (0.9, 1.1, 1.2),
    "finished_probability": (0.5, 0.7, 0.9),
    "noisy_snr_db": (20.0, 25.0),
}
"""The thresholds the tuner moves (every other one keeps its documented default)."""


def tune(clips: list[Clip], feats: dict[str, ClipFeatures], base: TurnPolicy) -> TurnPolicy:
    """The fastest policy on the tuning half with no cut-off at pauses <= 1.0 s and at most half the
    answers with a 1.2 s pause cut off (grid search; fastest = median latency + a tenth of the p90)."""
    best: tuple[float, TurnPolicy] | None = None
    longest = {c.id: longest_pause(c) for c in clips}
    names = list(GRID)
    for values in itertools.product(*(GRID[n] for n in names)):
        policy = dataclasses.replace(base, **dict(zip(names, values, strict=True)))
        if policy.words_end_s > policy.bound_s:
            continue
        outcomes = score(clips, feats, policy)
        if any(o.cut and longest[o.clip_id] <= 1.0 for o in outcomes):
            continue
        at_12 = [o for o in outcomes if 1.0 < longest[o.clip_id] <= 1.3]
        if sum(o.cut for o in at_12) > len(at_12) / 2:
            continue
        over = [o.turn_over for o in outcomes if o.turn_over is not None and not o.held]
        key = statistics.median(over) + 0.1 * pct(over, 0.9)
        if best is None or key < best[0]:
            best = (key, policy)
    if best is None:
        print("no policy in the grid avoids every cut-off at pauses <= 1.0 s on the tuning half")
        return base
    return best[1]


def sweep(clips: list[Clip], feats: dict[str, ClipFeatures], base: TurnPolicy, path: Path) -> None:
    """Cut-offs against median latency as the quick-end threshold moves; writes an SVG plot."""
    points = []
    longest = {c.id: longest_pause(c) for c in clips}
    print("\n== trade-off: the quick end's silence against cut-offs (pauses <= 1.0 s) and median latency")
    for step in range(3, 17):
        quick = step / 10
        policy = dataclasses.replace(
            base, quick_end_s=quick, words_end_s=max(quick, min(base.bound_s, quick + 0.2))
        )
        outcomes = score(clips, feats, policy)
        cut = sum(o.cut for o in outcomes if longest[o.clip_id] <= 1.0)
        n = sum(longest[o.clip_id] <= 1.0 for o in outcomes)
        over = [o.turn_over for o in outcomes if o.turn_over is not None and not o.held]
        median = statistics.median(over) if over else float("nan")
        points.append((quick, 100 * cut / max(1, n), median))
        print(
            f"   quick end {quick:.1f} s: cut off {cut}/{n} ({100 * cut / max(1, n):.1f} %), median {median:.2f} s"
        )
    plot_svg(points, base, path)
    print(f"   plot: {path}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--corpus", type=Path, default=None, help="corpus folder (generated when missing)")
    parser.add_argument("--half", choices=("test", "tune"), default="test")
    parser.add_argument("--frontend", default="off", help="microphone processing: off, on, or ns,hpf,agc")
    parser.add_argument("--final", default="tiny.en", help="Whisper model for the final transcript")
    parser.add_argument("--tune", action="store_true", help="search thresholds on the tuning half")
    parser.add_argument("--sweep", type=Path, default=None, help="write the trade-off plot here")
    parser.add_argument("--limit", type=int, default=None, help="only the first N clips (a quick look)")
    parser.add_argument("--verbose", action="store_true", help="print what was heard in each clip")
    args = parser.parse_args(argv)

    folder = args.corpus or turn_corpus.default_out()
    if not (folder / "manifest.jsonl").is_file():
        print(f"generating the corpus into {folder} ...", flush=True)
        turn_corpus.generate(folder)
    clips = turn_corpus.load_corpus(folder)
    clips = clips[: args.limit] if args.limit else clips
    started = time.monotonic()
    hear = hearing(args.frontend)
    half = [c for c in clips if c.half == args.half]
    # The tuning half is heard only when tuning: a test-half report never needs it.
    heard = clips if args.tune else half
    feats = {f.clip_id: f for f in cached_features(heard, hear, folder / "features")}
    print(f"heard {len(heard)} clips in {time.monotonic() - started:.0f} s ({hear.tag})")
    if args.final != "tiny.en":
        tag = f"{args.final}+{hear.tag}"
        feats = with_final(half, feats, whisper(args.final), hear.frontend, folder / "features", tag)
        print(f"final transcripts by Whisper {args.final}")

    policy = TurnPolicy()
    if args.tune:
        tuning = [c for c in clips if c.half == "tune"]
        policy = tune(tuning, feats, policy)
        print(f"\ntuned on {len(tuning)} clips of the tuning half: {policy}")
        report("tuning half, tuned policy", tuning, score(tuning, feats, policy))

    quiet, noisy = split(half)
    print(f"\npolicy: {policy}")
    for name, group in (("quiet", quiet), ("noise", noisy)):
        outcomes = score(group, feats, policy)
        report(f"{args.half} half, {name}, voicemode", group, outcomes)
        if args.verbose:
            explain(group, feats, outcomes)
    baseline = fixed_rule(half, folder / "features", hear)
    for name, group in (("quiet", quiet), ("noise", noisy)):
        ids = {c.id for c in group}
        report(
            f"{args.half} half, {name}, VoiceMode's fixed 1.0 s rule",
            group,
            [o for o in baseline if o.clip_id in ids],
        )
    if args.sweep:
        sweep(half, feats, policy, args.sweep)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

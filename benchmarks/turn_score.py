"""Scoring helpers of the turn-taking benchmark: word error rate, VoiceMode's fixed rule, the plot."""

from __future__ import annotations

import hashlib
import json
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from turn_corpus import Clip
    from turn_features import Hearing, Outcome

    from voicemoded.audio.end_of_turn import TurnPolicy

BUCKETS = (
    ("none", -1.0, 0.0),
    ("<=0.5", 0.0, 0.5),
    ("0.5-0.8", 0.5, 0.8),
    ("0.8-1.0", 0.8, 1.0),
    ("1.2", 1.0, 1.3),
    ("1.5", 1.3, 9.0),
)
"""(name, above, up to): answers grouped by their longest internal pause, in seconds."""

_ONES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
         "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen")  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")
_NUMBER_WORDS = {*_ONES, *_TENS[2:], "hundred", "thousand", "million"}
FILLERS = frozenset({"um", "umm", "uh", "uhm", "hmm", "hm", "mm", "mhm", "er", "erm", "ah"})
"""Dropped from both sides: tiny.en leaves most of them out, and they are not what the answer says."""
_SAME = {"ok": "okay", "mb": "megabytes", "alright": "all right", "readme": "read me"}


def spell(n: int) -> list[str]:
    """An integer as the corpus writes it, without "and" (which :func:`words` drops between numbers)."""
    if n < 20:
        return [_ONES[n]]
    if n < 100:
        return [_TENS[n // 10]] + ([_ONES[n % 10]] if n % 10 else [])
    for size, name in ((1_000_000, "million"), (1000, "thousand"), (100, "hundred")):
        if n >= size:
            rest = spell(n % size) if n % size else []
            return [*spell(n // size), name, *rest]
    raise AssertionError(n)


def _number(match: re.Match[str]) -> str:
    whole, _, fraction = match.group(0).replace(",", "").partition(".")
    out = spell(int(whole)) if len(whole) < 10 else list(whole)
    if fraction:  # "2.1" and "3.11" are read "two point one", "three eleven": the point is dropped
        out += spell(int(fraction)) if len(fraction) < 4 else [_ONES[int(d)] for d in fraction]
    return f" {' '.join(out)} "


def words(text: str) -> list[str]:
    """Lower-case words with numbers spelled, "config.py" as "config dot py", no punctuation or fillers."""
    text = text.lower().replace("\u2019", "'")
    text = re.sub(r"(?<![\w.])\d[\d,]*(?:\.\d+)?", _number, text)
    text = re.sub(r"(?<=[a-z])\.(?=[a-z])", " dot ", text)
    text = re.sub(r"[^a-z0-9' ]+", " ", text)
    tokens = [t.strip("'") for t in text.split()]
    tokens = [w for t in tokens if t for w in _SAME.get(t, t).split() if w not in FILLERS]
    # "eight thousand and eighty", "two point one": the joiners between number words are not counted.
    return [
        t
        for i, t in enumerate(tokens)
        if not (
            t in ("and", "point")
            and 0 < i < len(tokens) - 1
            and tokens[i - 1] in _NUMBER_WORDS
            and tokens[i + 1] in _NUMBER_WORDS
        )
    ]


def edits(ref: list[str], hyp: list[str]) -> int:
    """Word-level Levenshtein distance (substitutions, insertions, deletions)."""
    row = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, 1):
        prev, row[0] = row[0], i
        for j, h in enumerate(hyp, 1):
            prev, row[j] = row[j], min(row[j] + 1, row[j - 1] + 1, prev + (r != h))
    return row[-1]


def wer(reference: str, hypothesis: str) -> tuple[float, int]:
    """(word error rate, reference words) over :func:`words`."""
    ref = words(reference)
    return edits(ref, words(hypothesis)) / max(1, len(ref)), len(ref)


VOICEMODE_SILENCE_S = 1.0
VOICEMODE_FRAME_MS = 30
VOICEMODE_AGGRESSIVENESS = 2


def fixed_rule(clips: list[Clip], cache: Path, hearing: Hearing) -> list[Outcome]:
    """VoiceMode 9.0.1's end of turn, emulated: webrtcvad (mode 2, 30 ms frames) with no noise gate;
    the turn ends at the first 1.0 s of unvoiced frames after speech began; then one transcription."""
    import webrtcvad
    from turn_features import Outcome

    out = []
    frame = 16_000 * VOICEMODE_FRAME_MS // 1000 * 2
    need = round(VOICEMODE_SILENCE_S * 1000 / VOICEMODE_FRAME_MS)
    for clip in clips:
        key = hashlib.sha256(f"{clip.sha256}:voicemode-rule:{hearing.tag}".encode()).hexdigest()[:20]
        path = cache / f"{clip.id}.{key}.json"
        if path.is_file():
            out.append(Outcome(**json.loads(path.read_text())))
            continue
        pcm = clip.load()
        if hearing.frontend is not None:
            pcm = hearing.frontend(pcm)
        vad = webrtcvad.Vad(VOICEMODE_AGGRESSIVENESS)
        started, quiet, end = False, 0, None
        for n, at in enumerate(range(0, len(pcm) - frame + 1, frame)):
            voiced = vad.is_speech(pcm[at : at + frame], 16_000)
            started = started or voiced
            quiet = 0 if voiced else quiet + 1
            if started and quiet >= need:
                end = (n + 1) * frame / 2 / 16_000
                break
        if end is None:
            outcome = Outcome(
                clip.id, False, None, True, clip.duration_s - clip.last_voiced_s, None, "held", ""
            )
        else:
            cut = end < clip.last_voiced_s  # the recording stopped while the person was still talking
            t0 = time.perf_counter()
            text, _, _ = hearing.transcribe(pcm[: round(end * 16_000) * 2])
            stt = time.perf_counter() - t0
            over = end - clip.last_voiced_s
            outcome = Outcome(
                clip.id, cut, "fixed" if cut else None, False, None if cut else over,
                None if cut else over + stt, "1.0 s silence", text,
            )  # fmt: skip
        path.write_text(json.dumps(outcome.__dict__))
        out.append(outcome)
    return out


def plot_svg(points: list[tuple[float, float, float]], policy: TurnPolicy, path: Path) -> None:
    """A small dependency-free line plot: x = median latency, y = cut-off rate, one dot per threshold."""
    w, h, m = 560, 360, 56
    xs = [p[2] for p in points]
    ys = [p[1] for p in points]
    x0, x1 = min(0.4, min(xs)), max(1.6, max(xs))
    y1 = max(10.0, max(ys) * 1.1)

    def sx(x: float) -> float:
        return m + (x - x0) / (x1 - x0) * (w - 2 * m)

    def sy(y: float) -> float:
        return h - m - y / y1 * (h - 2 * m)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="11">',
        f'<rect width="{w}" height="{h}" fill="white"/>',
        f'<line x1="{m}" y1="{h - m}" x2="{w - m}" y2="{h - m}" stroke="black"/>',
        f'<line x1="{m}" y1="{m}" x2="{m}" y2="{h - m}" stroke="black"/>',
        f'<text x="{w / 2}" y="{h - 16}" text-anchor="middle">median end-of-turn latency (s), test half</text>',
        f'<text x="16" y="{h / 2}" transform="rotate(-90 16 {h / 2})" text-anchor="middle">'
        "answers cut off at pauses &lt;= 1.0 s (%)</text>",
        f'<text x="{w / 2}" y="20" text-anchor="middle">moving the quick end (bound {policy.bound_s:.1f} s)</text>',
    ]
    for i in range(6):
        x = x0 + i * (x1 - x0) / 5
        parts.append(f'<text x="{sx(x):.0f}" y="{h - m + 14}" text-anchor="middle">{x:.1f}</text>')
        y = i * y1 / 5
        parts.append(f'<text x="{m - 6}" y="{sy(y) + 4:.0f}" text-anchor="end">{y:.0f}</text>')
    line = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for _, y, x in points)
    parts.append(f'<polyline points="{line}" fill="none" stroke="#3366cc" stroke-width="2"/>')
    for q, y, x in points:
        colour = "#cc3333" if abs(q - policy.quick_end_s) < 1e-6 else "#3366cc"
        parts.append(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="3.5" fill="{colour}"/>')
        parts.append(f'<text x="{sx(x) + 5:.1f}" y="{sy(y) - 5:.1f}">{q:.1f}</text>')
    parts.append("</svg>")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts) + "\n")

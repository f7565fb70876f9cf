"""Word error rate: how far a transcript is from what was said, as a listener would write both down."""

from __future__ import annotations

import re
from collections.abc import Sequence

_ONES = [
    "zero",
    "one",
    "two",
    "three",
    "four",
    "five",
    "six",
    "seven",
    "eight",
    "nine",
    "ten",
    "eleven",
    "twelve",
    "thirteen",
    "fourteen",
    "fifteen",
    "sixteen",
    "seventeen",
    "eighteen",
    "nineteen",
]
_TENS = ["_", "_", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety"]


def number_words(n: int) -> str:
    if n < 20:
        return _ONES[n]
    if n < 100:
        return _TENS[n // 10] + ("" if n % 10 == 0 else " " + _ONES[n % 10])
    if n < 1000:
        rest = n % 100
        return _ONES[n // 100] + " hundred" + ("" if rest == 0 else " " + number_words(rest))
    if n < 1_000_000:
        rest = n % 1000
        return number_words(n // 1000) + " thousand" + ("" if rest == 0 else " " + number_words(rest))
    return " ".join(_ONES[int(d)] for d in str(n))


def normalise(text: str) -> list[str]:
    """Lowercase, numbers spelled out, punctuation gone: the words a listener would write down."""
    text = text.lower().replace("-", " ")
    text = re.sub(r"(\d),(\d{3})", r"\1\2", text)
    text = re.sub(r"\d+", lambda m: f" {number_words(int(m.group()))} ", text)
    text = re.sub(r"[^a-z' ]+", " ", text).replace("'", "")
    return text.split()


def edit_rate(ref: Sequence[str], hyp: Sequence[str]) -> float:
    """Edits (insertions, deletions, substitutions) per reference item."""
    if not ref:
        return 0.0 if not hyp else 1.0
    prev = list(range(len(hyp) + 1))
    for i, r in enumerate(ref, start=1):
        cur = [i] + [0] * len(hyp)
        for j, h in enumerate(hyp, start=1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (r != h))
        prev = cur
    return prev[-1] / len(ref)


def word_error_rate(reference: str, hypothesis: str) -> float:
    return edit_rate(normalise(reference), normalise(hypothesis))


def character_error_rate(reference: str, hypothesis: str) -> float:
    """Edits per reference character, punctuation and spaces left out: the error rate of a language
    written without spaces between words (Japanese, Chinese)."""
    ref, hyp = (re.sub(r"[\W_]+", "", t) for t in (reference, hypothesis))
    return edit_rate(ref, hyp)


def japanese_reading(text: str) -> str:
    """The text as it is read, in katakana: Whisper writes 駅 or えき for the same word, as people do."""
    import pyopenjtalk  # comes with the Japanese reader of the Kokoro engine (pyopenjtalk-plus)

    return str(pyopenjtalk.g2p(text, kana=True))


def error_rate(language: str, reference: str, hypothesis: str) -> float:
    """Word error rate; for Japanese the character error rate of the readings."""
    if language == "ja":
        return character_error_rate(japanese_reading(reference), japanese_reading(hypothesis))
    if language == "zh":
        return character_error_rate(reference, hypothesis)
    return word_error_rate(reference, hypothesis)

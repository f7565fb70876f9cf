"""Cutting text into sentences for streaming synthesis.

The first sentence decides the time to first audio, so the cut is made eagerly at sentence ends and,
for run-on sentences, at clause marks once a piece is long enough to sound whole. Common abbreviations
("Dr.", "e.g.") and decimals ("3.5") are not sentence ends.
"""

from __future__ import annotations

import re

_ABBREVIATIONS = frozenset(
    [
        "mr",
        "mrs",
        "ms",
        "dr",
        "prof",
        "sr",
        "jr",
        "st",
        "vs",
        "etc",
        "e.g",
        "i.e",
        "approx",
        "no",
        "fig",
        "inc",
        "ltd",
        "co",
        "corp",
        "mt",
        "ft",
        "jan",
        "feb",
        "mar",
        "apr",
        "jun",
        "jul",
        "aug",
        "sep",
        "sept",
        "oct",
        "nov",
        "dec",
    ]
)
_END = re.compile(r"([.!?…]+[\"')\]]*)(\s+|$)|([\u3002\uff01\uff1f]+[\u300d\u300f\uff09]*)\s*|(\n\s*\n|\n)")
"""A sentence end: Latin marks followed by a space (not "3.5"), the CJK full stop, exclamation and
question marks (no space follows them, a closing bracket may), or a line break."""
_CLAUSE = re.compile(r"(?<=[,;:—])\s+")

MAX_SENTENCE_CHARS = 300
"""Longer pieces are cut at clause marks: long inputs make both engines slower per character."""


def split_sentences(text: str, max_chars: int = MAX_SENTENCE_CHARS) -> list[str]:
    """Sentences of ``text`` in order, stripped, none empty; joining them loses only whitespace."""
    sentences: list[str] = []
    start = 0
    for match in _END.finditer(text):
        mark = 1 if match.group(1) else 3 if match.group(3) else 0
        end = match.end(mark) if mark else match.start()
        if match.group(1) and _is_abbreviation(text, match.start(1)):
            continue
        piece = text[start:end].strip()
        if piece:
            sentences.extend(_cut_long(piece, max_chars))
        start = match.end()
    tail = text[start:].strip()
    if tail:
        sentences.extend(_cut_long(tail, max_chars))
    return sentences


def _is_abbreviation(text: str, dot: int) -> bool:
    if text[dot] != ".":
        return False
    word = re.search(r"([A-Za-z.]+)$", text[:dot])
    if word is None:
        return False
    token = word.group(1).lower().strip(".")
    return token in _ABBREVIATIONS or "." in token or (len(token) == 1 and token.isalpha())


def _cut_long(sentence: str, max_chars: int) -> list[str]:
    if len(sentence) <= max_chars:
        return [sentence]
    pieces: list[str] = []
    current = ""
    for clause in _CLAUSE.split(sentence):
        if current and len(current) + 1 + len(clause) > max_chars:
            pieces.append(current)
            current = clause
        else:
            current = f"{current} {clause}" if current else clause
    if current:
        pieces.append(current)
    out: list[str] = []
    for piece in pieces:
        while len(piece) > max_chars:
            cut = piece.rfind(" ", 0, max_chars)
            cut = cut if cut > 0 else max_chars
            out.append(piece[:cut].strip())
            piece = piece[cut:].strip()
        if piece:
            out.append(piece)
    return out


_SCRIPTS = (
    (re.compile(r"[\u3040-\u30ff\u31f0-\u31ff\uff66-\uff9f]"), "ja"),  # hiragana, katakana
    (re.compile(r"[\uac00-\ud7af\u1100-\u11ff]"), "ko"),  # hangul
    (re.compile(r"[\u4e00-\u9fff]"), "zh"),  # han without kana: Chinese
    (re.compile(r"[\u0400-\u04ff]"), "ru"),
    (re.compile(r"[\u0370-\u03ff]"), "el"),
)


def script_language(text: str) -> str:
    """The language a text's script gives away (``ja`` for kana, ``ko`` for hangul, …), or "".

    Latin script is written in too many languages to tell, so it gives "": the caller's language decides.
    """
    for pattern, language in _SCRIPTS:
        if pattern.search(text):
            return language
    return ""

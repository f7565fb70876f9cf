"""Does a transcript read as a finished answer? A small grammar of continuation, not a list of sentences.

A transcript made at a pause is one of four things, and only the last may end a turn quickly:

- ``EMPTY``: no words (noise, a cough, Whisper heard nothing);
- ``UNFINISHED``: the words cannot stop here. The last word needs a continuation (an article, a
  preposition, a conjunction or subordinator, an auxiliary after a noun, a filler), or the punctuation
  Whisper wrote says the voice went on (a comma, a dash, an ellipsis, a colon);
- ``PREAMBLE``: everything said so far is what people say *before* an answer: a thinking opener
  ("okay", "so", "let me think"), a filler ("um"), an acknowledgement ("yes", "sounds good") or a
  discourse marker ("actually", "I mean"). It is often a whole answer ("Yes."), but as often the person
  goes on after a pause, so it must not end the turn quickly;
- ``COMPLETE``: a clause that can stand on its own.

The word classes are closed classes of English grammar (there are only so many prepositions), so they
generalise to answers never heard. Words Whisper is known to invent over trailing silence ("you",
"thank you") are ignored after an unfinished clause: "go to you." reads as "go to".
"""

from __future__ import annotations

import re
from enum import StrEnum


class TextState(StrEnum):
    EMPTY = "empty"
    UNFINISHED = "unfinished"
    PREAMBLE = "preamble"
    COMPLETE = "complete"


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


ARTICLES = _words("a an the my your his her its our their every each another some any no")
"""Determiners that need a noun after them ("no" and "some" as whole answers are handled as preamble)."""
PREPOSITIONS = _words(
    """to of in on at by for with from about into onto over under between through after before until
    like as than via per without within across against along around toward towards upon beside"""
)
CONJUNCTIONS = _words(
    """and or but nor because if when while although though unless whether since whereas so which
    whom whose plus also"""
)
AUXILIARIES = _words(
    """is are was were am be been being do does did have has had will would can could should shall may
    might must gonna wanna gotta let's lets"""
)
FILLERS = _words("um uh er erm hmm hm mm mhm ah eh uhm umm uhh")
PRONOUNS = _words("i you he she it we they that there this those these which what who one")
"""Subjects after which an auxiliary can end a clause ("yes, it is", "I think we can")."""

PREAMBLE_WORDS = _words(
    """okay ok alright right so well yes yeah yep yup no nope nah sure hmm um uh er erm hm mm mhm ah oh
    eh actually basically honestly anyway anyways wait now then first great good perfect fine cool
    thanks thank you sounds looks that works correct exactly absolutely definitely hey hi hello
    mean know see think let me hold on question sorry maybe i"""
)
"""Words a preamble is made of: openers, fillers, acknowledgements, discourse markers. A transcript all
of whose words are among these ("okay so", "yes sounds good", "hmm let me think", "I mean") says only
that an answer is coming."""
PREAMBLE_MAX_WORDS = 5
"""Longer runs of these words are a real answer ("yes I think that works fine thanks")."""

TRAILING_MARKERS = (("i", "mean"), ("you", "know"), ("like",), ("so",), ("well",), ("basically",))
"""Discourse markers that, last, announce more ("the problem is, I mean")."""
CONTINUING_PAIRS = (
    ("and", "then"), ("but", "then"), ("so", "then"), ("let", "me"), ("i", "think"),
    ("me", "think"), ("me", "see"), ("i", "guess"),
)  # fmt: skip
"""Two-word endings that need more: "... and then", "let me", and the thinking phrases ("..., let me
think", "..., let me see"), which end a clause only when they are all that was said."""

SILENCE_PHRASES = (("thank", "you"), ("thanks", "for", "watching"), ("bye",), ("you",))
"""What Whisper writes over the silence after an unfinished clause: its training subtitles, not the
speaker."""

_CONTINUING_PUNCTUATION = (",", "-", "\u2013", "\u2014", "...", "\u2026", ":", ";")
"""A comma, hyphen, en or em dash, ellipsis, colon or semicolon: Whisper heard the voice go on."""
_WORD = re.compile(r"[a-z0-9']+")
_SPLIT_WORDS = {("all", "right"): "alright", ("o", "k"): "okay", ("uh", "huh"): "mhm"}


def words_of(text: str) -> list[str]:
    """Lower-case words (digits count: "version 2" ends on a word)."""
    words = _WORD.findall(text.lower().replace("\u2019", "'"))
    for i in range(len(words) - 1, 0, -1):  # one word however it is spelt: "all right", "o k"
        if (words[i - 1], words[i]) in _SPLIT_WORDS:
            words[i - 1 : i + 1] = [_SPLIT_WORDS[(words[i - 1], words[i])]]
    return words


def ends_unfinished(words: list[str]) -> bool:
    """Whether the last word(s) need a continuation."""
    if not words:
        return False
    last = words[-1]
    if last in ARTICLES - {"no", "some", "any"} or last in PREPOSITIONS or last in FILLERS:
        return True
    if last in CONJUNCTIONS and not (last == "so" and len(words) == 1):
        return True
    if last in AUXILIARIES:
        before = words[-2] if len(words) > 1 else ""
        return before not in PRONOUNS and before not in ("not", "yes", "no")
    if any(tuple(words[-len(p) :]) == p for p in CONTINUING_PAIRS + TRAILING_MARKERS):
        return not _all_preamble(words)  # "I mean" alone is a preamble; "the port is, I mean" goes on
    return False


def _all_preamble(words: list[str]) -> bool:
    return 0 < len(words) <= PREAMBLE_MAX_WORDS and all(w in PREAMBLE_WORDS for w in words)


def _drop_invented_tail(words: list[str]) -> list[str]:
    """Whisper's "you" / "thank you" over silence after an unfinished clause: not the speaker's words."""
    for phrase in SILENCE_PHRASES:
        before = words[: -len(phrase)]
        if tuple(words[-len(phrase) :]) == phrase and before and ends_unfinished(before):
            return before
    return words


def text_state(text: str) -> TextState:
    """Classify a transcript made at a pause (see the module docstring)."""
    stripped = text.strip()
    words = _drop_invented_tail(words_of(stripped))
    if not words:
        return TextState.EMPTY
    if stripped.endswith(_CONTINUING_PUNCTUATION):
        return TextState.UNFINISHED
    if _all_preamble(words):
        return TextState.PREAMBLE
    return TextState.UNFINISHED if ends_unfinished(words) else TextState.COMPLETE


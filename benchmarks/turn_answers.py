"""What the turn-taking corpus says and who says it: answers with pause points, voices, room talk, split.

Each answer is a script whose segments are separated by ``|kind|``, the kind naming what the speaker
paused after: ``"Set the timeout to |preposition| thirty seconds."`` is spoken as "Set the timeout to,",
a pause, then "thirty seconds.". An end-of-turn detector is scored per kind, because the kinds differ
in how obviously unfinished they are: after "to" or "the" a sentence cannot end, after "um" it rarely
does, while after "Okay" or a complete clause ("Rename the function.") it well might, so those two are
sometimes spoken with final punctuation and sound finished (the hard case). Answers without a pause
point measure how quickly a finished turn is let go.

Words are written as they are spoken ("config dot py", "thirty seconds"): the text is the reference
transcript, and every voice reads it the same way. An answer's id names its phrasing and is what the
tune/test split is made of, so an id never changes once it is in ``turn_split.json``: the split is
read from there, never redrawn, so a detector tuned on one half is always tested on phrasings it has
not heard. ``turn_corpus.py`` turns all this into audio.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

PAUSE_KINDS = (
    "opener",
    "filler",
    "marker",
    "conjunction",
    "preposition",
    "article",
    "determiner",
    "complete",
)
"""What a pause point follows. ``article`` is a/an/the; ``determiner`` is my/this/your/that/every/our."""

FINISHABLE = frozenset({"opener", "complete"})
"""Kinds whose segment is sometimes synthesized with a full stop, so the pause sounds like an ending."""

SPLIT_PATH = Path(__file__).resolve().with_name("turn_split.json")
SPLIT_SEED = 20_261_201
HALVES = ("tune", "test")

SHORT_WORDS = 3
"""An answer of at most this many words and no pause point is a short answer ("No, not yet.")."""

_MARK = re.compile(r"\s*\|(\w+)\|\s*")


@dataclass(frozen=True)
class Answer:
    """One phrasing: its segments and, for each gap between two of them, the kind of pause point."""

    id: str
    segments: tuple[str, ...]
    after: tuple[str, ...]
    """``after[i]`` is the kind of the pause between ``segments[i]`` and ``segments[i + 1]``."""

    @property
    def words(self) -> int:
        return sum(len(s.split()) for s in self.segments)

    @property
    def short(self) -> bool:
        return not self.after and self.words <= SHORT_WORDS

    @property
    def stratum(self) -> str:
        """The group the split balances: short, none (finished, no pause), or the first pause's kind."""
        if self.short:
            return "short"
        return self.after[0] if self.after else "none"


def parse(answer_id: str, script: str) -> Answer:
    """An answer from its ``|kind|`` script; a typo in a kind or the ending fails at import, not later."""
    parts = _MARK.split(script.strip())
    segments, after = tuple(parts[0::2]), tuple(parts[1::2])
    unknown = [k for k in after if k not in PAUSE_KINDS]
    if unknown:
        raise ValueError(f"answer {answer_id!r}: unknown pause kind(s) {unknown}; use one of {PAUSE_KINDS}")
    if any(not s for s in segments) or segments[-1][-1] not in ".?!":
        raise ValueError(f"answer {answer_id!r}: empty segment or no final punctuation in {script!r}")
    if any(s[-1] in ".,?!" for s in segments[:-1]):
        raise ValueError(f"answer {answer_id!r}: a segment before a pause carries its own punctuation")
    return Answer(id=answer_id, segments=segments, after=after)


_SCRIPTS: tuple[tuple[str, str], ...] = (
    # Short answers: one to three words, finished.
    ("yes", "Yes."),
    ("no", "No."),
    ("no-not-yet", "No, not yet."),
    ("sounds-good", "Sounds good."),
    ("go-ahead", "Go ahead."),
    ("perfect", "Perfect."),
    ("not-quite", "Not quite."),
    ("do-it", "Do it."),
    ("thats-right", "That's right."),
    ("keep-both", "Keep both."),
    # Finished answers without a pause point.
    ("open-config-timeout", "Open config dot py and change the timeout to thirty seconds."),
    ("rename-load-settings", "Rename the helper to load settings and update every caller."),
    ("rerun-verbose", "Run the unit tests again with the verbose flag."),
    ("delete-migration", "Delete the old migration, we don't need it anymore."),
    ("show-diff", "Can you show me the diff before you commit?"),
    ("retry-backoff", "Add a retry with exponential backoff, three attempts at most."),
    ("main-branch", "Use the main branch, not the release branch."),
    ("constants-top", "Put the constants at the top of the module."),
    ("why-build-fails", "Why does the build fail on Python three eleven?"),
    ("log-level-setting", "Make the log level a setting with info as the default."),
    ("revert-push", "Revert the last commit and push it to the feature branch."),
    ("move-parser", "Move the parse function into its own file called parser dot py."),
    # Openers.
    ("okay-go-ahead", "Okay |opener| go ahead."),
    ("so-error", "So |opener| what does the error say?"),
    ("well-old-name", "Well |opener| I'd rather keep the old name."),
    ("right-add-test", "Right |opener| now add the test for it."),
    ("alright-merge", "Alright |opener| let's merge it."),
    ("okay-line-forty-two", "Okay |opener| open main dot py and go to line forty two."),
    ("well-um-split", "Well |opener| um |filler| maybe split it into two functions."),
    ("yeah-fine", "Yeah |opener| that's fine."),
    # Fillers.
    ("port-um", "Change the port to |preposition| um |filler| eight thousand and eighty."),
    ("um-logs-first", "Um |filler| let me check the logs first."),
    ("let-me-think-cache", "Let me think |filler| yes, use the cache."),
    ("bug-uh-session", "The bug is in |preposition| uh |filler| the session manager."),
    ("uh-other-file", "Uh |filler| no, the other file."),
    ("hmm-batch-size", "Hmm |filler| try a smaller batch size."),
    ("limit-let-me-think", "Set the limit to |preposition| let me think |filler| five hundred megabytes."),
    ("should-uh-review", "We should, uh |filler| wait for the review."),
    ("hmm-not-sure", "Hmm |filler| I'm not sure, what do you think?"),
    # Discourse markers.
    ("actually-class", "Actually |marker| make it a class instead."),
    ("i-mean-tests-pass", "It's fine, I mean |marker| the tests pass."),
    ("basically-cache", "Basically |marker| the cache never expires."),
    ("you-know-yesterday", "You know |marker| the file we edited yesterday, open that one."),
    ("you-know-drop-column", "We could, you know |marker| just drop the column."),
    ("actually-keep-flag", "Actually |marker| no, keep the flag, but |conjunction| rename it."),
    ("basically-next-release", "Keep the old interface for now, basically |marker| until the next release."),
    ("i-mean-slow", "I mean |marker| it works, but it's slow."),
    # Conjunctions.
    ("empty-list-and", "Add a test for the empty list and |conjunction| another one for none."),
    ("import-but", "Fix the import but |conjunction| leave the formatting alone."),
    ("timeout-because", "Keep the timeout because |conjunction| the server is slow on startup."),
    ("split-so-that", "Split the function so that |conjunction| each part can be tested."),
    ("linter-and", "Run the linter and |conjunction| then the type checker."),
    ("delete-or", "Delete the file or |conjunction| move it into the archive folder."),
    ("dictionary-because-um", "Use a dictionary because |conjunction| um |filler| lookups are faster."),
    ("readme-and-version", "Update the readme and |conjunction| bump the version to two point one."),
    ("retry-when", "It should retry when |conjunction| the connection drops."),
    # Prepositions.
    ("timeout-to", "Set the timeout to |preposition| thirty seconds."),
    ("helper-in", "Put the helper in |preposition| utils dot py."),
    ("list-with", "Replace the list with |preposition| a set."),
    ("test-for", "Write a test for |preposition| the login handler."),
    ("check-from", "Move the check from |preposition| the client to the server."),
    ("open-at", "Open the file at |preposition| line two hundred."),
    ("compare-against", "Compare it against |preposition| the previous run."),
    (
        "logs-to-instead-of",
        "Send the logs to |preposition| standard error instead of |preposition| the file.",
    ),
    ("default-from-to", "Change the default from |preposition| ten to |preposition| twenty."),
    # Articles.
    ("add-a-docstring", "Add a |article| docstring to the function."),
    ("open-the-settings", "Open the |article| settings file."),
    ("the-um-database", "Check the |article| um |filler| the database address."),
    ("return-an-empty", "Return an |article| empty list instead of none."),
    ("fix-the-failing", "Fix the |article| failing test in test api dot py."),
    ("create-a-branch", "Create a |article| new branch called fix login."),
    # Other determiners.
    ("revert-my", "Revert my |determiner| last change."),
    ("use-this-version", "Use this |determiner| version of the query."),
    ("check-your-env", "Check your |determiner| environment variables."),
    ("drop-that-column", "Drop that |determiner| column from the table."),
    ("run-every-test", "Run every |determiner| test in the folder."),
    ("look-at-our", "Look at our |determiner| deploy script."),
    # Complete clauses followed by more.
    ("rename-then-tests", "Rename the function |complete| then update the tests."),
    ("works-but-test", "Yes that works |complete| but add a test."),
    ("good-also-typo", "That's good |complete| also fix the typo in the header."),
    ("merge-then-delete", "Merge it |complete| then delete the branch."),
    ("no-staging", "No |complete| use the staging database."),
    ("looks-good-ship", "Looks good to me |complete| ship it."),
    ("passes-whole-suite", "The test passes now |complete| can you run the whole suite?"),
    ("stop-read-output", "Stop there |complete| I want to read the output first."),
    ("okay-fine-endpoint", "Okay |opener| that's fine |complete| now do the same for the other endpoint."),
    ("version-two-actually", "Use version two |complete| actually |marker| no, version three."),
)

ANSWERS: tuple[Answer, ...] = tuple(parse(answer_id, script) for answer_id, script in _SCRIPTS)

if len({a.id for a in ANSWERS}) != len(ANSWERS):
    raise ValueError("two answers share an id")


@dataclass(frozen=True)
class VoiceSpec:
    """One voice: an engine, its speaker and how fast it talks (espeak-ng: words per minute)."""

    family: str
    name: str
    speed: float

    @property
    def label(self) -> str:
        return f"{self.family}:{self.name}:{self.speed}"


VOICES = (
    *(VoiceSpec("piper", "joe", s) for s in (0.9, 1.0, 1.15)),
    *(VoiceSpec("kokoro", n, s) for n in ("jf_alpha", "jf_gongitsune", "jf_nezumi", "jf_tebukuro", "jm_kumo") for s in (0.9, 1.1)),
    *(VoiceSpec("espeak", n, s) for n, s in (("en-us+m3", 160), ("en-us+f3", 170), ("en-gb-x-rp+m1", 150), ("en-us+f4", 185))),
)  # fmt: skip
BABBLE_VOICES = tuple(v for v in VOICES if v.family == "espeak" or v.label == "piper:joe:1.0")
"""The room's other talkers: the fast voices, so a babble clip never waits for Kokoro."""


BABBLE_SENTENCES = (
    "The weather on the coast was lovely all weekend.",
    "My sister is moving to a small town near the mountains.",
    "We had pasta for dinner and then watched a film.",
    "The train was late again this morning, so I walked.",
    "Did you see the match last night? It went to penalties.",
    "The bakery on the corner sells the best bread in town.",
    "I still need to buy a present for my father's birthday.",
    "They are repainting the kitchen a pale shade of green.",
)
"""What the babble voices say: talk in the room that has nothing to do with the answer."""


class SplitError(RuntimeError):
    """The committed split does not match the answers; the message says how to fix it."""


def read_split(path: Path = SPLIT_PATH, answers: Iterable[Answer] = ANSWERS) -> dict[str, str]:
    """Answer id -> half, refusing a split that leaves an answer out or names one that is gone."""
    if not path.exists():
        raise SplitError(f"{path.name} is missing: run `python benchmarks/turn_corpus.py --write-split` once")
    halves = json.loads(path.read_text())
    half_of = {answer_id: half for half in HALVES for answer_id in halves.get(half, [])}
    ids = [a.id for a in answers]
    missing = [i for i in ids if i not in half_of]
    if missing:
        raise SplitError(
            f'answers missing from {path.name}: {", ".join(missing)}; add each to "tune" or "test" '
            "(or run --write-split, which assigns new answers and moves none)"
        )
    if sum(len(halves.get(h, [])) for h in HALVES) != len(half_of) or set(half_of) - set(ids):
        raise SplitError(f"{path.name} repeats an answer or names one that no longer exists; fix it by hand")
    return half_of


def write_split(path: Path = SPLIT_PATH, answers: Iterable[Answer] = ANSWERS) -> dict[str, list[str]]:
    """Assign every answer not yet in the split, stratum by stratum; answers already assigned stay put.

    Within a stratum (short, none, or the first pause's kind) a seeded shuffle deals the new answers
    alternately to whichever half is smaller, so both halves hold every kind.
    """
    answers = list(answers)
    known = {a.id for a in answers}
    old = json.loads(path.read_text()) if path.exists() else {}
    half_of = {i: h for h in HALVES for i in old.get(h, []) if i in known}
    rng = np.random.default_rng(SPLIT_SEED)
    strata = sorted({a.stratum for a in answers})
    for stratum in strata:
        members = [a for a in answers if a.stratum == stratum]
        new = [members[int(i)].id for i in rng.permutation(len(members)) if members[int(i)].id not in half_of]
        for answer_id in new:
            count = Counter(half_of[a.id] for a in members if a.id in half_of)
            total = Counter(half_of.values())
            half_of[answer_id] = min(HALVES, key=lambda h: (count[h], total[h], HALVES.index(h)))
    split = {h: [a.id for a in answers if half_of[a.id] == h] for h in HALVES}
    path.write_text(json.dumps(split, indent=2) + "\n")
    return split

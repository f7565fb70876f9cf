"""The grammar of continuation: what a transcript made at a pause says about the rest of the answer."""

from __future__ import annotations

import pytest

from voicemoded.audio.completeness import TextState, text_state

C, U, P, E = TextState.COMPLETE, TextState.UNFINISHED, TextState.PREAMBLE, TextState.EMPTY


@pytest.mark.parametrize(
    ("text", "state"),
    [
        ("Paris is the capital of France.", C),
        ("Change the timeout to 30 seconds.", C),
        ("What about the tests?", C),
        ("No, not yet.", C),
        ("Yes, it is.", C),
        ("I think we can.", C),
        ("Let's do that.", C),
        ("", E),
        ("   ", E),
        # closed classes at the end: articles, prepositions, conjunctions, auxiliaries after a noun
        ("Open the", U),
        ("Add it to the list of", U),
        ("I went to the shop and", U),
        ("Rename it because", U),
        ("The problem is", U),
        ("My favorite color is", U),
        ("We should probably", C),  # an adverb can end a clause; the bound still protects it
        ("My favorite color is...", U),
        ("Well, I think,", U),
        ("The port is, um", U),
        ("Move it and then", U),
        ("The file I mean", U),
        # preambles: openers, fillers, acknowledgements, discourse markers, and nothing else
        ("Okay.", P),
        ("So", P),
        ("Well.", P),
        ("Hmm.", P),
        ("Um, let me think.", P),
        ("Yes.", P),
        ("Yes", P),
        ("Sounds good.", P),
        ("Okay, so", P),
        ("Actually", P),
        ("I mean", P),
        ("Thank you.", P),
        # Whisper's inventions over the silence after an unfinished clause do not finish it.
        ("I think we should go to you.", U),
        ("I think we should go to. Thank you.", U),
        ("We could move it to. Thanks for watching!", U),
        ("That's all, thank you.", C),
        ("I will see you.", C),
    ],
)
def test_text_state(text: str, state: TextState) -> None:
    assert text_state(text) is state


def test_curly_apostrophes_and_digits_are_words() -> None:
    assert text_state("Let\u2019s ship version 2.") is C
    assert text_state("Set it to") is U

from __future__ import annotations

from voicemoded.engines.text import split_sentences


def test_sentence_ends_split() -> None:
    assert split_sentences("Hello there. How are you? Fine!") == ["Hello there.", "How are you?", "Fine!"]


def test_abbreviations_initials_and_decimals_do_not_split() -> None:
    text = "Dr. Smith paid $3.50 to the U.S. office, e.g. for stamps. J. R. agreed."
    assert split_sentences(text) == [
        "Dr. Smith paid $3.50 to the U.S. office, e.g. for stamps.",
        "J. R. agreed.",
    ]


def test_blank_lines_and_trailing_text() -> None:
    assert split_sentences("Title\n\nBody without an end") == ["Title", "Body without an end"]
    assert split_sentences("  \n ") == []


def test_long_sentences_are_cut_at_clauses_then_words() -> None:
    text = ", ".join(["this clause is part of a very long sentence"] * 20) + "."
    pieces = split_sentences(text, max_chars=120)
    assert all(len(p) <= 120 for p in pieces)
    assert " ".join(pieces).split() == text.split()
    unbroken = "word " * 100
    assert all(len(p) <= 50 for p in split_sentences(unbroken, max_chars=50))

"""The turn-taking benchmark's replay: recorded pause features through the daemon's own policy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

import turn_score
from turn_corpus import Clip, Pause
from turn_features import ClipFeatures, PauseRecord, replay

from voicemoded.audio.end_of_turn import TurnPolicy

POLICY = TurnPolicy(bound_s=1.2, quick_end_s=0.5, words_end_s=0.9, preamble_s=1.4, unfinished_s=2.5)


def clip(pauses: tuple[Pause, ...], last: float) -> Clip:
    return Clip(
        id="c", answer_id="a", half="test", voice="v", noise="quiet", snr_db=None, text="okay rename it",
        segments=(), pauses=pauses, finished_sounding=(), speech_start_s=0.3, last_voiced_s=last,
        duration_s=last + 2.5, path="c.wav", short=False, peak_dbfs=-6.0, sample_rate=16000, recipe="",
        sha256="0",
    )  # fmt: skip


def heard(at: float, length: float | None, text: str, p: float = 0.9, stt: float = 0.2) -> PauseRecord:
    return PauseRecord(at, length, 30.0, text, p, -0.2, 0.05, stt, 0.08)


def test_an_opener_pause_is_waited_out_and_the_finished_answer_ends_quickly() -> None:
    c = clip((Pause("opener", 0.8, 1.7, 0.9),), last=2.6)
    f = ClipFeatures("c", (heard(0.8, 0.9, "Okay."), heard(2.6, None, "Okay. Rename the function.")), "", 0.0)
    out = replay(c, f, POLICY)
    assert not out.cut and out.rule == "words and voice finished"
    # A pause after an opener says nothing about pauses after finished clauses: the quick end holds.
    assert out.turn_over == pytest.approx(0.5)


def test_a_person_who_went_on_after_a_finished_clause_is_waited_for_longer() -> None:
    c = clip((Pause("complete", 1.0, 1.6, 0.6),), last=3.0)
    first = heard(1.0, 0.6, "Rename the function.")
    f = ClipFeatures("c", (first, heard(3.0, None, "Rename the function. Then test it.")), "", 0.0)
    out = replay(c, f, TurnPolicy(bound_s=1.2, quick_end_s=0.7))
    assert not out.cut and out.turn_over == pytest.approx(0.6 + 0.3)


def test_a_finished_looking_clause_before_a_long_pause_is_a_cut_off_in_its_bucket() -> None:
    c = clip((Pause("complete", 1.0, 1.9, 0.9),), last=2.8)
    f = ClipFeatures(
        "c",
        (heard(1.0, 0.9, "Rename the function."), heard(2.8, None, "Rename the function. Then test it.")),
        "",
        0.0,
    )
    out = replay(c, f, POLICY)
    assert out.cut and out.cut_bucket == "0.8-1.0" and out.turn_over is None


def test_a_slow_verdict_ends_at_the_bound_and_the_result_waits_for_it() -> None:
    c = clip((), last=1.5)
    f = ClipFeatures("c", (heard(1.5, None, "Rename the function.", stt=1.5),), "", 0.0)
    out = replay(c, f, POLICY)
    assert out.rule == "silence" and out.turn_over == pytest.approx(1.2)
    assert out.result == pytest.approx(0.15 + 1.5 + 0.01)


def test_voice_that_never_pauses_again_holds_the_turn() -> None:
    c = clip((), last=1.5)
    f = ClipFeatures("c", (heard(1.5, 2.0, "Rename the", p=0.1),), "", 0.0)
    assert replay(c, f, POLICY).held


def test_word_error_rate_reads_digits_and_file_names_as_spoken() -> None:
    assert (
        turn_score.wer("open config dot py and set it to thirty", "Open config.py and set it to 30.")[0] == 0
    )
    assert turn_score.wer("eight thousand and eighty", "8080")[0] == 0
    assert turn_score.wer("keep both", "keep") == (0.5, 2)

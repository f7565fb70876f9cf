"""The end-of-turn policy as a pure function of what was heard at a pause."""

from __future__ import annotations

import pytest

from voicemoded.audio.end_of_turn import (
    Decision,
    EndOfTurn,
    PauseFeatures,
    PauseHistory,
    TurnPolicy,
    TurnVerdict,
    decide,
)

POLICY = TurnPolicy(
    bound_s=1.2, bound_max_s=2.5, pause_margin_s=0.3, quick_end_s=0.5, words_end_s=0.9, preamble_s=1.4,
    unfinished_s=2.5, min_avg_logprob=-1.0, max_no_speech_prob=0.6, min_snr_db=15.0,
)  # fmt: skip


def heard(
    text: str | None, p: float | None = 0.9, logprob: float | None = -0.2, **kw: object
) -> PauseFeatures:
    return PauseFeatures(TurnVerdict(text, probability=p, avg_logprob=logprob, no_speech_prob=0.01), **kw)  # type: ignore[arg-type]


def test_nothing_heard_waits_for_the_bound() -> None:
    assert decide(PauseFeatures(), POLICY) == Decision(1.2, "silence")
    assert decide(heard(None), POLICY) == Decision(1.2, "silence"), "a remote STT was not asked"
    assert decide(heard(""), POLICY).silence_s == 1.2


def test_complete_words_end_sooner_and_sooner_still_with_a_finished_voice() -> None:
    assert decide(heard("Rename the function.", p=0.9), POLICY) == Decision(0.5, "words and voice finished")
    assert decide(heard("Rename the function.", p=0.2), POLICY) == Decision(0.9, "words finished")
    assert decide(heard("Rename the function.", p=None), POLICY) == Decision(0.9, "words finished")


def test_a_voice_that_sounds_unfinished_can_veto_the_words() -> None:
    strict = TurnPolicy(bound_s=1.2, unfinished_probability=0.1)
    assert decide(heard("Rename the function.", p=0.05), strict).rule == "silence (voice unfinished)"


def test_openers_and_unfinished_words_wait_longer_than_the_bound() -> None:
    assert decide(heard("Okay."), POLICY) == Decision(1.4, "opener only")
    assert decide(heard("Um, let me think."), POLICY) == Decision(1.4, "opener only")
    assert decide(heard("Open the file and"), POLICY) == Decision(2.5, "words unfinished")


@pytest.mark.parametrize(
    "features",
    [
        heard("Rename the function.", logprob=-1.5),
        PauseFeatures(TurnVerdict("Rename the function.", probability=0.9, no_speech_prob=0.8)),
    ],
    ids=["unsure words", "probably no speech"],
)
def test_untrusted_words_never_take_the_quick_end(features: PauseFeatures) -> None:
    assert decide(features, POLICY) == Decision(1.2, "silence (unsure of the words)")


def test_in_a_noisy_room_no_quick_end_and_every_silence_is_longer() -> None:
    # The VAD loses the quiet edges of words in noise, so a pause sounds longer than it is.
    noisy = decide(heard("Rename the function.", snr_db=8.0), POLICY)
    assert noisy == Decision(pytest.approx(1.2 + 0.3), "silence (unsure of the words), in noise")
    assert decide(heard("Rename the function.", snr_db=18.0), POLICY).silence_s == pytest.approx(0.5 + 0.3)
    assert decide(PauseFeatures(snr_db=18.0), POLICY).silence_s == pytest.approx(1.5)


def test_a_few_words_wait_like_an_opener() -> None:
    assert decide(heard("All right."), POLICY) == Decision(1.4, "opener only")
    assert decide(heard("Do it."), POLICY) == Decision(1.4, "few words")
    assert decide(heard("I'm there."), POLICY) == Decision(1.4, "few words"), "Whisper's 'um' in noise"


def test_the_persons_own_pauses_lengthen_every_end() -> None:
    # A quick end waits out the pauses this person made after words that could have ended the turn...
    finished_before = heard("Rename the function.", pauses=(0.7,), complete_pauses=(0.7,))
    assert decide(finished_before, POLICY).silence_s == pytest.approx(1.0)
    # ...not those after words that could not ("so", "the"), nor in other answers: those move the bound.
    assert decide(heard("Rename the function.", pauses=(0.7,)), POLICY).silence_s == 0.5
    assert decide(heard("Rename the function.", recent_pause_s=0.8), POLICY).silence_s == 0.5
    assert decide(PauseFeatures(recent_pause_s=1.1), POLICY).silence_s == pytest.approx(1.4)
    assert decide(PauseFeatures(pauses=(1.1,)), POLICY).silence_s == pytest.approx(1.4)
    assert decide(PauseFeatures(pauses=(3.0,)), POLICY).silence_s == 2.5, "capped"
    assert decide(heard("Rename the function.", pauses=(2.0,), complete_pauses=(2.0,)), POLICY).silence_s == 2.3


def test_end_of_turn_keeps_the_verdict_of_the_current_pause_only() -> None:
    eot = EndOfTurn(POLICY)
    eot.pause(1, snr_db=30.0)
    assert eot.decision.silence_s == 1.2
    assert eot.hear(1, TurnVerdict("Rename the file.", probability=0.9, payload="t1"))
    assert eot.decision.rule == "words and voice finished" and eot.payload == "t1"
    eot.resume(0.4)
    assert eot.payload is None and eot.decision.rule == "silence"
    eot.pause(2, snr_db=30.0)
    assert not eot.hear(1, TurnVerdict("Rename the file.", probability=0.9)), "stale"
    assert eot.hear(2, TurnVerdict("Rename the file.", probability=0.9))
    assert eot.decision.silence_s == pytest.approx(0.7), "this answer's 0.4 s pause + 0.3 s"


def test_pause_history_remembers_the_last_answers() -> None:
    history = PauseHistory(size=2)
    history.add([0.9])
    history.add([])
    assert history.longest == 0.9
    history.add([0.2])
    assert history.longest == 0.2

"""The turn-taking corpus: its fixed split, its answers, and clips whose audio says what the manifest says.

Clips are rendered with Piper only (fast) and measured in their own samples: a pause is the gap
between loud samples, a noisy clip's SNR is read off its speech and its noise-only lead and tail.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "benchmarks"))

import turn_answers
import turn_corpus
from turn_corpus import RATE, Clip, ClipSpec

LOUD = turn_corpus.level(-60.0)
"""Above the quiet clips' dither (-80 dBFS RMS), below every trimmed segment's edge (-50 dBFS)."""


def _pick(noise: str, snr_db: float | None = None, pauses: int = 1) -> ClipSpec:
    return next(
        s
        for s in turn_corpus.plan()
        if s.voice.family == "piper"
        and s.noise == noise
        and (snr_db is None or s.snr_db == snr_db)
        and len(s.answer.after) == pauses
    )


QUIET = _pick("quiet", pauses=2)
WHITE = _pick("white", 20.0)
BABBLE = _pick("babble", 10.0)
IDS = (QUIET.id, WHITE.id, BABBLE.id)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    """The three clips, rendered by two worker processes."""
    out = tmp_path_factory.mktemp("corpus")
    turn_corpus.generate(out, voices=["piper"], ids=IDS, jobs=2)
    return {c.id: c for c in turn_corpus.load_corpus(out)}


@pytest.fixture(scope="module")
def bank() -> turn_corpus.VoiceBank:
    """One set of voices (and babble tracks) for every mixing test."""
    return turn_corpus.VoiceBank()


def test_split_holds_every_answer_once_and_every_kind_in_both_halves() -> None:
    split = json.loads(turn_answers.SPLIT_PATH.read_text())
    tune, test = split["tune"], split["test"]
    ids = [a.id for a in turn_answers.ANSWERS]
    assert not set(tune) & set(test)
    assert sorted(tune + test) == sorted(ids)
    assert abs(len(tune) - len(test)) <= 2
    half_of = turn_answers.read_split()
    for half in turn_answers.HALVES:
        answers = [a for a in turn_answers.ANSWERS if half_of[a.id] == half]
        assert {k for a in answers for k in a.after} == set(turn_answers.PAUSE_KINDS)
        assert any(a.short for a in answers) and any(not a.after and not a.short for a in answers)


def test_a_split_without_an_answer_is_refused_and_filling_it_moves_nothing(tmp_path: Path) -> None:
    committed = json.loads(turn_answers.SPLIT_PATH.read_text())
    dropped = committed["test"].pop()
    path = tmp_path / "split.json"
    path.write_text(json.dumps(committed))
    with pytest.raises(turn_answers.SplitError, match=dropped):
        turn_answers.read_split(path)
    filled = turn_answers.write_split(path)
    assert set(committed["tune"]) <= set(filled["tune"]) and set(committed["test"]) <= set(filled["test"])
    assert turn_answers.read_split(path)[dropped] in turn_answers.HALVES


def test_answers_cover_every_pause_kind_and_a_quarter_are_finished() -> None:
    answers = turn_answers.ANSWERS
    assert len(answers) >= 60
    kinds = Counter(k for a in answers for k in a.after)
    assert set(kinds) == set(turn_answers.PAUSE_KINDS)
    assert min(kinds.values()) >= 6
    assert 0.2 <= sum(not a.after for a in answers) / len(answers) <= 0.35
    assert sum(a.short for a in answers) >= 6
    assert all(len(a.after) <= 2 for a in answers)


def test_plan_fills_every_pause_bucket_and_keeps_two_fifths_quiet() -> None:
    specs = turn_corpus.plan()
    assert len(specs) >= 400 and len({s.id for s in specs}) == len(specs)
    buckets = Counter(turn_corpus.pause_bucket(p) for s in specs for p in s.pause_s)
    assert set(buckets) == {"<=0.5", "0.5-0.8", "0.8-1.0", "1.2", "1.5"}
    assert min(buckets.values()) >= 40
    assert 0.35 <= sum(s.noise == "quiet" for s in specs) / len(specs) <= 0.45
    assert len({s.voice.label for s in specs}) >= 5


def test_pauses_and_speech_edges_are_where_the_manifest_says(corpus: dict[str, Clip]) -> None:
    clip = corpus[QUIET.id]
    samples = np.abs(clip.samples().astype(np.int32))
    loud = np.flatnonzero(samples >= LOUD)
    assert len(samples) == round(clip.duration_s * RATE)
    assert loud[0] == round(clip.speech_start_s * RATE) == round(0.3 * RATE)
    assert loud[-1] + 1 == round(clip.last_voiced_s * RATE)
    assert clip.duration_s == pytest.approx(clip.last_voiced_s + 2.5)
    assert [p.seconds for p in clip.pauses] == list(QUIET.pause_s)
    for pause in clip.pauses:
        start, end = round(pause.start_s * RATE), round(pause.end_s * RATE)
        assert samples[start - 1] >= LOUD and samples[end] >= LOUD
        assert samples[start:end].max() < LOUD
        assert (end - start) / RATE == pytest.approx(pause.seconds, abs=1e-9)


def test_noise_is_at_the_stated_snr_in_the_audio(corpus: dict[str, Clip]) -> None:
    clip = corpus[WHITE.id]
    samples = clip.samples().astype(np.float64)
    lead, tail = round(clip.speech_start_s * RATE), round(clip.last_voiced_s * RATE)
    noise_power = np.mean(np.square(np.concatenate([samples[:lead], samples[tail:]])))
    edges = [clip.speech_start_s, *(t for p in clip.pauses for t in (p.start_s, p.end_s)), clip.last_voiced_s]
    spans = [samples[round(a * RATE) : round(b * RATE)] for a, b in zip(edges[::2], edges[1::2], strict=True)]
    speech_power = np.mean(np.square(np.concatenate(spans))) - noise_power
    assert 10 * np.log10(speech_power / noise_power) == pytest.approx(20.0, abs=1.0)


@pytest.mark.parametrize("kind", turn_corpus.NOISE_KINDS)
@pytest.mark.parametrize("snr_db", turn_corpus.SNRS_DB)
def test_every_noise_kind_is_mixed_at_its_snr(
    corpus: dict[str, Clip], bank: turn_corpus.VoiceBank, kind: str, snr_db: float
) -> None:
    clip = corpus[QUIET.id]
    edges = [clip.speech_start_s, *(t for p in clip.pauses for t in (p.start_s, p.end_s)), clip.last_voiced_s]
    spans = [(round(a * RATE), round(b * RATE)) for a, b in zip(edges[::2], edges[1::2], strict=True)]
    speech = turn_corpus.Rendered(clip.samples().astype(np.float64), spans)
    spec = dataclasses.replace(QUIET, noise=kind, snr_db=snr_db)
    noise = turn_corpus.add_noise(spec, speech, bank.babble).astype(np.float64) - speech.samples
    active = turn_corpus.rms(np.concatenate([speech.samples[a:b] for a, b in spans]))
    assert 20 * np.log10(active / turn_corpus.rms(noise)) == pytest.approx(snr_db, abs=0.2)
    # Steady: the lead and tail carry the noise as loudly as the speech does.
    tail = noise[spans[-1][1] :]
    assert 20 * np.log10(turn_corpus.rms(tail) / turn_corpus.rms(noise)) == pytest.approx(0.0, abs=1.5)


def test_a_second_generation_writes_the_same_corpus(corpus: dict[str, Clip], tmp_path: Path) -> None:
    """In one process this time: the bytes depend on neither the run nor the number of workers."""
    first = next(iter(corpus.values())).folder
    manifest = turn_corpus.generate(tmp_path, voices=["piper"], ids=IDS, jobs=1)
    assert manifest.read_text() == (first / "manifest.jsonl").read_text()
    for clip in corpus.values():
        assert (tmp_path / clip.path).read_bytes() == clip.wav_path.read_bytes()


def test_a_clip_already_on_disk_is_not_rendered_again(corpus: dict[str, Clip]) -> None:
    folder = next(iter(corpus.values())).folder
    lines: list[str] = []
    turn_corpus.generate(folder, voices=["piper"], ids=IDS, jobs=1, log=lines.append)
    assert lines[-1].startswith(f"0 clips rendered, {len(IDS)} reused")

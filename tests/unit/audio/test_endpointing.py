"""The VAD state machine and the endpointer on synthetic frames, in audio time."""

from __future__ import annotations

import numpy as np
import pytest

from voicemoded.audio.end_of_turn import TurnPolicy, TurnVerdict
from voicemoded.audio.endpointing import EndpointConfig, Endpointer, EndReason
from voicemoded.audio.vad import NoiseGate, VadState, VadStateMachine, WebRtcDetector, frame_db

RATE = 16_000
FRAME = 320  # 20 ms


class LoudIsSpeech:
    """A detector that calls any non-silent frame speech: the gate and the timing logic are under test."""

    frame_samples = FRAME

    def reset(self) -> None:
        pass

    def __call__(self, frame: bytes) -> float:
        return 1.0 if np.abs(np.frombuffer(frame, dtype="<i2")).max() > 0 else 0.0


def vowel(seconds: float, level: float = 0.3) -> bytes:
    """A voiced-sounding signal: a 120 Hz harmonic series in syllables (4 per second, dips between).

    Real speech dips between syllables; that is what lets the noise floor stay below it.
    """
    n = round(seconds * RATE)
    t = np.arange(n) / RATE
    sig = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 30))
    sig = sig * (0.05 + 0.95 * np.abs(np.sin(np.pi * 4 * t)))
    sig = sig / np.abs(sig).max() * level * 32767
    return sig.astype("<i2").tobytes()


def silence(seconds: float) -> bytes:
    return b"\0" * (round(seconds * RATE) * 2)


def hiss(seconds: float, level_db: float, seed: int = 3) -> bytes:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(round(seconds * RATE)) * 10 ** (level_db / 20) * 32767
    return np.clip(x, -32768, 32767).astype("<i2").tobytes()


def run(ep: Endpointer, pcm: bytes) -> list[tuple[str, float, str | None]]:
    out = []
    for i in range(0, len(pcm) - ep.frame_bytes + 1, ep.frame_bytes):
        for ev in ep.feed(pcm[i : i + ep.frame_bytes]):
            out.append((ev.kind, round(ev.at, 3), ev.reason))
    return out


def test_state_machine_has_hysteresis_both_ways() -> None:
    sm = VadStateMachine(start_frames=3, stop_frames=4, start_gap=1)
    assert [sm.feed(v) for v in (True, False, True, True)] == [
        VadState.STARTING, VadState.STARTING, VadState.STARTING, VadState.SPEAKING
    ]  # fmt: skip
    assert [sm.feed(v) for v in (False, False, True)] == [
        VadState.STOPPING,
        VadState.STOPPING,
        VadState.SPEAKING,
    ]
    assert [sm.feed(False) for _ in range(4)][-1] == VadState.QUIET
    sm.reset()
    # A click: one voiced frame then silence never reaches SPEAKING.
    assert [sm.feed(v) for v in (True, False, False)] == [
        VadState.STARTING,
        VadState.STARTING,
        VadState.QUIET,
    ]


def policy(**kw: float) -> TurnPolicy:
    return TurnPolicy(**kw)  # type: ignore[arg-type]


def finished(text: str = "Please open the settings file.", probability: float | None = None) -> TurnVerdict:
    return TurnVerdict(text, probability=probability, payload=text)


def test_speech_then_silence_ends_after_the_end_silence() -> None:
    ep = Endpointer(EndpointConfig(early_end_s=0.3, turn=policy(bound_s=0.7)), LoudIsSpeech())
    events = run(ep, silence(0.5) + vowel(1.0) + silence(2.0))
    kinds = [e[0] for e in events]
    assert kinds == ["speech_start", "pause", "end"]
    assert events[0][1] == pytest.approx(0.5, abs=0.021)
    assert events[1][1] == pytest.approx(1.5 + 0.3, abs=0.021)
    assert events[2] == ("end", pytest.approx(1.5 + 0.7, abs=0.021), EndReason.SILENCE)
    assert ep.ended_by == "silence"


def test_a_pause_shorter_than_the_end_silence_is_bridged_and_raises_the_bound() -> None:
    config = EndpointConfig(early_end_s=0.3, turn=policy(bound_s=1.0, pause_margin_s=0.3))
    ep = Endpointer(config, LoudIsSpeech())
    events = run(ep, vowel(1.0) + silence(0.8) + vowel(1.0) + silence(3.0))
    assert [e[0] for e in events] == ["speech_start", "pause", "resume", "pause", "end"]
    # The quiet end of the last syllable sits under the gate, so the measured pause is a little longer.
    assert ep.longest_pause == pytest.approx(0.8, abs=0.05)
    assert ep.end_silence == pytest.approx(ep.longest_pause + 0.3)
    assert events[-1][1] == pytest.approx(2.8 + ep.end_silence, abs=0.05)


def test_a_recent_answers_long_pause_raises_the_bound() -> None:
    config = EndpointConfig(early_end_s=0.3, turn=policy(bound_s=1.0, pause_margin_s=0.3))
    ep = Endpointer(config, LoudIsSpeech(), recent_pause_s=1.1)
    events = run(ep, vowel(1.0) + silence(3.0))
    assert ep.last_voiced_end is not None
    assert events[-1][1] == pytest.approx(ep.last_voiced_end + 1.4, abs=0.021)


def test_a_verdict_counts_only_for_the_current_pause() -> None:
    ep = Endpointer(EndpointConfig(early_end_s=0.3, turn=policy(words_end_s=0.35)), LoudIsSpeech())
    events = run(ep, vowel(1.0) + silence(0.4))
    assert events[-1][0] == "pause"
    assert ep.hear(ep.pause_id + 1, finished()) is None  # a stale verdict
    run(ep, vowel(0.2) + silence(0.8))  # the person went on: the first pause is stale too
    assert ep.hear(1, finished()) is None
    # Past this answer's own 0.4 s pause plus the margin, the quick end holds at once.
    ended = ep.hear(ep.pause_id, finished())
    assert ended is not None and ended.reason == EndReason.SILENCE
    assert ep.ended_by == "words finished"
    assert ep.turn.payload == "Please open the settings file."
    assert ep.feed(silence(0.02)) == []


def test_a_finished_verdict_still_waits_out_a_thinking_pause() -> None:
    config = EndpointConfig(early_end_s=0.3, turn=policy(words_end_s=0.9, bound_s=1.0))
    ep = Endpointer(config, LoudIsSpeech())
    run(ep, vowel(1.0) + silence(0.5))
    assert ep.paused and ep.hear(ep.pause_id, finished()) is None, "0.5 s may be a pause mid-sentence"
    events = run(ep, silence(0.5))
    assert ep.last_voiced_end is not None
    assert events == [("end", pytest.approx(ep.last_voiced_end + 0.9, abs=0.021), EndReason.SILENCE)]


def test_a_confident_verdict_ends_at_the_shorter_silence() -> None:
    config = EndpointConfig(early_end_s=0.15, turn=policy(quick_end_s=0.5, words_end_s=0.9, bound_s=1.0))
    ep = Endpointer(config, LoudIsSpeech())
    run(ep, vowel(1.0) + silence(0.3))
    assert ep.paused and ep.hear(ep.pause_id, finished(probability=0.9)) is None, "0.3 s is too short"
    events = run(ep, silence(0.3))
    assert ep.last_voiced_end is not None
    assert events == [("end", pytest.approx(ep.last_voiced_end + 0.5, abs=0.021), EndReason.SILENCE)]
    assert ep.ended_by == "words and voice finished"


def test_unfinished_words_hold_the_turn_past_the_bound() -> None:
    config = EndpointConfig(early_end_s=0.15, turn=policy(bound_s=1.0, unfinished_s=2.0))
    ep = Endpointer(config, LoudIsSpeech())
    run(ep, vowel(1.0) + silence(0.3))
    assert ep.hear(ep.pause_id, finished("I think we should go to", probability=0.9)) is None
    events = run(ep, silence(3.0))
    assert ep.last_voiced_end is not None
    assert events == [("end", pytest.approx(ep.last_voiced_end + 2.0, abs=0.021), EndReason.SILENCE)]
    assert ep.ended_by == "words unfinished"


def test_min_listen_holds_the_silence_end() -> None:
    ep = Endpointer(EndpointConfig(turn=policy(bound_s=0.5), min_listen_s=3.0), LoudIsSpeech())
    events = run(ep, vowel(0.5) + silence(4.0))
    assert events[-1] == ("end", pytest.approx(3.0, abs=0.021), EndReason.SILENCE)


def test_initial_silence_gives_no_speech_and_a_click_is_not_an_answer() -> None:
    ep = Endpointer(EndpointConfig(initial_silence_s=1.0), LoudIsSpeech())
    assert run(ep, silence(2.0))[-1] == ("end", pytest.approx(1.0, abs=0.021), EndReason.NO_SPEECH)
    ep = Endpointer(
        EndpointConfig(initial_silence_s=1.0, turn=policy(bound_s=0.5), min_speech_s=0.2), LoudIsSpeech()
    )
    events = run(ep, silence(0.2) + vowel(0.1) + silence(2.0))
    assert events[0][0] == "speech_start"
    assert events[-1][2] == EndReason.NO_SPEECH


def test_max_listen_caps_continuous_speech() -> None:
    ep = Endpointer(EndpointConfig(max_listen_s=2.0), LoudIsSpeech())
    assert run(ep, vowel(5.0))[-1] == ("end", pytest.approx(2.0, abs=0.021), EndReason.MAX_DURATION)


def test_steady_noise_stops_counting_as_voice_once_the_floor_adapts() -> None:
    config = EndpointConfig(
        initial_silence_s=1.0, turn=policy(bound_s=0.7), noise_window_s=1.0, max_listen_s=30
    )
    ep = Endpointer(config, LoudIsSpeech())
    # Noise from the first frame: the floor is the noise, nothing is voice, "no answer" comes on time.
    assert run(ep, hiss(5.0, -30))[-1][2] == EndReason.NO_SPEECH
    assert ep.elapsed < 1.1
    # Speech over noise that continues afterwards: the turn ends on the speech, not on the noise.
    ep = Endpointer(config, LoudIsSpeech())
    noise = np.frombuffer(hiss(8.0, -40), dtype="<i2").astype(np.int32)
    talk = np.frombuffer(vowel(1.5), dtype="<i2")
    noise[RATE // 2 : RATE // 2 + talk.size] += talk
    events = run(ep, np.clip(noise, -32768, 32767).astype("<i2").tobytes())
    assert events[0][0] == "speech_start"
    assert events[-1][2] == EndReason.SILENCE and events[-1][1] < 0.5 + 1.5 + 1.0


def test_speech_under_way_when_the_window_opens_is_heard_once_the_gate_knows_the_room() -> None:
    """A person already talking at the first frame: a gate that learned the room before the window
    opened hears them from that frame; one that starts cold takes their voice for the floor."""
    talking = vowel(1.625)[round(0.125 * RATE) * 2 :]  # starts at a syllable's peak, not in a dip
    room = hiss(1.0, -60)
    cold, primed = Endpointer(EndpointConfig(), LoudIsSpeech()), Endpointer(EndpointConfig(), LoudIsSpeech())
    for i in range(0, len(room), primed.frame_bytes):
        primed.prime(room[i : i + primed.frame_bytes])
    assert run(primed, talking + silence(2))[:1] == [("speech_start", 0.0, None)]
    assert not run(cold, talking + silence(2)), "the cold gate missed the whole answer"
    with pytest.raises(ValueError):
        primed.prime(b"\0" * 3)


def test_a_cold_gate_finds_the_first_word_once_a_dip_taught_it_the_room() -> None:
    """No audio from before the window (a listen-only turn): the first word sets the gate's first floor
    and is held back, but once the gate knows the room the answer starts where the first word did."""
    n = round(0.4 * RATE)
    t = np.arange(n) / RATE
    word = sum(np.sin(2 * np.pi * 120 * k * t) / k for k in range(1, 30))
    word = (word / np.abs(word).max() * 0.3 * 32767).astype("<i2").tobytes()  # steady: no dip inside
    answer = word + hiss(0.1, -60) + word + word + silence(1.5)
    events = run(Endpointer(EndpointConfig(), LoudIsSpeech()), answer)
    assert events[0] == ("speech_start", 0.0, None), events
    late = run(Endpointer(EndpointConfig(), LoudIsSpeech()), silence(0.5) + answer)
    assert late[0] == ("speech_start", 0.5, None), "an onset is not pulled back over real silence"


def test_noise_gate_floor_follows_a_new_noise_within_its_window() -> None:
    gate = NoiseGate(margin_db=10, window_s=1.0, frame_s=0.02)
    for _ in range(50):
        gate.update(-70)
    assert gate.update(-30)  # sudden noise is loud relative to the old floor...
    for _ in range(60):
        gate.update(-30)
    assert not gate.update(-30)  # ...and is the floor one window later
    assert gate.floor_db == pytest.approx(-30, abs=3)
    assert frame_db(silence(0.02)) == -100.0


def test_webrtc_detector_hears_a_voiced_signal_and_not_silence() -> None:
    det = WebRtcDetector(aggressiveness=2, frame_ms=20)
    voiced = vowel(0.6)
    votes = [det(voiced[i : i + 640]) for i in range(0, len(voiced) - 639, 640)]
    assert sum(votes) >= len(votes) // 2
    det.reset()
    assert det(silence(0.02)) == 0.0
    with pytest.raises(ValueError):
        WebRtcDetector(frame_ms=25)

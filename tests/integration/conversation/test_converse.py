"""Spoken turns through the real daemon, real engines and PyAudio on virtual devices."""

from __future__ import annotations

import math
import re
import struct
import threading
import time
from typing import Any

import grpc
import pytest

from tests.integration.conversation.conftest import Rig, Turn
from voicemoded.api.v1 import common_pb2, conversation_pb2, providers_pb2, services_pb2
from voicemoded.testing.person import stretch_pause

QUESTION = "Which file should I open first?"
ANSWER = "Please open the settings file and check the port number."


def words(text: str) -> list[str]:
    return re.findall(r"[a-z']+", text.lower())


def overlap(expected: str, got: str) -> float:
    want, have = words(expected), set(words(got))
    return sum(w in have for w in want) / len(want)


def trim_quiet(pcm: bytes, *, end: bool, threshold: int = 80) -> bytes:
    """Drop the run of samples under ``threshold`` (-52 dBFS) at the end (or start) of 16-bit mono PCM."""
    samples = struct.unpack(f"<{len(pcm) // 2}h", pcm)
    indices = range(len(samples) - 1, -1, -1) if end else range(len(samples))
    edge = next(i for i in indices if abs(samples[i]) > threshold)
    return pcm[: (edge + 1) * 2] if end else pcm[edge * 2 :]


def answer_on_listening(rig: Rig, pcm: bytes) -> tuple[list[threading.Thread], object]:
    players: list[threading.Thread] = []

    def on_event(kind: str, turn: Turn) -> None:
        if kind == "listening":
            players.append(rig.play(pcm))

    return players, on_event


def listen(rig: Rig, on_event: Any, **env: str) -> Turn:
    """A listen-only turn with the caller's own settings ``env``."""
    request = conversation_pb2.ConverseRequest(
        caller=common_pb2.CallerContext(env=env), listen_duration_max=30
    )
    return rig.converse(request, method="Listen", on_event=on_event)


def test_converse_turn_end_to_end(rig: Rig) -> None:
    answer = rig.say(ANSWER)
    players, on_event = answer_on_listening(rig, answer)
    recording = rig.audio.record_speaker()
    turn = rig.converse(conversation_pb2.ConverseRequest(message=QUESTION), on_event=on_event)  # type: ignore[arg-type]
    heard = recording.stop()
    assert turn.error is None, turn.error
    assert turn.result is not None
    assert overlap(ANSWER, turn.result.text) >= 0.9, turn.result.text
    order = [
        "tts_start",
        "first_audio",
        "playback_end",
        "listening",
        "speech_start",
        "speech_end",
        "transcript",
        "done",
    ]
    assert [k for k in turn.kinds() if k in order] == order
    times = [turn.at(k) for k in order]
    assert times == sorted(times)
    assert turn.result.end_reason == "silence"
    # A finished sentence, said as one: the words read finished and the voice sounds finished, so the
    # turn took the quick end (quick_end_s) rather than waiting out a possible thinking pause.
    assert turn.details["transcript"] == "turn ended: words and voice finished"
    t = turn.result.timings
    assert 0 < t.ttfa < t.total and t.playback > 1.0 and t.record > 0 and t.total > t.playback
    assert t.mic_gap < 0.1, "the microphone must be open when playback ends"
    assert turn.result.tts_provider.startswith("http://127.0.0.1:") and turn.result.stt_provider
    # What the speaker played was the question.
    with rig.daemon.client() as client:
        played = client.call(
            client.providers.Transcribe,
            providers_pb2.TranscribeRequest(
                audio=heard, pcm_format=common_pb2.AudioFormat(rate=16000, width=2, channels=1)
            ),
        )
    # The daemon's Piper reads with its usual variation, and tiny.en now and then hears this short
    # question a word or two off ("Which files should they open first?"): most of it is enough to say
    # the speaker played the question and not the answer or nothing.
    assert overlap(QUESTION, played.text) >= 0.6 and overlap(ANSWER, played.text) < 0.5, played.text
    for p in players:
        p.join(30)


def test_speak_only_and_listen_only(rig: Rig) -> None:
    spoken = rig.converse(conversation_pb2.ConverseRequest(message="Done."), method="Speak")
    assert spoken.result is not None and spoken.result.end_reason == "spoken"
    assert "listening" not in spoken.kinds()
    answer = rig.say("Yes, that works for me.")
    _players, on_event = answer_on_listening(rig, answer)
    heard = rig.converse(conversation_pb2.ConverseRequest(), method="Listen", on_event=on_event)  # type: ignore[arg-type]
    assert heard.result is not None and "tts_start" not in heard.kinds()
    assert overlap("yes that works for me", heard.result.text) >= 0.75, heard.result.text


def test_no_answer_returns_quickly(rig: Rig) -> None:
    turn = rig.converse(
        conversation_pb2.ConverseRequest(skip_tts=True, listen_duration_max=30), method="Listen"
    )
    assert turn.result is not None
    assert turn.result.end_reason == "no_speech" and turn.result.text == ""
    assert turn.result.timings.record < 8.0, "the initial-silence timeout (5 s) ends a turn nobody answers"


def test_noise_does_not_hold_the_microphone_open(rig: Rig) -> None:
    import random

    rng = random.Random(7)
    noise = b"".join(struct.pack("<h", int(rng.gauss(0, 1500))) for _ in range(24000 * 12))
    player = rig.play(noise)
    turn = rig.converse(conversation_pb2.ConverseRequest(listen_duration_max=30), method="Listen")
    assert turn.result is not None
    assert turn.result.end_reason in ("no_speech", "silence")
    assert turn.result.timings.record < 10.0, turn.result
    player.join(30)


@pytest.mark.parametrize(
    ("text", "first_half"),
    [
        # The words up to the pause read like a finished sentence; the voice does not: the end-of-turn
        # model hears the rise of "If you want," and waits.
        ("If you want, we can do it tomorrow.", "if you want"),
        # The words do not read finished ("go to"), whatever the voice does.
        ("I think we should go to, the beach this weekend.", "I think we should go to"),
    ],
)
def test_a_mid_sentence_pause_is_not_cut_off(rig: Rig, text: str, first_half: str) -> None:
    answer = stretch_pause(rig.say(text), 24000, 0.8)
    _players, on_event = answer_on_listening(rig, answer)
    turn = listen(rig, on_event)
    assert turn.result is not None
    second_half = text.split(",")[1]
    assert overlap(second_half, turn.result.text) >= 0.66, turn.result.text
    assert overlap(first_half, turn.result.text) >= 0.75, turn.result.text


def test_without_the_turn_model_a_pause_after_finished_words_is_waited_out(rig: Rig) -> None:
    # Said as two sentences, the first half both reads and sounds finished: with the end-of-turn model
    # the turn would end there. VOICEMODE_TURN_MODEL=off (here the caller's own setting) waits 0.9 s.
    # Piper pads each utterance with near-silence; trim it so the pause is 0.8 s, not 0.8 s plus padding.
    first = trim_quiet(rig.say("I think we should move the meeting"), end=True)
    second = trim_quiet(rig.say("to Thursday afternoon."), end=False)
    pause = b"\0\0" * int(24000 * 0.8)
    _players, on_event = answer_on_listening(rig, first + pause + second)
    turn = listen(rig, on_event, VOICEMODE_TURN_MODEL="off")
    assert turn.result is not None
    assert overlap("to thursday afternoon", turn.result.text) >= 0.66, turn.result.text
    assert overlap("I think we should move the meeting", turn.result.text) >= 0.8, turn.result.text
    assert turn.details["transcript"] in ("turn ended: words finished", "turn ended: silence")


def test_never_transcribing_at_pauses_ends_by_the_silence_bound_with_one_transcription(rig: Rig) -> None:
    # A remote STT endpoint may charge per request; VOICEMODE_STT_AT_PAUSES=never asks it once per answer.
    _players, on_event = answer_on_listening(rig, rig.say(ANSWER))
    verdicts = rig.daemon.log_text().count('"conversation.turn_verdict"')
    turn = listen(rig, on_event, VOICEMODE_STT_AT_PAUSES="never")
    assert turn.result is not None
    assert overlap(ANSWER, turn.result.text) >= 0.9, turn.result.text
    assert turn.details["transcript"] == "turn ended: silence"
    assert rig.daemon.log_text().count('"conversation.turn_verdict"') == verdicts, (
        "nothing was asked at pauses"
    )


def test_bad_parameters_are_refused_before_audio(rig: Rig) -> None:
    turn = rig.converse(conversation_pb2.ConverseRequest(message="hi", speed=9.0))
    assert turn.error is not None and turn.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "speed" in (turn.error.details() or "")
    turn = rig.converse(conversation_pb2.ConverseRequest(message="hi", voice="no-such-voice"))
    assert turn.error is not None and turn.error.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "en_US-joe-medium" in (turn.error.details() or ""), "the error names the voices there are"


def speak_holding_the_devices(rig: Rig, message: str, turns: list[Turn]) -> threading.Thread:
    """Speak ``message`` in a thread; returns once that call holds the devices (its speech started)."""
    holding = threading.Event()

    def on_event(kind: str, _turn: Turn) -> None:
        if kind == "tts_start":  # sent from inside the devices' hold
            holding.set()

    def speak() -> None:
        request = conversation_pb2.ConverseRequest(message=message)
        turns.append(rig.converse(request, method="Speak", on_event=on_event))
        holding.set()  # an error before the hold must not leave the test waiting

    thread = threading.Thread(target=speak)
    thread.start()
    assert holding.wait(60), "the first call never started speaking"
    return thread


def test_two_callers_take_turns(rig: Rig) -> None:
    turns: list[Turn] = []
    thread = speak_holding_the_devices(rig, "This is the first caller speaking now.", turns)
    assert not turns, "the first call still holds the devices"
    second = rig.converse(conversation_pb2.ConverseRequest(message="Second caller."), method="Speak")
    thread.join(60)
    assert second.result is not None and turns and turns[0].result is not None
    assert second.kinds()[0] == "queued", second.kinds()
    assert second.result.timings.queue_wait > 0.5

    holder = speak_holding_the_devices(rig, "Holding the speaker for a moment.", turns)
    busy = rig.converse(conversation_pb2.ConverseRequest(message="Busy?", no_wait=True), method="Speak")
    holder.join(60)
    assert busy.error is not None and busy.error.code() == grpc.StatusCode.RESOURCE_EXHAUSTED


def cancel_and_wait_for_the_devices(rig: Rig, call: Any, at: int) -> None:
    """Cancel ``call`` once event ``at`` arrives; the devices must come free promptly (a no-wait call
    gets them within 2 s)."""
    for event in call:
        if event.kind == at:
            break
    cancelled_at = time.monotonic()
    call.cancel()
    while True:
        turn = rig.converse(conversation_pb2.ConverseRequest(message="Next.", no_wait=True), method="Speak")
        if turn.error is None or turn.error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
            break
        assert time.monotonic() - cancelled_at < 2.0, "devices still held 2 s after the caller cancelled"
    assert turn.result is not None, turn.error


def test_cancel_mid_playback_frees_the_devices(rig: Rig) -> None:
    long_text = "This is a long message. " * 12
    call = rig.client.conversation.Converse(conversation_pb2.ConverseRequest(message=long_text), timeout=120)
    cancel_and_wait_for_the_devices(rig, call, conversation_pb2.ConverseEvent.FIRST_AUDIO)


def test_cancel_mid_recording_frees_the_devices(rig: Rig) -> None:
    call = rig.client.conversation.Listen(
        conversation_pb2.ConverseRequest(listen_duration_max=30), timeout=120
    )
    cancel_and_wait_for_the_devices(rig, call, conversation_pb2.ConverseEvent.LISTENING)


def test_stt_down_keeps_the_recording(rig: Rig) -> None:
    answer = rig.say("Keep this answer safe.")
    client = rig.client
    client.call(client.supervisor.StopService, services_pb2.ServiceRequest(name="whisper"))
    try:
        _players, on_event = answer_on_listening(rig, answer)
        turn = rig.converse(conversation_pb2.ConverseRequest(message="Say something."), on_event=on_event)  # type: ignore[arg-type]
        assert turn.error is not None
        assert turn.error.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.FAILED_PRECONDITION)
        details = turn.error.details() or ""
        match = re.search(r"saved in (\S+\.wav)", details)
        assert match, details
        saved = match.group(1)
        assert (rig.daemon.base / "audio").exists() and saved.startswith(str(rig.daemon.base / "audio"))
        assert "listening" in turn.kinds(), "the turn got as far as recording"
    finally:
        client.call(client.supervisor.StartService, services_pb2.ServiceRequest(name="whisper"), timeout=300)
    retried = rig.daemon.ctl("transcribe", "--last")
    assert retried.returncode == 0, retried.stderr
    assert overlap("keep this answer safe", retried.stdout) >= 0.75, retried.stdout


def test_statistics_and_journal(rig: Rig) -> None:
    spoken = rig.converse(conversation_pb2.ConverseRequest(message="Counting turns."), method="Speak")
    assert spoken.result is not None, spoken.error
    stats = rig.client.call(
        rig.client.conversation.GetStatistics, conversation_pb2.GetStatisticsRequest(recent=5)
    )
    assert stats.turns >= 1 and stats.recent
    journal = list((rig.daemon.base / "conversations").glob("*.jsonl"))
    assert journal and "Counting turns." in journal[0].read_text()


@pytest.mark.parametrize("speed", [0.7, 1.5])
def test_speed_changes_the_playback_length(rig: Rig, speed: float) -> None:
    base = rig.converse(
        conversation_pb2.ConverseRequest(message="One two three four five six."), method="Speak"
    )
    changed = rig.converse(
        conversation_pb2.ConverseRequest(message="One two three four five six.", speed=speed), method="Speak"
    )
    assert base.result is not None and changed.result is not None
    ratio = changed.result.timings.playback / base.result.timings.playback
    assert math.isclose(ratio, 1 / speed, rel_tol=0.25), ratio

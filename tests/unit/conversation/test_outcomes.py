"""A turn's result is built once from what its stages returned, or had learnt when it was cut short."""

from __future__ import annotations

from voicemoded.audio.playback import PlaybackResult
from voicemoded.conversation.journal import Timings
from voicemoded.conversation.results import Heard, Spoken, TurnResult

SPOKEN = Spoken(
    played=PlaybackResult("completed", started_at=10.0, ended_at=12.0),
    provider="http://127.0.0.1:8881/v1",
    voice="joe",
    model="piper",
    mapping="af_sky is not offered here",
    ttfa=0.21,
    generation=0.4,
    playback=2.0,
)
HEARD = Heard(
    end_reason="silence",
    text="yes please",
    speech_seconds=1.5,
    stt_provider="http://127.0.0.1:2022/v1",
    recording="/audio/t1.wav",
    warnings=("could not write the recording",),
    mic_gap=0.01,
    record=3.2,
    stt=0.3,
    endpoint_delay=0.6,
)


def test_a_whole_turn_takes_every_field_from_its_stages() -> None:
    r = TurnResult.of("t1", SPOKEN, HEARD, listens=True, queue_wait=0.05, total=6.0)
    assert (r.turn_id, r.text, r.end_reason) == ("t1", "yes please", "silence")
    assert (r.tts_provider, r.voice, r.tts_model, r.voice_mapping) == (
        "http://127.0.0.1:8881/v1",
        "joe",
        "piper",
        "af_sky is not offered here",
    )
    assert (r.stt_provider, r.recording_path, r.speech_seconds) == (
        "http://127.0.0.1:2022/v1",
        "/audio/t1.wav",
        1.5,
    )
    assert r.warnings == ("could not write the recording",)
    assert r.timings == Timings(
        queue_wait=0.05,
        ttfa=0.21,
        generation=0.4,
        playback=2.0,
        mic_gap=0.01,
        record=3.2,
        stt=0.3,
        endpoint_delay=0.6,
        total=6.0,
    )


def test_a_message_played_to_the_end_is_spoken() -> None:
    r = TurnResult.of("t1", SPOKEN, None, listens=False, queue_wait=0.0, total=2.5)
    assert r.end_reason == "spoken" and r.text == "" and r.recording_path == ""
    assert (r.timings.playback, r.timings.record, r.timings.total) == (2.0, 0.0, 2.5)


def test_a_turn_cancelled_mid_message_keeps_who_spoke_and_when_audio_began() -> None:
    partial = Spoken(provider="http://127.0.0.1:8881/v1", voice="joe", ttfa=0.21)
    r = TurnResult.of("t1", partial, None, listens=False, queue_wait=0.0, total=1.0, cancelled=True)
    assert (r.end_reason, r.tts_provider, r.voice, r.timings.ttfa) == (
        "cancelled",
        "http://127.0.0.1:8881/v1",
        "joe",
        0.21,
    )
    assert (r.timings.generation, r.timings.playback) == (0.0, 0.0)


def test_a_turn_cut_short_while_listening_names_the_recording_it_left() -> None:
    listening = Heard(mic_gap=0.01)
    r = TurnResult.of(
        "t1", SPOKEN, listening, listens=True, queue_wait=0.0, total=4.0, kept="/audio/t1.wav", cancelled=True
    )
    assert (r.end_reason, r.recording_path, r.timings.mic_gap, r.timings.record) == (
        "cancelled",
        "/audio/t1.wav",
        0.01,
        0.0,
    )
    assert r.voice == "joe" and r.timings.playback == 2.0  # the message before it was played whole


def test_a_failed_transcription_keeps_how_the_turn_ended_and_where_the_answer_is() -> None:
    failed = Heard(end_reason="silence", speech_seconds=1.5, recording="/audio/t1.wav", record=3.2)
    r = TurnResult.of("t1", SPOKEN, failed, listens=True, queue_wait=0.0, total=4.0)
    assert (r.end_reason, r.recording_path, r.text, r.timings.record) == ("silence", "/audio/t1.wav", "", 3.2)
    # The spool finished by the cut names the recording when the stage had none.
    unsaved = Heard(end_reason="silence", warnings=("could not write the recording",))
    r = TurnResult.of("t1", SPOKEN, unsaved, listens=True, queue_wait=0.0, total=4.0, kept="/audio/t1.wav")
    assert (r.recording_path, r.warnings) == ("/audio/t1.wav", ("could not write the recording",))


def test_a_failure_before_any_stage_ended_has_no_end_reason() -> None:
    # Nothing spoken yet; the message played but the listening never began; the message cut off.
    for listens, spoken in ((False, None), (True, SPOKEN), (False, Spoken(voice="joe"))):
        r = TurnResult.of("t1", spoken, None, listens=listens, queue_wait=0.0, total=1.0)
        assert r.end_reason == ""

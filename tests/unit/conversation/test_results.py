"""A turn's wire forms, each beside its type: gRPC messages, the assistant's summary, the journal line."""

from __future__ import annotations

import json
import subprocess
import sys

from voicemoded.api.v1 import conversation_pb2
from voicemoded.conversation.journal import Timings, TurnRecord
from voicemoded.conversation.results import KINDS, TurnEvent, TurnResult
from voicemoded.render import plain, timestamp

# Every field its own value, so a field copied into the wrong place shows.
TIMINGS = Timings(
    queue_wait=0.0011,
    ttfa=0.2222,
    generation=0.3333,
    playback=1.4444,
    mic_gap=0.0055,
    record=2.6666,
    stt=0.7777,
    endpoint_delay=0.8888,
    total=5.9999,
)
RESULT = TurnResult(
    "20261124-031502-1a2b",
    text="yes please",
    end_reason="silence",
    tts_provider="http://127.0.0.1:8881/v1",
    stt_provider="http://127.0.0.1:2022/v1",
    voice="joe",
    tts_model="piper",
    voice_mapping="af_sky is not offered here; closest female voice is nova",
    recording_path="/audio/20261124-031502-1a2b.wav",
    speech_seconds=1.25,
    language="en",
    timings=TIMINGS,
    warnings=("could not write the recording", "could not write the turn's journal line"),
)
RECORD = TurnRecord(
    "20261124-031502-1a2b",
    1795490102.123456,
    "converse",
    message="shall I go on?",
    text="yes please",
    end_reason="silence",
    voice="joe",
    tts_provider="http://127.0.0.1:8881/v1",
    stt_provider="http://127.0.0.1:2022/v1",
    client="voicemode-mcp",
    cwd="/project",
    timings=TIMINGS,
    recording="/audio/20261124-031502-1a2b.wav",
    error="speech to text failed",
    warnings=["could not write the recording"],
)


def timings_of(msg: conversation_pb2.TurnTimings) -> Timings:
    return Timings(**{name: getattr(msg, name) for name in Timings.__dataclass_fields__})


def test_timings_to_proto_copies_every_timing() -> None:
    assert timings_of(TIMINGS.to_proto()) == TIMINGS
    assert set(Timings.__dataclass_fields__) == {
        f.name for f in conversation_pb2.TurnTimings.DESCRIPTOR.fields
    }


def test_turn_result_to_proto_field_by_field() -> None:
    msg = RESULT.to_proto()
    assert msg.turn_id == "20261124-031502-1a2b"
    assert msg.text == "yes please"
    assert msg.end_reason == "silence"
    assert msg.tts_provider == "http://127.0.0.1:8881/v1"
    assert msg.stt_provider == "http://127.0.0.1:2022/v1"
    assert msg.voice == "joe"
    assert msg.tts_model == "piper"
    assert msg.voice_mapping == "af_sky is not offered here; closest female voice is nova"
    assert msg.recording_path == "/audio/20261124-031502-1a2b.wav"
    assert msg.speech_seconds == 1.25
    assert msg.language == "en"
    assert timings_of(msg.timings) == TIMINGS
    assert list(msg.warnings) == ["could not write the recording", "could not write the turn's journal line"]
    # Nothing in the message is left unset: a field added to the proto needs a line above.
    assert {f.name for f, _ in msg.ListFields()} == {f.name for f in msg.DESCRIPTOR.fields}


def test_turn_result_summary_is_what_an_assistant_reads() -> None:
    assert RESULT.summary() == {
        "text": "yes please",
        "end_reason": "silence",
        "voice": "joe",
        "tts_provider": "http://127.0.0.1:8881/v1",
        "stt_provider": "http://127.0.0.1:2022/v1",
        "language": "en",
        "recording": "/audio/20261124-031502-1a2b.wav",
        "warnings": "could not write the recording; could not write the turn's journal line",
        "timings": {
            "queue_wait": 0.001,
            "ttfa": 0.222,
            "generation": 0.333,
            "playback": 1.444,
            "mic_gap": 0.005,
            "record": 2.667,
            "stt": 0.778,
            "endpoint_delay": 0.889,
            "total": 6.0,
        },
    }


def test_turn_result_summary_leaves_empty_fields_out() -> None:
    summary = TurnResult("t1", text="hi", end_reason="spoken").summary()
    assert summary == {"text": "hi", "end_reason": "spoken", "timings": plain(Timings())}
    assert "warnings" not in summary and "recording" not in summary and "voice" not in summary


def test_turn_event_to_proto() -> None:
    event = TurnEvent("transcript", 1.5, 1795490102.25, detail="turn ended: silence", text="yes please")
    msg = event.to_proto()
    assert msg.kind == conversation_pb2.ConverseEvent.TRANSCRIPT
    assert msg.t == 1.5
    assert abs(msg.time.ToNanoseconds() - 1795490102_250_000_000) < 1000  # a double's precision
    assert (msg.detail, msg.text) == ("turn ended: silence", "yes please")
    assert not msg.HasField("result")
    done = TurnEvent("done", 6.0, 1795576507.0, detail="; ".join(RESULT.warnings), result=RESULT).to_proto()
    assert done.kind == conversation_pb2.ConverseEvent.DONE
    assert done.result == RESULT.to_proto()


def test_every_event_kind_the_loop_emits_has_its_number() -> None:
    emitted = [
        "queued",
        "tts_start",
        "first_audio",
        "playback_end",
        "listening",
        "speech_start",
        "speech_end",
        "barge_in",
        "transcript",
        "progress",
        "done",
    ]
    for kind in emitted:
        number = TurnEvent(kind, 0.0, 0.0).to_proto().kind
        assert conversation_pb2.ConverseEvent.Kind.Name(number) == kind.upper()
    assert (
        TurnEvent("something new", 0.0, 0.0).to_proto().kind
        == conversation_pb2.ConverseEvent.KIND_UNSPECIFIED
    )
    assert len(KINDS) == len(emitted) + 1  # and KIND_UNSPECIFIED


def test_turn_record_to_proto() -> None:
    msg = RECORD.to_proto()
    assert msg.turn_id == "20261124-031502-1a2b"
    assert msg.time == timestamp(1795490102.123456)
    assert abs(msg.time.ToNanoseconds() - 1795490102_123_456_000) < 1000
    assert (msg.message, msg.text, msg.end_reason) == ("shall I go on?", "yes please", "silence")
    assert msg.error == "speech to text failed"
    assert timings_of(msg.timings) == TIMINGS
    assert TurnRecord("t1", 0.0, "speak").to_proto().error == ""


def test_turn_record_summary() -> None:
    assert RECORD.summary() == {
        "turn_id": "20261124-031502-1a2b",
        "time": 1795490102.123,
        "message": "shall I go on?",
        "text": "yes please",
        "end_reason": "silence",
        "error": "speech to text failed",
        "total_s": 6.0,
    }
    # Empty text, no error: left out; a zero total is still a total.
    assert TurnRecord("t1", 12.0, "speak", message="hello", end_reason="spoken").summary() == {
        "turn_id": "t1",
        "time": 12.0,
        "message": "hello",
        "end_reason": "spoken",
        "total_s": 0.0,
    }


def test_turn_record_journal_line() -> None:
    line = RECORD.journal_line()
    assert line.endswith(b"\n") and line.count(b"\n") == 1
    entry = json.loads(line)
    assert entry["v"] == 1
    assert entry["time"] == "2026-11-24T03:15:02.123Z"
    assert entry["timings"]["ttfa"] == 0.2222 and entry["timings"]["total"] == 5.9999
    assert entry["warnings"] == ["could not write the recording"]
    assert (
        entry["recording"] == "/audio/20261124-031502-1a2b.wav" and entry["error"] == "speech to text failed"
    )
    assert (entry["client"], entry["cwd"], entry["mode"]) == ("voicemode-mcp", "/project", "converse")
    bare = json.loads(TurnRecord("t1", 0.0, "speak", message="café").journal_line())
    assert "warnings" not in bare and bare["recording"] is None and bare["error"] is None
    assert bare["message"] == "café" and bare["time"] == "1970-01-01T00:00:00.000Z"
    # A name that is not UTF-8 (a cwd from the file system) is written as its bytes, not refused.
    assert b'"cwd": "/caf\xe9"' in TurnRecord("t1", 0.0, "speak", cwd="/caf\udce9").journal_line()


def test_results_import_no_audio_stack() -> None:
    code = (
        "import sys, voicemoded.conversation.results;"
        "heavy = [m for m in ('numpy', 'pyaudio', 'soxr', 'av', 'openai', 'webrtcvad') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""

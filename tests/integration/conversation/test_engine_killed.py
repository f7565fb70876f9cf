"""An engine child killed in the middle of a turn (the OOM killer, a crash in a native library).

The turn ends by itself with the answer or a clear error that names the kept recording, the supervisor
brings the engine back, and the next turn works: no daemon restart, nothing the person said lost.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import grpc

from tests.integration.conversation.conftest import Rig, Turn
from tests.integration.conversation.test_converse import overlap
from voicemoded.api.v1 import conversation_pb2, services_pb2

ANSWER = "Please open the settings file and check the port number."


def service(rig: Rig, name: str) -> services_pb2.ServiceInfo:
    return rig.client.call(
        rig.client.supervisor.GetService, services_pb2.ServiceRequest(name=name), timeout=10
    )


def wait_running_again(rig: Rig, name: str, old_pid: int, timeout: float = 120.0) -> services_pb2.ServiceInfo:
    deadline = time.monotonic() + timeout
    while True:
        info = service(rig, name)
        if info.state == services_pb2.RUNNING and info.pid not in (0, old_pid):
            return info
        assert time.monotonic() < deadline, f"{name} did not come back: {info}"
        time.sleep(0.2)  # polling a state the daemon reports; each read is a real GetService call


def assert_clear(error: grpc.RpcError | None) -> None:
    if error is not None:
        assert error.code() != grpc.StatusCode.INTERNAL and "this is a bug" not in (error.details() or "")


def test_whisper_killed_while_the_person_answers(rig: Rig) -> None:
    before = service(rig, "whisper")
    answer = rig.say(ANSWER)
    killed = threading.Event()

    def on_event(kind: str, _turn: Turn) -> None:
        if kind == "listening":
            rig.play(answer)
        elif kind == "speech_start" and not killed.is_set():
            os.kill(before.pid, signal.SIGKILL)
            killed.set()

    turn = rig.converse(
        conversation_pb2.ConverseRequest(listen_duration_max=30), method="Listen", on_event=on_event
    )
    assert killed.is_set()
    assert_clear(turn.error)
    if turn.error is not None:  # STT was down when the answer ended: the recording is kept and named
        words = (w.strip("'\"(),.:;") for w in (turn.error.details() or "").split())
        kept = [w for w in words if w.endswith(".wav")]
        assert kept and Path(kept[0]).is_file(), turn.error.details()
    else:
        assert turn.result is not None and overlap(ANSWER, turn.result.text) >= 0.6, turn.result

    after = wait_running_again(rig, "whisper", before.pid)
    assert after.restarts == before.restarts + 1 and "SIGKILL" in after.last_exit, after
    players: list[threading.Thread] = []

    def answer_again(kind: str, _turn: Turn) -> None:
        if kind == "listening":
            players.append(rig.play(rig.say("Yes, that works for me.")))

    again = rig.converse(
        conversation_pb2.ConverseRequest(listen_duration_max=30), method="Listen", on_event=answer_again
    )
    assert again.result is not None, again.error
    assert overlap("yes that works for me", again.result.text) >= 0.75, again.result.text


def test_piper_killed_while_it_speaks(rig: Rig) -> None:
    before = service(rig, "piper")
    killed = threading.Event()

    def on_event(kind: str, _turn: Turn) -> None:
        if kind == "tts_start" and not killed.is_set():
            os.kill(before.pid, signal.SIGKILL)
            killed.set()

    long_text = "This is a long sentence that keeps the speaker busy for a while. " * 3
    turn = rig.converse(
        conversation_pb2.ConverseRequest(message=long_text), method="Speak", on_event=on_event
    )
    assert killed.is_set()
    assert_clear(turn.error)
    after = wait_running_again(rig, "piper", before.pid)
    assert after.restarts == before.restarts + 1, after
    spoken = rig.converse(conversation_pb2.ConverseRequest(message="Done."), method="Speak")
    assert spoken.result is not None and spoken.result.end_reason == "spoken", spoken.error

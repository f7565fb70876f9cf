"""The sound server restarts in the middle of a turn (a PulseAudio/PipeWire restart, a USB re-plug).

What the person said before the restart is not lost, the turn ends by itself, and the daemon goes on
serving turns on the new server without being restarted.
"""

from __future__ import annotations

import threading

from tests.integration.conversation.conftest import Rig, Turn
from tests.integration.conversation.test_converse import overlap
from voicemoded.api.v1 import conversation_pb2, daemon_pb2


def test_a_sound_server_restart_mid_answer_keeps_what_was_heard(rig: Rig) -> None:
    before = rig.say("Please open the settings file first.")
    heard_before = threading.Event()
    restarted = threading.Event()

    def on_event(kind: str, turn: Turn) -> None:
        if kind == "listening":
            player = rig.play(before)

            def restart_after_the_words() -> None:
                player.join(30)
                heard_before.set()
                rig.audio.restart()
                restarted.set()

            threading.Thread(target=restart_after_the_words, daemon=True).start()

    turn = rig.converse(
        conversation_pb2.ConverseRequest(listen_duration_max=30), method="Listen", on_event=on_event
    )
    assert heard_before.wait(30) and restarted.wait(30), "the answer was not played and the server restarted"
    assert turn.error is None, turn.error
    assert turn.result is not None
    assert overlap("please open the settings file first", turn.result.text) >= 0.6, turn.result.text

    # The daemon is still healthy and hears the next answer on the restarted server.
    status = rig.client.call(rig.client.daemon.GetStatus, daemon_pb2.GetStatusRequest(), timeout=10)
    assert status.pid == rig.daemon.process.pid
    after = rig.say("Yes, that works for me.")
    players: list[threading.Thread] = []

    def answer(kind: str, _turn: Turn) -> None:
        if kind == "listening":
            players.append(rig.play(after))

    again = rig.converse(
        conversation_pb2.ConverseRequest(listen_duration_max=30), method="Listen", on_event=answer
    )
    assert again.result is not None, again.error
    assert overlap("yes that works for me", again.result.text) >= 0.75, again.result.text


def test_a_sound_server_restart_mid_playback_ends_the_turn_clearly(rig: Rig) -> None:
    """The speaker's stream breaks under the daemon: the turn ends (spoken or a clear error), never hangs."""
    ready = rig.converse(conversation_pb2.ConverseRequest(message="Ready."), method="Speak")
    assert ready.result is not None, ready.error
    started = threading.Event()
    restarting: list[threading.Thread] = []

    def on_event(kind: str, _turn: Turn) -> None:
        if kind == "first_audio" and not started.is_set():
            started.set()
            restarting.append(threading.Thread(target=rig.audio.restart, daemon=True))
            restarting[-1].start()

    long_text = "This is a long sentence that keeps the speaker busy for a while, " * 3
    turn = rig.converse(
        conversation_pb2.ConverseRequest(message=long_text), method="Speak", on_event=on_event
    )
    assert started.is_set()
    for thread in restarting:  # the new server is up (and the rig knows its pid) before anything else
        thread.join(30)
    if turn.error is not None:
        details = turn.error.details() or ""
        assert "this is a bug" not in details, details
    else:
        assert turn.result is not None and turn.result.end_reason
    spoken = rig.converse(conversation_pb2.ConverseRequest(message="Done."), method="Speak")
    assert spoken.result is not None and spoken.result.end_reason == "spoken", spoken.error

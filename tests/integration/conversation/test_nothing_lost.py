"""Nothing a person said is lost: not to a killed daemon, a stop past its grace, nor a full disk.

The daemons that are killed here are spares on the same virtual devices, transcribing with the rig's
Whisper, so the package's daemon (and its engines) go on serving the other tests.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import wave
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import grpc
import pytest

from tests.integration.conversation.conftest import KIND, Rig, Turn
from tests.integration.conversation.test_converse import overlap
from voicemoded.api.v1 import common_pb2, conversation_pb2, daemon_pb2, services_pb2
from voicemoded.testing.daemon import DaemonHandle, daemon_handle

LONG_ANSWER = (
    "Please open the settings file and check the port number, then tell me what it prints on the first line."
)
"""4.9 s of speech: the daemons are stopped well before its end."""
FIRST_WORDS = "please open the settings file"


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> None:
    """Poll a condition the test cannot be told about (a file growing on disk) until it holds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def spooled_seconds(audio_dir: Path) -> float:
    """Seconds of answer the spool of the turn in progress says it holds (its header lags the data by
    at most half a second), 0 while there is none."""
    seconds = 0.0
    for part in audio_dir.glob("*.wav.part") if audio_dir.exists() else ():
        with contextlib.suppress(OSError, EOFError, wave.Error):
            seconds = max(seconds, wav_seconds(part))
    return seconds


def wav_seconds(path: Path) -> float:
    with wave.open(str(path), "rb") as wav:
        return wav.getnframes() / wav.getframerate()


def journal_lines(base: Path) -> list[dict[str, object]]:
    return [
        json.loads(line) for day in sorted((base / "conversations").glob("*.jsonl")) for line in day.open()
    ]


@pytest.fixture
def spare(rig: Rig) -> Iterator[DaemonHandle]:
    """A second daemon on the rig's devices with no engines of its own: STT is the rig's Whisper."""
    whisper = rig.client.call(rig.client.supervisor.GetService, services_pb2.ServiceRequest(name="whisper"))
    for handle in daemon_handle():
        handle.env.update(rig.audio.env)
        handle.env.update(
            VOICEMODE_STT_BASE_URLS=f"http://127.0.0.1:{whisper.port}/v1", VOICEMODE_SHUTDOWN_GRACE="1"
        )
        handle.start()
        yield handle


@contextlib.contextmanager
def listen_and_answer(rig: Rig, daemon: DaemonHandle, answer: bytes, **env: str) -> Iterator[Any]:
    """A listen-only turn on ``daemon`` (its call is yielded); the scripted person answers once it
    listens, and the microphone is quiet again when this ends (the rest of the answer played out)."""
    players: list[threading.Thread] = []
    with daemon.client() as client:
        request = conversation_pb2.ConverseRequest(
            caller=common_pb2.CallerContext(env=env), listen_duration_max=30
        )
        call = client.conversation.Listen(request, timeout=120)
        try:
            for event in call:
                if KIND[event.kind] == "listening":
                    players.append(rig.play(answer))
                    break
            yield call
        finally:
            call.cancel()
            for player in players:
                player.join(30)


def test_a_daemon_killed_mid_answer_leaves_the_words_for_transcribe_last(
    rig: Rig, spare: DaemonHandle
) -> None:
    answer = rig.say(LONG_ANSWER)
    audio_dir = spare.base / "audio"
    with listen_and_answer(rig, spare, answer):
        wait_for(lambda: spooled_seconds(audio_dir) >= 2.5, 30, "2.5 s of the answer on disk")
        assert spare.process is not None
        spare.process.kill()  # SIGKILL: no finally block runs, nothing is flushed by the daemon
        spare.process.wait(10)
    spare.start()
    # The restarted daemon finished the spool before serving, and its journal says the turn was cut short.
    (line,) = [x for x in journal_lines(spare.base) if x.get("end_reason") == "interrupted"]
    assert str(line["recording"]).endswith(".wav") and "transcribe --last" in str(line["error"]), line
    retried = spare.ctl("transcribe", "--last")
    assert retried.returncode == 0, retried.stderr
    assert overlap(FIRST_WORDS, retried.stdout) >= 0.8, retried.stdout
    assert overlap("tell me what it prints on the first line", retried.stdout) < 0.5, "only what was heard"
    (kept,) = audio_dir.glob("*.wav")
    assert 2.4 <= wav_seconds(kept) < 6.0
    assert not list(audio_dir.glob("*.part"))


@pytest.mark.parametrize("save", ["true", "false"])
def test_a_stop_past_the_grace_keeps_the_answer_and_names_it(
    rig: Rig, spare: DaemonHandle, save: str
) -> None:
    # Kept whatever VOICEMODE_SAVE_AUDIO says: the turn was cut short, so no transcript exists yet.
    answer = rig.say(LONG_ANSWER)
    with listen_and_answer(rig, spare, answer, VOICEMODE_SAVE_AUDIO=save) as call:
        wait_for(lambda: spooled_seconds(spare.base / "audio") >= 1.5, 30, "1.5 s of the answer on disk")
        spare.signal(signal.SIGTERM)
        with pytest.raises(grpc.RpcError):
            for _event in call:
                pass
        assert spare.process is not None and spare.process.wait(20) == 0
    (line,) = journal_lines(spare.base)
    assert line["end_reason"] == "cancelled"
    recording = Path(str(line["recording"]))
    assert recording.is_file() and recording.parent == spare.base / "audio", line
    assert f"kept in {recording}" in str(line["error"])
    # The grace (1 s) went by with the person still talking: all of it is in the recording.
    assert wav_seconds(recording) >= 2.4
    heard = rig.daemon.ctl("transcribe", str(recording))
    assert heard.returncode == 0 and overlap(FIRST_WORDS, heard.stdout) >= 0.8, heard.stdout


def test_a_stop_on_a_full_disk_exits_cleanly_and_keeps_the_answer(rig: Rig, spare: DaemonHandle) -> None:
    answer = rig.say(LONG_ANSWER)
    with unwritable(spare.base / "conversations"), listen_and_answer(rig, spare, answer) as call:
        wait_for(lambda: spooled_seconds(spare.base / "audio") >= 1.5, 30, "1.5 s of the answer on disk")
        spare.signal(signal.SIGTERM)
        with pytest.raises(grpc.RpcError):
            for _event in call:
                pass
        assert spare.process is not None and spare.process.wait(20) == 0, "a full disk is no crash"
    (kept,) = (spare.base / "audio").glob("*.wav")
    assert wav_seconds(kept) >= 2.4
    assert '"storage.write_failed"' in spare.log_text(), "the lost journal line is said, not silent"


@contextlib.contextmanager
def unwritable(folder: Path) -> Iterator[str]:
    """Make ``folder`` refuse new data for real: a full tmpfs over it as root (ENOSPC), else a folder the
    daemon's user may not write (EACCES). Yields the error text the daemon should report."""
    folder.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0:
        folder.chmod(0o500)
        try:
            yield "EACCES"
        finally:
            folder.chmod(0o700)
        return
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(folder)], check=True)
    try:
        filler = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT, 0o600)
        with contextlib.suppress(OSError):
            while True:
                os.write(filler, b"\0" * 4096)
        os.close(filler)
        yield "ENOSPC"
    finally:
        subprocess.run(["umount", str(folder)], check=True)


def subsystem(daemon: DaemonHandle, name: str) -> daemon_pb2.SubsystemHealth:
    with daemon.client() as client:
        status = client.call(client.daemon.GetStatus, daemon_pb2.GetStatusRequest(), timeout=10)
    return next(s for s in status.subsystems if s.name == name)


def listen(rig: Rig, answer: bytes, **env: str) -> Turn:
    def on_event(kind: str, _turn: Turn) -> None:
        if kind == "listening":
            rig.play(answer)

    request = conversation_pb2.ConverseRequest(
        caller=common_pb2.CallerContext(env=env), listen_duration_max=30
    )
    return rig.converse(request, method="Listen", on_event=on_event)


def test_a_full_disk_costs_the_files_not_the_transcript(rig: Rig) -> None:
    answer = rig.say("Keep this answer safe.")
    base = rig.daemon.base
    with unwritable(base / "audio") as why, unwritable(base / "conversations"):
        turn = listen(rig, answer, VOICEMODE_SAVE_AUDIO="true")
        assert turn.error is None, turn.error
        assert turn.result is not None
        assert overlap("keep this answer safe", turn.result.text) >= 0.75, turn.result.text
        assert turn.result.recording_path == ""
        warnings = turn.details["done"]
        assert "could not write the recording" in warnings and why in warnings, warnings
        assert "could not write the turn's journal line" in warnings, warnings
        assert turn.details["progress"].startswith("warning: could not write"), turn.details
        storage = subsystem(rig.daemon, "storage")
        assert storage.state == daemon_pb2.SubsystemHealth.DEGRADED, storage
        assert (
            "the recording" in storage.detail and "journal line" in storage.detail and why in storage.detail
        )
        status = rig.daemon.ctl("status")
        assert status.returncode == 0 and "storage" in status.stdout and why in status.stdout, status.stdout
        assert sorted(p.name for p in (base / "audio").iterdir()) == ["filler"] or why == "EACCES", (
            "no empty or partial recording is left"
        )

    # Room again: the next saved answer is written and `status` says the failure is past.
    saved = listen(rig, answer, VOICEMODE_SAVE_AUDIO="true")
    assert saved.result is not None and saved.result.recording_path, saved.error
    assert wav_seconds(Path(saved.result.recording_path)) > 0.5
    assert subsystem(rig.daemon, "storage").detail.startswith("writing again")


def test_with_saving_off_a_full_journal_is_said_in_the_cli(rig: Rig) -> None:
    answer = rig.say("Yes, that works for me.")
    with unwritable(rig.daemon.base / "conversations") as why:
        cli = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "voicemodectl",
                "--socket",
                str(rig.daemon.socket),
                "listen",
                "--max",
                "30",
            ],
            env=rig.daemon.env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert cli.stderr is not None
        lines: list[str] = []
        for line in cli.stderr:
            lines.append(line)
            if "listening" in line:
                player = rig.play(answer)
                break
        out, err = cli.communicate(timeout=60)
        player.join(30)
    assert cli.returncode == 0, "".join(lines) + err
    assert overlap("yes that works for me", out) >= 0.75, out
    assert "warning: could not write the turn's journal line" in err and why in err, err

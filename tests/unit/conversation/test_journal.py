"""The conversation journal: lines survive kills and full disks; interrupted turns are journalled."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
import wave
from pathlib import Path

from voicemoded.conversation.journal import (
    Journal,
    TurnRecord,
    append_line,
    last_recording,
    read_journal,
    recover_interrupted_turns,
)

QUIET = (
    "import structlog, sys; structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))\n"
)

APPENDER = (
    QUIET
    + """
import sys
from pathlib import Path
from voicemoded.conversation.journal import append_line
path, start = Path(sys.argv[1]), int(sys.argv[2])
# One line of many pages, renumbered in place: the writer spends its time in write(), where the kernel
# stops copying at a kill and leaves the start of the line.
line = bytearray(b'{"n": 00000000, "pad": "' + b"x" * 2_000_000 + b'"}\\n')
for n in range(start, start + 10_000):
    line[6:14] = b"%8d" % n
    append_line(path, line)
    print(n, flush=True)
"""
)


def test_a_writer_killed_mid_line_never_costs_a_whole_line(tmp_path: Path) -> None:
    path = tmp_path / "day.jsonl"
    rng = random.Random(13)
    acked: list[int] = []
    torn = 0
    for _ in range(6):
        child = subprocess.Popen(
            [sys.executable, "-c", APPENDER, str(path), str(len(acked) * 1000)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        for _ in range(rng.randint(1, 3)):  # let it write a few lines, then kill it wherever it is
            acked.append(int(child.stdout.readline()))
        time.sleep(rng.uniform(0, 0.002))  # not a wait for a state: the kill lands at a random point
        child.kill()
        child.wait(10)
        torn += not path.read_bytes().endswith(b"\n")
        # Readers skip a torn last line and lose nothing that was acknowledged.
        seen = {entry["n"] for entry in read_journal(path)}
        assert set(acked) <= seen
    append_line(path, b'{"n": -1}\n')
    lines = path.read_bytes().splitlines()
    entries = [json.loads(line) for line in lines]  # every line parses: a torn tail was cut before the append
    assert set(acked) <= {e["n"] for e in entries}
    assert entries[-1] == {"n": -1}
    print(f"{len(acked)} acknowledged lines, {torn} kills left a torn tail, all {len(lines)} lines whole")


def test_a_journal_on_a_full_disk_says_so_and_keeps_the_turn(tmp_path: Path) -> None:
    script = (
        QUIET
        + """
import resource, sys, time
from pathlib import Path
from voicemoded.conversation.journal import Journal, TurnRecord
journal = Journal(Path(sys.argv[1]))
journal.append(TurnRecord("t0", time.time(), "listen", text="short"))
resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
print(journal.append(TurnRecord("t1", time.time(), "listen", text="x" * 10_000)))
print(journal.storage.health())
print(journal.turns)
"""
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path)], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    failure, health, turns = out.stdout.splitlines()
    assert "could not write the turn's journal line" in failure and "EFBIG" in failure, failure
    assert "degraded" in health and turns == "2"
    (day,) = tmp_path.glob("*.jsonl")
    assert [json.loads(line)["turn_id"] for line in day.read_bytes().splitlines()] == ["t0"], (
        "no partial line"
    )
    assert oct(day.stat().st_mode & 0o777) == "0o600"


SPOOLER = (
    QUIET
    + """
import sys
from pathlib import Path
from voicemoded.audio.spool import Spool
spool = Spool(Path(sys.argv[1]) / "20261124-031502-1a2b.wav",
              meta={"turn_id": "20261124-031502-1a2b", "mode": "converse", "message": "Which file?",
                    "client": "voicemode-mcp", "started": "1790000000.000"})
spool.open(bytes(16000))
spool.write(bytes(16000))
print("spooled", flush=True)
sys.stdin.read()
"""
)


def test_an_interrupted_turn_is_journalled_and_its_answer_is_the_last_recording(tmp_path: Path) -> None:
    audio = tmp_path / "audio"
    older = audio / "older.wav"
    audio.mkdir()
    with wave.open(str(older), "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(16000)
        wav.writeframes(bytes(3200))
    child = subprocess.Popen(
        [sys.executable, "-c", SPOOLER, str(audio)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "spooled"
        assert last_recording(audio) == older, "a spool being written is not a kept recording yet"
    finally:
        child.kill()
        child.wait(10)
    journal = Journal(tmp_path / "conversations")
    (kept,) = recover_interrupted_turns(audio, journal)
    assert kept == audio / "20261124-031502-1a2b.wav"
    with wave.open(str(kept), "rb") as wav:
        assert wav.getnframes() == 16000
    (record,) = journal.recent()
    assert record.end_reason == "interrupted" and record.recording == str(kept)
    assert (
        record.message == "Which file?" and record.client == "voicemode-mcp" and record.time == 1790000000.0
    )
    assert record.error is not None and "transcribe --last" in record.error
    assert last_recording(audio) == kept
    assert recover_interrupted_turns(audio, journal) == [], "finished once"


def test_last_recording_finishes_a_dead_spool_by_itself(tmp_path: Path) -> None:
    # A daemon whose start did not finish spools first (or an older one) still finds the answer.
    child = subprocess.Popen(
        [sys.executable, "-c", SPOOLER, str(tmp_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdout is not None and child.stdout.readline().strip() == "spooled"
    child.kill()
    child.wait(10)
    found = last_recording(tmp_path)
    assert found == tmp_path / "20261124-031502-1a2b.wav"
    with wave.open(str(found), "rb") as wav:
        assert wav.getnframes() == 16000


def test_warnings_reach_the_journal_line(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert (
        journal.append(TurnRecord("t", 1790000000.0, "listen", warnings=["could not write the recording"]))
        is None
    )
    assert journal.append(TurnRecord("u", 1790000000.0, "listen")) is None
    (day,) = tmp_path.glob("*.jsonl")
    first, second = read_journal(day)
    assert first["warnings"] == ["could not write the recording"] and "warnings" not in second


def test_a_room_turn_names_its_room_and_a_local_one_none(tmp_path: Path) -> None:
    journal = Journal(tmp_path)
    assert journal.append(TurnRecord("t", 1790000000.0, "speak", room="standup")) is None
    assert journal.append(TurnRecord("u", 1790000000.0, "speak")) is None
    (day,) = tmp_path.glob("*.jsonl")
    first, second = read_journal(day)
    assert first["room"] == "standup" and "room" not in second
    assert journal.recent()[0].summary()["room"] == "standup" and "room" not in journal.recent()[1].summary()

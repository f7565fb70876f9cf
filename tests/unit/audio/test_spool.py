"""The answer spool: a writer killed mid-answer leaves a recording that can be finished and read."""

from __future__ import annotations

import math
import subprocess
import sys
import wave
from pathlib import Path

from voicemoded.audio.format import SPEECH_FORMAT
from voicemoded.audio.spool import Spool, recover, recover_all, spool_path
from voicemoded.health import StorageHealth

TONE = b"".join(
    int(8000 * math.sin(2 * math.pi * 440 * i / 16000)).to_bytes(2, "little", signed=True)
    for i in range(16000)
)
"""One second of a 440 Hz tone, 16 kHz mono int16."""

QUIET = (
    "import structlog, sys; structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.stderr))\n"
)

WRITER = (
    QUIET
    + """
import sys
from pathlib import Path
from voicemoded.audio.spool import Spool
tone = Path(sys.argv[2]).read_bytes()
spool = Spool(Path(sys.argv[1]), meta={"turn_id": "t1", "mode": "listen", "message": "which file?"})
spool.open(tone[:8000])
for at in range(8000, len(tone), 3200):
    spool.write(tone[at : at + 3200])
print("written", spool.written, flush=True)
sys.stdin.read()  # held open (and locked) until killed
"""
)


def frames(path: Path) -> bytes:
    with wave.open(str(path), "rb") as wav:
        assert (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) == (16000, 2, 1)
        return wav.readframes(wav.getnframes())


def test_a_killed_writer_leaves_every_sample_it_wrote(tmp_path: Path) -> None:
    (tmp_path / "tone.pcm").write_bytes(TONE)
    recording = tmp_path / "audio" / "t1.wav"
    child = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(recording), str(tmp_path / "tone.pcm")],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert child.stdout is not None
        assert child.stdout.readline().split() == ["written", str(len(TONE))]
        part = spool_path(recording)
        assert part.exists() and oct(part.stat().st_mode & 0o777) == "0o600"
        assert recover(part) is None, "a spool its writer still holds is a turn in progress"
        # What the spool already says is a valid WAV up to the last sync (every 0.5 s of audio).
        assert len(frames(part)) >= len(TONE) - SPEECH_FORMAT.bytes_for(0.5)
    finally:
        child.kill()
        child.wait(10)
    found = recover_all(recording.parent)
    assert [r.path for r in found] == [recording]
    assert not part.exists()
    assert frames(recording) == TONE, "every sample written before the kill is in the recording"
    assert found[0].seconds == 1.0
    assert found[0].meta == {"turn_id": "t1", "mode": "listen", "message": "which file?"}


def test_commit_keeps_exactly_the_utterance(tmp_path: Path) -> None:
    recording = tmp_path / "t2.wav"
    spool = Spool(recording)
    spool.open(TONE)
    assert spool.commit(TONE[:16000], 0) == recording
    assert frames(recording) == TONE[:16000] and not spool_path(recording).exists()
    # An utterance that starts later than the spool (a cough forgotten before the answer) is rewritten.
    other = tmp_path / "t3.wav"
    spool = Spool(other)
    spool.open(TONE)
    assert spool.commit(TONE[6400:12800], 6400) == other
    assert frames(other) == TONE[6400:12800]


def test_keep_and_discard(tmp_path: Path) -> None:
    kept = Spool(tmp_path / "cut.wav")
    kept.open(TONE[:3200])
    kept.write(TONE[3200:6400])
    assert kept.keep() == tmp_path / "cut.wav" and frames(tmp_path / "cut.wav") == TONE[:6400]
    gone = Spool(tmp_path / "done.wav")
    gone.open(TONE)
    gone.discard()
    assert list(tmp_path.iterdir()) == [tmp_path / "cut.wav"]
    never = Spool(tmp_path / "silent.wav")
    assert never.keep() is None, "no speech, no spool, nothing kept"


FULL = (
    QUIET
    + """
import resource, sys
from pathlib import Path
from voicemoded.audio.spool import Spool
from voicemoded.health import StorageHealth
resource.setrlimit(resource.RLIMIT_FSIZE, (20000, 20000))
storage = StorageHealth()
spool = Spool(Path(sys.argv[1]), storage=storage)
spool.open(bytes(16000))
spool.write(bytes(16000))  # past the file-size limit: EFBIG, as a full disk gives ENOSPC
print(spool.failure)
print(spool.commit(bytes(32000), 0))
print(storage.health())
"""
)


def test_a_full_disk_is_reported_not_raised(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", FULL, str(tmp_path / "t4.wav")], capture_output=True, text=True, timeout=30
    )
    assert out.returncode == 0, out.stderr
    failure, committed, health = out.stdout.splitlines()
    assert "could not write the recording" in failure and "EFBIG" in failure, failure
    assert "free some space" in failure
    assert committed == "None"
    assert "degraded" in health and "EFBIG" in health
    assert not (tmp_path / "t4.wav").exists(), "no truncated file posing as the recording"


def test_storage_health_names_the_last_failure_until_a_write_succeeds(tmp_path: Path) -> None:
    storage = StorageHealth()
    assert storage.health().state == "ok"
    message = storage.failed("the recording", tmp_path / "x.wav", PermissionError(13, "Permission denied"))
    assert "EACCES" in message and "writable" in message
    assert storage.health().state == "degraded"
    storage.wrote("the recording")
    health = storage.health()
    assert health.state == "ok" and "last failure" in health.detail

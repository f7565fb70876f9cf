"""Kept recordings handed out by turn id: only files the journal names, only inside the audio folder."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, cast

import pytest

from voicemoded.api.errors import NotFound, TooLarge
from voicemoded.app import statistics
from voicemoded.app.statistics import Statistics
from voicemoded.conversation.journal import Journal, TurnRecord


def setup(tmp_path: Path, recording: str | None) -> Statistics:
    journal = Journal(tmp_path / "conversations")
    journal.append(TurnRecord("20261201-120000-abcd", 1.0, "converse", recording=recording))
    return Statistics(journal, cast(Any, None), audio_dir=tmp_path / "audio")


def fetch(stats: Statistics, turn_id: str = "20261201-120000-abcd") -> statistics.KeptRecording:
    return asyncio.run(stats.recording(turn_id))


def test_a_kept_recording_is_read_with_its_format(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    path = tmp_path / "audio" / "20261201-120000-abcd.flac"
    path.write_bytes(b"fLaC....")
    kept = fetch(setup(tmp_path, str(path)))
    assert kept.data == b"fLaC...." and kept.format == "flac" and kept.mime_type == "audio/flac"


def test_the_journal_line_says_whether_a_recording_was_kept(tmp_path: Path) -> None:
    assert TurnRecord("a", 1.0, "converse", recording="/x/a.wav").to_proto().recording_kept
    assert not TurnRecord("a", 1.0, "converse").to_proto().recording_kept


@pytest.mark.parametrize("where", ["elsewhere/x.wav", "audio/../x.wav", "audio/notes.txt"])
def test_a_file_outside_the_audio_folder_or_not_a_recording_is_never_read(tmp_path: Path, where: str) -> None:
    (tmp_path / "audio").mkdir()
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / where
    target.resolve().write_bytes(b"secret")
    with pytest.raises(NotFound):
        fetch(setup(tmp_path, str(target)))


def test_unknown_turns_missing_files_and_turns_without_one_are_not_found(tmp_path: Path) -> None:
    (tmp_path / "audio").mkdir()
    with pytest.raises(NotFound, match="no recent turn"):
        fetch(setup(tmp_path, None), "20990101-000000-0000")
    with pytest.raises(NotFound, match="kept no recording"):
        fetch(setup(tmp_path, None))
    with pytest.raises(NotFound, match="is gone"):
        fetch(setup(tmp_path, str(tmp_path / "audio" / "20261201-120000-abcd.wav")))


def test_a_recording_over_the_bound_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "audio").mkdir()
    path = tmp_path / "audio" / "20261201-120000-abcd.wav"
    path.write_bytes(b"RIFF" + b"\0" * 100)
    monkeypatch.setattr(statistics, "MAX_RECORDING_BYTES", 50)
    with pytest.raises(TooLarge):
        fetch(setup(tmp_path, str(path)))

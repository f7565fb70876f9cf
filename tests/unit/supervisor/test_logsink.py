"""Rotation, tail, follow, reopen and the drop counter of one service's log."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

from voicemoded.supervisor.logs import LogSink, RotatingFile
from voicemoded.supervisor.spec import LogSettings


def test_rotating_file_keeps_sizes_under_the_limit_and_exactly_n_backups(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    rf = RotatingFile(path, max_bytes=1000, backups=2)
    for i in range(200):
        rf.write(f"line {i:04d} {'y' * 40}\n".encode())  # 51 bytes
    rf.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["svc.log", "svc.log.1", "svc.log.2"]
    for p in tmp_path.iterdir():
        size = p.stat().st_size
        assert size <= 1000
        assert p.read_bytes().endswith(b"\n")
    assert (tmp_path / "svc.log.1").stat().st_size == 51 * 19  # whole lines only
    assert b"line 0199" in path.read_bytes()


def test_a_line_longer_than_the_limit_is_cut_hard(tmp_path: Path) -> None:
    rf = RotatingFile(tmp_path / "svc.log", max_bytes=1024, backups=1)
    rf.write(b"z" * 3000)
    rf.close()
    assert [p.stat().st_size for p in sorted(tmp_path.iterdir())] == [952, 1024]


def test_zero_backups_truncates(tmp_path: Path) -> None:
    rf = RotatingFile(tmp_path / "svc.log", max_bytes=1024, backups=0)
    rf.write(b"a\n" * 1000)
    rf.close()
    assert [p.name for p in tmp_path.iterdir()] == ["svc.log"]
    assert (tmp_path / "svc.log").stat().st_size <= 1024


async def test_tail_reaches_into_the_backup_after_a_rotation(tmp_path: Path) -> None:
    sink = LogSink(tmp_path / "svc.log", LogSettings(max_bytes=1024, backups=2), service="svc")
    for i in range(100):
        sink.feed(f"{i:03d} {'q' * 20}\n".encode())  # 25 bytes
    await sink.flush()
    assert sink.tail(3) == [f"{i:03d} {'q' * 20}" for i in (97, 98, 99)]
    live_lines = (tmp_path / "svc.log").read_text().count("\n")
    wanted = live_lines + 5
    assert sink.tail(wanted) == [f"{i:03d} {'q' * 20}" for i in range(100 - wanted, 100)]
    assert sink.tail(0) == []
    await sink.aclose()


async def test_follow_gets_whole_lines_across_chunks_and_ends_on_close(tmp_path: Path) -> None:
    sink = LogSink(tmp_path / "svc.log", LogSettings(), service="svc")
    sink.feed(b"old line\n")
    await sink.flush()
    follower = sink.follow(1)
    assert await asyncio.wait_for(anext(follower), 5) == "old line"
    pending = asyncio.ensure_future(anext(follower))
    await asyncio.sleep(0)
    sink.feed(b"hel")
    sink.feed(b"lo\r\nwor")
    assert await asyncio.wait_for(pending, 5) == "hello"
    sink.feed(b"ld\n")
    assert await asyncio.wait_for(anext(follower), 5) == "world"
    rest = asyncio.ensure_future(anext(follower, None))
    await asyncio.sleep(0)
    await sink.aclose()
    assert await asyncio.wait_for(rest, 5) is None


async def test_slow_disk_drops_and_counts_instead_of_blocking(tmp_path: Path) -> None:
    """The one fault that cannot be caused for real here: a disk that stalls. The writer is held."""
    sink = LogSink(tmp_path / "svc.log", LogSettings(buffer_bytes=8192), service="svc")
    gate = threading.Event()
    real_write = sink.file.write

    def stalled_write(data: bytes) -> None:
        gate.wait(10)
        real_write(data)

    sink.file.write = stalled_write  # type: ignore[method-assign]
    sink.feed(b"a" * 4000 + b"\n")  # taken by the (stalled) writer
    await asyncio.sleep(0.05)
    for _ in range(10):
        sink.feed(b"b" * 1000 + b"\n")  # feed returns at once whatever the disk does
    assert sink.dropped_bytes > 0
    dropped = sink.dropped_bytes
    gate.set()
    await sink.flush()
    sink.feed(b"after\n")
    await sink.flush()
    text = (tmp_path / "svc.log").read_text()
    assert f"dropped {dropped} bytes" in text
    assert text.endswith("after\n")
    assert sink.written_bytes + sink.dropped_bytes >= 4001 + 10 * 1001
    await sink.aclose()


async def test_reopen_writes_a_new_file_after_logrotate_moved_the_old_one(tmp_path: Path) -> None:
    path = tmp_path / "svc.log"
    sink = LogSink(path, LogSettings(), service="svc")
    sink.feed(b"before\n")
    await sink.flush()
    path.rename(tmp_path / "svc.log.rotated")
    sink.feed(b"still old\n")
    await sink.flush()
    await sink.reopen()
    sink.feed(b"after\n")
    await sink.flush()
    assert (tmp_path / "svc.log.rotated").read_text() == "before\nstill old\n"
    assert path.read_text() == "after\n"
    await sink.aclose()


async def test_notes_start_on_their_own_line(tmp_path: Path) -> None:
    sink = LogSink(tmp_path / "svc.log", LogSettings(), service="svc")
    sink.feed(b"no newline at the end")
    sink.note("pid 1 exit code 0")
    await sink.flush()
    assert sink.tail(2) == ["no newline at the end", "--- voicemoded: pid 1 exit code 0 ---"]
    await sink.aclose()

"""Child output in rotated log files: a flooding child is never blocked, tail and follow see its lines."""

from __future__ import annotations

import asyncio
import re

from tests.integration.supervisor.conftest import Dirs, EventRecorder, MakeSupervisor, make_spec
from voicemoded.supervisor import LogSettings, RestartPolicy

_NUMBER = re.compile(rb"^line (\d{9}) ", re.MULTILINE)


async def test_flooding_child_finishes_and_its_log_rotates_by_size_with_n_backups(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, dirs: Dirs
) -> None:
    logs = LogSettings(max_bytes=256 * 1024, backups=3, buffer_bytes=8 * 1024 * 1024)
    spec = make_spec("flood", "flood", "--bytes", 4_000_000, restart=RestartPolicy.NEVER, logs=logs)
    sup = make_supervisor(spec)
    await sup.start("flood")
    exited = await recorder.wait_state("flood", "EXITED", timeout=30)
    assert exited.fields["exit_code"] == "0"
    await sup.tail_logs("flood", 1)  # flushes

    folder = dirs["logs_dir"]
    names = sorted(p.name for p in folder.iterdir())
    assert names == ["flood.log", "flood.log.1", "flood.log.2", "flood.log.3"]
    files = [folder / "flood.log.3", folder / "flood.log.2", folder / "flood.log.1", folder / "flood.log"]
    sizes = [p.stat().st_size for p in files]
    assert all(size <= logs.max_bytes for size in sizes), sizes
    assert all(size >= logs.max_bytes - 200 for size in sizes[:3]), sizes  # cut at a line end

    # What is kept is the newest output, complete: stdout and stderr lines, none missing in between.
    kept = b"".join(p.read_bytes() for p in files)
    numbers = sorted(int(n) for n in _NUMBER.findall(kept))
    assert numbers == list(range(numbers[0], numbers[-1] + 1))
    assert numbers[-1] == -(-4_000_000 // 96) - 1  # the last line the child wrote (96-byte lines)
    assert any(n % 10 == 0 for n in numbers)  # the stderr ones
    assert sup.get("flood").log_dropped_bytes == 0
    tail = await sup.tail_logs("flood", 3)
    assert tail[-2].startswith("flood done")
    assert tail[-1].startswith("--- voicemoded: pid")


async def test_follow_yields_new_lines_and_reopen_starts_a_fresh_file(
    make_supervisor: MakeSupervisor, recorder: EventRecorder, port: int, dirs: Dirs
) -> None:
    sup = make_supervisor(make_spec("chatty", "crash_later", "--after", 0.2, "--code", 5, port=port))
    follower = sup.follow_logs("chatty")
    first_line = asyncio.ensure_future(anext(follower))
    await asyncio.sleep(0)
    await sup.start("chatty")
    line = await asyncio.wait_for(first_line, 10)
    assert line.startswith("--- voicemoded: started pid")
    crashed = asyncio.ensure_future(_until(follower, "crashing with code 5"))
    assert await asyncio.wait_for(crashed, 10)

    log_file = dirs["logs_dir"] / "chatty.log"
    moved = log_file.with_name("chatty.log.old")
    await sup.tail_logs("chatty", 1)
    log_file.rename(moved)
    await sup.reopen_logs()
    mark = recorder.mark()
    await recorder.wait_state("chatty", "RUNNING", since=mark)
    await sup.stop("chatty")
    assert log_file.is_file() and moved.is_file()
    assert "started pid" in log_file.read_text()
    await follower.aclose()


async def _until(lines, text: str) -> bool:  # type: ignore[no-untyped-def]
    async for line in lines:
        if text in line:
            return True
    return False

"""Starting and signalling a child's process group, so nothing a service spawns can outlive it.

Each child leads its own session and process group (``start_new_session``): a stop or a crash clean-up
signals the whole group, grandchildren included. On Linux the child also asks the kernel for SIGKILL when
the thread that forked it dies (``PR_SET_PDEATHSIG``), so a daemon killed with ``kill -9`` takes its
children with it. The daemon must therefore spawn from its event-loop thread and keep that thread alive.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import fcntl
import os
import signal
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1
_PIPE_SIZE = 1024 * 1024


def parent_death_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that arms the parent-death signal; None where the platform has none (macOS)."""
    if not sys.platform.startswith("linux"):
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl  # resolved before fork: nothing to load in the child
    parent = os.getpid()

    def arm() -> None:
        prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent:  # the daemon died between fork and prctl: the signal would never come
            os.kill(os.getpid(), signal.SIGKILL)

    return arm


@dataclass(eq=False)
class Spawned:
    """A started child and the read end of its output pipe."""

    proc: asyncio.subprocess.Process
    output: asyncio.StreamReader
    transport: asyncio.ReadTransport


def child_environment(
    inherited: Mapping[str, str], env: Mapping[str, str], drop: tuple[str, ...] = ()
) -> dict[str, str]:
    """``inherited`` without the ``drop`` names (``PREFIX*`` drops a prefix), then ``env`` over it."""
    names = {d for d in drop if not d.endswith("*")}
    prefixes = tuple(d[:-1] for d in drop if d.endswith("*"))
    kept = {k: v for k, v in inherited.items() if k not in names and not k.startswith(prefixes or ("\0",))}
    return {**kept, **env}


async def spawn(
    command: tuple[str, ...],
    *,
    env: Mapping[str, str],
    cwd: Path | None,
    preexec: Callable[[], None] | None,
    env_drop: tuple[str, ...] = (),
) -> Spawned:
    """Start the child with stdout and stderr on one pipe of our own (order kept) and no stdin.

    The pipe is ours rather than asyncio's because asyncio's ``Process.wait()`` returns only once every
    pipe it manages is closed: a grandchild holding stdout would hide the leader's death indefinitely.
    """
    read_fd, write_fd = os.pipe()
    _widen(write_fd)
    try:
        proc = await asyncio.create_subprocess_exec(
            *command,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=write_fd,
            stderr=write_fd,
            cwd=cwd,
            env=child_environment(os.environ, env, env_drop),
            start_new_session=True,
            preexec_fn=preexec,
        )
    except BaseException:
        os.close(read_fd)
        raise
    finally:
        os.close(write_fd)
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader(loop=loop)
    transport, _ = await loop.connect_read_pipe(
        lambda: asyncio.StreamReaderProtocol(reader, loop=loop), os.fdopen(read_fd, "rb", buffering=0)
    )
    return Spawned(proc, reader, transport)


def _widen(fd: int) -> None:
    """A 1 MiB pipe absorbs a burst of output while the event loop is busy elsewhere (Linux only)."""
    size_op = getattr(fcntl, "F_SETPIPE_SZ", None)
    if size_op is not None:
        with contextlib.suppress(OSError):
            fcntl.fcntl(fd, size_op, _PIPE_SIZE)


def signal_group(pgid: int, sig: int) -> bool:
    """Signal a whole process group; False when nobody is left in it."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:  # a member changed credentials; nothing more we may do
        return False
    return True


async def stop_group(
    proc: asyncio.subprocess.Process, exited: asyncio.Future[int], sig: int, timeout: float
) -> bool:
    """Signal the group, wait up to ``timeout`` for the leader, then SIGKILL the group.

    Returns True when it had to escalate to SIGKILL.
    """
    if exited.done():
        return False
    signal_group(proc.pid, sig)
    try:
        async with asyncio.timeout(timeout):
            await asyncio.shield(exited)
        return False
    except TimeoutError:
        signal_group(proc.pid, signal.SIGKILL)
        await exited
        return True


def kill_stragglers(pgid: int) -> None:
    """After the leader is gone, end whatever is left in its group (workers, a shell's children)."""
    with contextlib.suppress(OSError):
        signal_group(pgid, signal.SIGKILL)

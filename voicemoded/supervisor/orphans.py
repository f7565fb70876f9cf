"""Leftovers of a previous daemon, and ports held by someone else.

Every child gets ``<run_dir>/<service>.pid`` (pid, process group, create time, command line as the kernel
reports it, and the pid and create time of the daemon that started it). A daemon that starts after a crash
reads them and ends what is still ours before binding those ports again. A record whose daemon is still
alive is that daemon's business, never a leftover: it is left alone, child and file. "Ours" is proved with psutil: same pid *and* create time *and* command line, so a recycled pid
belonging to an unrelated program is never signalled. Group members outlive a leader killed by the
parent-death signal (that signal reaches only direct children); a process group id cannot be reused while
any member lives, so members of a recorded group whose leader is gone are ours too.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import json
import os
import signal
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil
import structlog

log = structlog.get_logger(__name__)

_CREATE_TIME_SLACK = 0.05


@dataclass(frozen=True, slots=True)
class PidRecord:
    service: str
    pid: int
    pgid: int
    create_time: float
    cmdline: tuple[str, ...]
    parent_pid: int | None = None
    """The daemon that started the child (None in files written before this was recorded)."""
    parent_create_time: float | None = None

    def parent_alive(self, *, besides: int | None = None) -> bool:
        """The recording daemon still runs (same pid *and* create time), and it is not ``besides``."""
        if self.parent_pid is None or self.parent_create_time is None or self.parent_pid == besides:
            return False
        try:
            parent = psutil.Process(self.parent_pid)
            alive = abs(parent.create_time() - self.parent_create_time) <= _CREATE_TIME_SLACK
            return alive and parent.status() != psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return False
        except psutil.Error:
            return True  # it exists and we may not look at it: not ours to end


class PidFiles:
    """The pid files of one daemon's children, one per service."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        me = psutil.Process()
        self._parent = (me.pid, me.create_time())

    def path(self, service: str) -> Path:
        return self.run_dir / f"{service}.pid"

    def write(self, service: str, pid: int, argv: tuple[str, ...] = ()) -> PidRecord | None:
        """Record a child with the command line the kernel reports for it.

        Right after exec the kernel may still report an empty command line; ``argv`` (what we ran) stands
        in until the supervisor rewrites the file once the child is RUNNING.
        """
        try:
            proc = psutil.Process(pid)
            with proc.oneshot():
                cmdline = tuple(proc.cmdline()) or tuple(argv)
                record = PidRecord(service, pid, os.getpgid(pid), proc.create_time(), cmdline, *self._parent)
        except (psutil.Error, ProcessLookupError):
            return None  # already gone: nothing to leave behind
        try:
            self.run_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            tmp = self.path(service).with_suffix(".pid.tmp")
            tmp.write_text(json.dumps(asdict(record)))
            tmp.replace(self.path(service))
        except OSError as exc:  # a full disk must not stop supervision; only the crash clean-up is weaker
            log.warning("service.pidfile_unwritable", service=service, error=str(exc))
        return record

    def remove(self, service: str) -> None:
        self.path(service).unlink(missing_ok=True)

    def read_all(self) -> list[PidRecord]:
        records: list[PidRecord] = []
        for path in sorted(self.run_dir.glob("*.pid")) if self.run_dir.is_dir() else []:
            try:
                raw = json.loads(path.read_text())
                records.append(
                    PidRecord(
                        service=str(raw["service"]),
                        pid=int(raw["pid"]),
                        pgid=int(raw["pgid"]),
                        create_time=float(raw["create_time"]),
                        cmdline=tuple(str(a) for a in raw["cmdline"]),
                        parent_pid=None if raw.get("parent_pid") is None else int(raw["parent_pid"]),
                        parent_create_time=(
                            None
                            if raw.get("parent_create_time") is None
                            else float(raw["parent_create_time"])
                        ),
                    )
                )
            except (OSError, ValueError, KeyError, TypeError):
                log.warning("service.pidfile_unreadable", path=str(path))
                path.unlink(missing_ok=True)
        return records


def leftover_processes(record: PidRecord) -> list[psutil.Process]:
    """The processes of a recorded child that still run (its leader if it is really ours, and its group)."""
    try:
        leader = psutil.Process(record.pid)
        if abs(leader.create_time() - record.create_time) > _CREATE_TIME_SLACK:
            return []  # pid recycled: our group died with its leader, this is someone else
        if tuple(leader.cmdline()) != record.cmdline:
            return []
    except psutil.NoSuchProcess:
        pass  # leader gone; its group may live on (see module docstring)
    except psutil.Error:
        return []
    found: list[psutil.Process] = []
    for proc in psutil.process_iter():
        try:
            if proc.pid != os.getpid() and os.getpgid(proc.pid) == record.pgid and not is_gone(proc):
                found.append(proc)
        except (ProcessLookupError, psutil.Error):
            continue
    return found


async def end_leftovers(pid_files: PidFiles, *, grace: float = 3.0) -> dict[str, list[int]]:
    """End every recorded child still running, SIGTERM then SIGKILL after ``grace``; remove the pid files.

    Returns the pids ended per service (for the daemon's start-up event).
    """
    ended: dict[str, list[int]] = {}
    for record in pid_files.read_all():
        if record.parent_alive(besides=os.getpid()):
            log.warning(
                "service.leftover_kept", service=record.service, pid=record.pid, daemon_pid=record.parent_pid
            )
            continue  # another live daemon's child (this process's own records are its own to end)
        procs = await asyncio.to_thread(leftover_processes, record)
        if procs:
            log.warning("service.leftover_found", service=record.service, pids=[p.pid for p in procs])
            await asyncio.to_thread(_terminate, procs, grace)
            ended[record.service] = [p.pid for p in procs]
        pid_files.remove(record.service)
    return ended


def _terminate(procs: list[psutil.Process], grace: float) -> None:
    for proc in procs:
        with contextlib.suppress(psutil.Error):
            proc.send_signal(signal.SIGTERM)
    alive = wait_gone(procs, grace)
    for proc in alive:
        with contextlib.suppress(psutil.Error):
            proc.kill()
    wait_gone(alive, grace)


def is_gone(proc: psutil.Process) -> bool:
    """Dead, including a zombie: these are not our children, so reaping is up to init, at its own pace."""
    try:
        return not proc.is_running() or proc.status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True
    except psutil.Error:
        return False


def wait_gone(procs: list[psutil.Process], timeout: float, interval: float = 0.02) -> list[psutil.Process]:
    """Wait (in a worker thread: it sleeps) until the processes are dead; returns those still alive.

    A process that is not our child cannot be awaited, only checked; this runs once at daemon start.
    """
    deadline = time.monotonic() + timeout
    alive = [p for p in procs if not is_gone(p)]
    while alive and time.monotonic() < deadline:
        time.sleep(interval)
        alive = [p for p in alive if not is_gone(p)]
    return alive


@dataclass(frozen=True, slots=True)
class PortOwner:
    pid: int | None
    name: str

    def describe(self) -> str:
        return f"pid {self.pid} ({self.name})" if self.pid is not None else self.name


def port_taken(host: str, port: int) -> bool:
    """True when a listener already holds host:port (a TIME_WAIT leftover does not count)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise
    return False


def port_owner(host: str, port: int) -> PortOwner | None:
    """Who listens on host:port, named when psutil can see it; None when the port is free."""
    if not port_taken(host, port):
        return None
    try:
        for conn in psutil.net_connections(kind="inet"):
            if conn.status == psutil.CONN_LISTEN and conn.laddr and conn.laddr.port == port:
                if conn.pid is None:
                    break
                try:
                    name = " ".join(psutil.Process(conn.pid).cmdline()) or psutil.Process(conn.pid).name()
                except psutil.Error:
                    name = "exited just now"
                return PortOwner(conn.pid, name[:200])
    except psutil.AccessDenied:
        pass
    return PortOwner(None, "a process this user cannot see")

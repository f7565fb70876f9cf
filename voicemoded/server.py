"""grpc.aio on a Unix socket: private folder and socket, one daemon per socket, graceful stop.

The lock file beside the socket is what decides "already running": a socket file alone may be left over
from a daemon that crashed, and is replaced once the lock is ours.

grpc itself listens on a socket in a 0700 folder beside the public one (``.<socket name>.grpc/``); the
public socket belongs to :class:`~voicemoded.socketgate.SocketGate`, which checks each peer's uid before
splicing it through. A widened mode on the public socket or its folder therefore lets nobody else in.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import stat
from collections.abc import Callable
from pathlib import Path
from types import TracebackType

import grpc
import structlog

from voicemoded.api.errors import AlreadyExists, FailedPrecondition
from voicemoded.api.instance import HeldLock
from voicemoded.api.paths import SOCKET_NAME, lock_path
from voicemoded.peercred import PeerPolicy
from voicemoded.socketgate import SocketGate

log = structlog.get_logger(__name__)

MAX_MESSAGE_BYTES = 64 * 1024 * 1024
MAX_SOCKET_PATH = 107  # sun_path is 108 bytes with its terminating NUL


class InstanceLock:
    """``flock`` on ``<socket>.lock``; the file holds the owner's pid for the error message."""

    def __init__(self, socket: Path) -> None:
        self.path = lock_path(socket)
        self._lock = HeldLock(self.path)

    def acquire(self) -> None:
        held = self._lock.acquire(f"{os.getpid()}\n")
        if held is not None:
            owner = held.strip()[:32] or "unknown"
            raise AlreadyExists(
                f"another voicemoded (pid {owner}) is already serving {self.path.with_suffix('')}",
                hint="use `voicemodectl status` to talk to it, or `voicemodectl daemon stop` first",
                fields={"pid": owner},
            )

    def release(self) -> None:
        self._lock.release()


def prepare_socket_dir(socket: Path, own_dir_names: tuple[str, ...] = ("voicemode", "run")) -> None:
    """Create the socket's folder 0700; tighten it when it is one of ours.

    A folder the user named with ``--socket`` (say ``/tmp``) is left as it is: the socket itself is 0600.
    """
    folder = socket.parent
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        os.chmod(folder, 0o700)
    elif folder.name in own_dir_names and folder.stat().st_uid == os.getuid():
        os.chmod(folder, 0o700)
    if not os.access(folder, os.W_OK):
        raise FailedPrecondition(
            f"cannot create the socket in {folder}: folder not writable",
            hint="pass --socket PATH in a folder you own",
        )


def private_socket(socket: Path) -> Path:
    """Where grpc listens: a folder beside the public socket that only the daemon's user can enter."""
    return socket.parent / f".{socket.name}.grpc" / "s"


def prepare_private_dir(folder: Path) -> None:
    """A fresh 0700 folder of our own at ``folder``; whatever stood there before is removed first.

    Called with the instance lock held, so an existing folder of ours is a dead daemon's. Anything else
    there (a symlink, another user's folder in a widened socket folder) could let that user reach grpc
    directly, so it is removed when we can and refused when we cannot.
    """
    try:
        info = folder.lstat()
    except FileNotFoundError:
        info = None
    if info is not None:
        if stat.S_ISDIR(info.st_mode) and info.st_uid == os.geteuid():
            shutil.rmtree(folder)
        else:
            try:
                if stat.S_ISDIR(info.st_mode):
                    folder.rmdir()
                else:
                    folder.unlink()
            except OSError:
                raise FailedPrecondition(
                    f"{folder} exists and is not the daemon's own folder (owner uid {info.st_uid})",
                    hint="remove it, and keep the socket's folder writable by you alone",
                ) from None
    folder.mkdir(mode=0o700)
    os.chmod(folder, 0o700)


class SocketServer:
    """Async context manager: bind and start on enter, drain and clean up on exit.

    ``policy`` decides which peer uids are served (default: the daemon's own uid only).
    """

    def __init__(
        self,
        socket: Path,
        register: Callable[[grpc.aio.Server], None],
        *,
        policy: PeerPolicy | None = None,
    ) -> None:
        self.socket = socket
        self.private = private_socket(socket)
        self.policy = policy or PeerPolicy(owner_uid=os.geteuid())
        self._register = register
        self._lock = InstanceLock(socket)
        self.server: grpc.aio.Server | None = None
        self.gate: SocketGate | None = None

    async def __aenter__(self) -> SocketServer:
        if len(str(self.socket)) > 100:
            raise FailedPrecondition(
                f"socket path is too long for a Unix socket ({len(str(self.socket))} characters): {self.socket}",
                hint=f"use a shorter --socket path such as /tmp/voicemode/{SOCKET_NAME}",
            )
        if len(str(self.private)) > MAX_SOCKET_PATH:
            raise FailedPrecondition(
                f"socket path is too long: grpc's private socket beside it would be {self.private} "
                f"({len(str(self.private))} characters, at most {MAX_SOCKET_PATH})",
                hint=f"use a shorter --socket path such as /tmp/voicemode/{SOCKET_NAME}",
            )
        self.policy.check()
        prepare_socket_dir(self.socket)
        self._lock.acquire()
        try:
            if self.socket.exists() or self.socket.is_symlink():
                log.info("server.stale_socket_replaced", socket=str(self.socket))
                self.socket.unlink()
            prepare_private_dir(self.private.parent)
            server = grpc.aio.server(
                options=[
                    ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
                    ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
                ]
            )
            self._register(server)
            old_umask = os.umask(0o177)
            try:
                server.add_insecure_port(f"unix:{self.private}")
                await server.start()
            finally:
                os.umask(old_umask)
            self.server = server
            gate = SocketGate(self.socket, self.private, self.policy)
            await gate.start()
            self.gate = gate
        except BaseException:
            if self.server is not None:
                await self.server.stop(0)
            self._remove_private()
            self._lock.release()
            raise
        log.info("server.listening", socket=str(self.socket), grpc_socket=str(self.private))
        return self

    async def stop(self, grace: float) -> None:
        """Refuse new connections, let grpc finish its calls within ``grace``, then close the rest."""
        if self.gate is not None:
            self.gate.stop_accepting()
        if self.server is not None:
            await self.server.stop(grace)
        if self.gate is not None:
            await self.gate.close()

    def _remove_private(self) -> None:
        shutil.rmtree(self.private.parent, ignore_errors=True)

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop(0)
        with contextlib.suppress(FileNotFoundError):
            self.socket.unlink()
        self._remove_private()
        self._lock.release()

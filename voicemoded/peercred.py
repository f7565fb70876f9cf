"""Who is on the other end of the daemon's socket, and whether the daemon serves them.

The socket's file mode is a first fence, but a mode can be widened (by a careless ``chmod``, an ACL, a
shared runtime folder), and then anyone on the machine could read the person's configuration, change
where their audio is sent, or listen through their microphone. The kernel records the uid, gid and pid
of the process that called ``connect()`` (``SO_PEERCRED``); that record cannot be forged by the peer, so
it is what decides. The daemon serves its own uid, plus the uids named in ``VOICEMODE_ALLOWED_UIDS``.
"""

from __future__ import annotations

import pwd
import socket
import struct
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass

import structlog

from voicemoded.api.errors import FailedPrecondition

log = structlog.get_logger(__name__)

ALLOWED_UIDS_KEY = "VOICEMODE_ALLOWED_UIDS"
MAX_UID = 2**32 - 2  # (uid_t)-1 is "no uid" to the kernel

_UCRED = struct.Struct("3i")  # struct ucred { pid_t pid; uid_t uid; gid_t gid; }


@dataclass(frozen=True)
class PeerCredentials:
    """What the kernel recorded about the connecting process when it called ``connect()``."""

    pid: int
    uid: int
    gid: int


def peer_credentials(sock: socket.socket) -> PeerCredentials:
    """The peer of a connected ``AF_UNIX`` socket; raises ``OSError`` when the kernel has none."""
    raw = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, _UCRED.size)
    pid, uid, gid = _UCRED.unpack(raw)
    # uid_t is unsigned: a uid above 2**31 arrives negative through the signed struct.
    return PeerCredentials(pid=pid, uid=uid & 0xFFFFFFFF, gid=gid & 0xFFFFFFFF)


def parse_uids(text: str) -> tuple[int, ...]:
    """``VOICEMODE_ALLOWED_UIDS``: comma-separated uids or user names (``1001,alice``); empty: none.

    Names are resolved when the setting is read, so a typo is an error at once and not a silent refusal
    on the day that user first connects.
    """
    uids: list[int] = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        if part.isdigit():
            uid = int(part)
            if uid > MAX_UID:
                raise ValueError(f"uid {part} is out of range (0 to {MAX_UID})")
        else:
            try:
                uid = pwd.getpwnam(part).pw_uid
            except KeyError:
                raise ValueError(
                    f"no user named {part!r} on this machine (give a uid or a user name)"
                ) from None
        if uid not in uids:
            uids.append(uid)
    return tuple(uids)


parse_uids.__name__ = "uids"


def allowed_peer_uids(settings: object, daemon_env: Mapping[str, str]) -> tuple[int, ...]:
    """The extra uids from the daemon's own settings (never a caller's: a caller cannot widen access).

    ``Settings.allowed_uids`` is read where the schema declares it; otherwise the daemon's environment.
    """
    declared = getattr(settings, "allowed_uids", None)
    if declared is not None:
        return tuple(declared)
    return parse_uids(daemon_env.get(ALLOWED_UIDS_KEY, ""))


@dataclass(frozen=True)
class PeerPolicy:
    """Serve ``owner_uid`` and whatever ``extra_uids()`` names at the moment a connection arrives.

    ``extra_uids`` is called per connection so a reloaded configuration applies to the next one.
    """

    owner_uid: int
    extra_uids: Callable[[], Collection[int]] = tuple

    def allows(self, peer: PeerCredentials) -> bool:
        if peer.uid == self.owner_uid:
            return True
        try:
            return peer.uid in self.extra_uids()
        except ValueError as exc:  # an unreadable list allows nobody extra; start-up already said why
            log.warning("socket.allowed_uids_invalid", key=ALLOWED_UIDS_KEY, error=str(exc))
            return False

    def check(self) -> None:
        """Read the extra uids once, so a bad list stops the daemon at start with the reason."""
        try:
            self.extra_uids()
        except ValueError as exc:
            raise FailedPrecondition(
                f"{ALLOWED_UIDS_KEY}: {exc}",
                hint=f"fix {ALLOWED_UIDS_KEY} (comma-separated uids or user names) and start again",
                fields={"key": ALLOWED_UIDS_KEY},
            ) from None

    def refusal(self, peer: PeerCredentials) -> tuple[str, str]:
        """The message and the next step a refused peer is told."""
        return (
            f"voicemoded serves uid {self.owner_uid} only; this connection comes from uid {peer.uid} "
            f"(pid {peer.pid})",
            f"talk to your own daemon (voicemodectl daemon start), or have uid {self.owner_uid} add "
            f"{peer.uid} to {ALLOWED_UIDS_KEY} in its voicemode.env",
        )

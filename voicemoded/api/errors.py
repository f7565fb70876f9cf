"""Typed errors that carry what the user should do next.

Every subsystem raises a subclass of :class:`VoicemodeError`; the gRPC layer turns it into a status code
with the message and the hint as details, and the front doors print both. Nothing here imports grpc.
"""

from __future__ import annotations

import errno
from enum import StrEnum

#: How much of a caller's value an error quotes: enough to recognise it, never enough to flood a terminal
#: or the few kilobytes of gRPC metadata the error travels in.
QUOTE_CHARS = 80


class ErrorCode(StrEnum):
    """Maps onto gRPC status codes in the API layer; names say what the caller can do about it."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNAVAILABLE = "UNAVAILABLE"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
    TOO_LARGE = "TOO_LARGE"
    NO_SPACE = "NO_SPACE"
    PERMISSION_DENIED = "PERMISSION_DENIED"
    DEADLINE_EXCEEDED = "DEADLINE_EXCEEDED"
    CANCELLED = "CANCELLED"
    INTERNAL = "INTERNAL"


class VoicemodeError(Exception):
    """An error with a reason and, where there is one, the next step for the user."""

    code: ErrorCode = ErrorCode.INTERNAL

    def __init__(self, message: str, *, hint: str = "", fields: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.fields = dict(fields or {})

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class InvalidArgument(VoicemodeError):
    code = ErrorCode.INVALID_ARGUMENT


class NotFound(VoicemodeError):
    code = ErrorCode.NOT_FOUND


class AlreadyExists(VoicemodeError):
    code = ErrorCode.ALREADY_EXISTS


class FailedPrecondition(VoicemodeError):
    code = ErrorCode.FAILED_PRECONDITION


class Unavailable(VoicemodeError):
    code = ErrorCode.UNAVAILABLE


class Busy(VoicemodeError):
    code = ErrorCode.RESOURCE_EXHAUSTED


class Timeout(VoicemodeError):
    code = ErrorCode.DEADLINE_EXCEEDED


class TooLarge(VoicemodeError):
    """Input over a size limit; the message names the size and the limit."""

    code = ErrorCode.TOO_LARGE


class NoSpace(VoicemodeError):
    """The disk (or the quota) is full: nothing the request can change, the person must free space."""

    code = ErrorCode.NO_SPACE


class PermissionDenied(VoicemodeError):
    code = ErrorCode.PERMISSION_DENIED


def clip(value: str, limit: int = QUOTE_CHARS) -> str:
    """At most ``limit`` characters of ``value``, and ``…`` when there was more."""
    return value if len(value) <= limit else value[:limit] + "…"


def quote(value: object, limit: int = QUOTE_CHARS) -> str:
    """A caller's value for an error message: ``repr``-quoted, cut to ``limit`` characters."""
    text = str(value)  # a str as it is, a Path as its path
    if len(text) <= limit:
        return repr(text)
    cut = repr(text[:limit])
    return f"{cut[:-1]}…{cut[-1]} ({len(text):,} characters)"


def mebibytes(n: int) -> str:
    return f"{n / (1024 * 1024):.1f} MiB" if n % (1024 * 1024) else f"{n // (1024 * 1024)} MiB"


def too_large(what: str, size: int, limit: int, hint: str = "") -> TooLarge:
    """The one wording for every size limit, so a person sees the size and the limit side by side."""
    return TooLarge(
        f"{what} too large: {mebibytes(size)}, the limit is {mebibytes(limit)}",
        hint=hint or "use a shorter recording, or split it",
        fields={"size_bytes": str(size), "limit_bytes": str(limit)},
    )


#: errno values that mean "the disk is full" (EFBIG: a file-size limit, which to the person is the same).
NO_SPACE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG})
#: errno values that mean "not allowed" (EROFS, a read-only file system, is told apart where it matters).
DENIED_ERRNOS = frozenset({errno.EACCES, errno.EPERM})


def from_os_error(exc: OSError) -> VoicemodeError | None:
    """The typed error for an environment fault (disk full, no permission, a too-long or read-only path),
    naming the path; ``None`` for an OSError that is not the machine's state but a bug."""
    path = quote(exc.filename) if exc.filename is not None else "a file"
    fields = {"path": str(exc.filename)} if exc.filename is not None else {}
    reason = exc.strerror or type(exc).__name__
    if exc.errno in NO_SPACE_ERRNOS:
        return NoSpace(
            f"cannot write {path}: {reason}",
            hint="free some disk space (or raise the quota), then try again",
            fields=fields,
        )
    if exc.errno == errno.EROFS:
        return PermissionDenied(
            f"cannot write {path}: the file system is read-only",
            hint="point VOICEMODE_BASE_DIR (or the path you gave) at a writable folder",
            fields=fields,
        )
    if exc.errno in DENIED_ERRNOS:
        return PermissionDenied(
            f"no permission for {path}: {reason}",
            hint="check the owner and mode of the file and its folders (ls -ld)",
            fields=fields,
        )
    if exc.errno == errno.ENAMETOOLONG:
        return InvalidArgument(
            f"path too long: {path}", hint="use a shorter path or file name", fields=fields
        )
    return None

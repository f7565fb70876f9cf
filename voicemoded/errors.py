"""Typed errors that carry what the user should do next.

Every subsystem raises a subclass of :class:`VoicemodeError`; the gRPC layer turns it into a status code
with the message and the hint as details, and the front doors print both. Nothing here imports grpc.
"""

from __future__ import annotations

from enum import StrEnum


class ErrorCode(StrEnum):
    """Maps onto gRPC status codes in the API layer; names say what the caller can do about it."""

    INVALID_ARGUMENT = "INVALID_ARGUMENT"
    NOT_FOUND = "NOT_FOUND"
    ALREADY_EXISTS = "ALREADY_EXISTS"
    FAILED_PRECONDITION = "FAILED_PRECONDITION"
    UNAVAILABLE = "UNAVAILABLE"
    RESOURCE_EXHAUSTED = "RESOURCE_EXHAUSTED"
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

"""Every failure as JSON in words: ``{"error": {"code", "message", "hint"}}`` with the HTTP status of its
kind, so the page can always show what happened and what to do next, never a blank screen or a trace."""

from __future__ import annotations

from typing import Any

from starlette.responses import JSONResponse

from voicemoded.api.client import ClientError, DaemonNotRunning

#: The daemon's error kinds (gRPC status names) -> HTTP status and the code the page sees.
_BY_KIND: dict[str, tuple[int, str]] = {
    "INVALID_ARGUMENT": (400, "invalid_argument"),
    "NOT_FOUND": (404, "not_found"),
    "ALREADY_EXISTS": (409, "conflict"),
    "FAILED_PRECONDITION": (409, "failed_precondition"),
    "RESOURCE_EXHAUSTED": (409, "busy"),
    "CANCELLED": (409, "cancelled"),
    "TOO_LARGE": (413, "too_large"),
    "PERMISSION_DENIED": (403, "permission_denied"),
    "UNAVAILABLE": (503, "unavailable"),
    "DEADLINE_EXCEEDED": (504, "timeout"),
    "NO_SPACE": (507, "no_space"),
}


class WebError(Exception):
    """A refusal or failure the page shows as it is."""

    def __init__(self, status: int, code: str, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.hint = hint

    def body(self) -> dict[str, Any]:
        return {"error": {"code": self.code, "message": self.message, "hint": self.hint}}

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers={"Cache-Control": "no-store"})


def daemon_not_running() -> WebError:
    return WebError(
        503, "daemon_not_running", "the voicemode daemon is not running", "voicemodectl daemon start"
    )


def from_client(error: ClientError) -> WebError:
    """The daemon's typed error (or the client's: no daemon, a lost connection) for the page."""
    if isinstance(error, DaemonNotRunning):
        return daemon_not_running()
    status, code = _BY_KIND.get(error.code, (500, "internal"))
    return WebError(status, code, error.message, error.hint)


def unexpected(exc: BaseException) -> WebError:
    """A bug in the door: named, with where to look, but no trace for the page."""
    return WebError(
        500,
        "internal",
        f"the web door failed ({type(exc).__name__})",
        "its log says why (`voicemodectl service logs web` when the daemon runs it)",
    )

"""Typed errors cross the gRPC boundary as status codes with an ``ErrorDetail`` in trailing metadata."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
import structlog

from voicemoded.api.errors import ErrorCode, VoicemodeError, from_os_error
from voicemoded.api.v1 import common_pb2

log = structlog.get_logger(__name__)

ERROR_METADATA_KEY = "voicemode-error-bin"

# gRPC refuses trailers over 8 KiB by default (and the status message travels percent-encoded, up to 9 bytes
# per character): a bounded error keeps its own status however much of the caller's input it quotes.
MAX_MESSAGE_BYTES = 700
MAX_HINT_BYTES = 400
MAX_FIELDS = 12
MAX_FIELD_BYTES = 160

STATUS: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.TOO_LARGE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.NO_SPACE: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.PERMISSION_DENIED: grpc.StatusCode.PERMISSION_DENIED,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.CANCELLED: grpc.StatusCode.CANCELLED,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}


def bounded(text: str, limit: int) -> str:
    """``text`` cut to at most ``limit`` UTF-8 bytes, whole characters only, ``…`` when cut."""
    data = text.encode("utf-8", "replace")
    if len(data) <= limit:
        return text
    return data[: limit - 3].decode("utf-8", "ignore") + "…"


def detail(error: VoicemodeError) -> common_pb2.ErrorDetail:
    """The error as it crosses the wire: every part bounded, whatever the caller sent."""
    fields = {
        bounded(k, MAX_FIELD_BYTES): bounded(v, MAX_FIELD_BYTES)
        for k, v in list(error.fields.items())[:MAX_FIELDS]
    }
    return common_pb2.ErrorDetail(
        code=error.code.value,
        message=bounded(error.message, MAX_MESSAGE_BYTES),
        hint=bounded(error.hint, MAX_HINT_BYTES),
        fields=fields,
    )


async def abort(context: grpc.aio.ServicerContext, error: VoicemodeError) -> NoReturn:
    wire = detail(error)
    await context.abort(
        STATUS[error.code],
        wire.message,
        trailing_metadata=((ERROR_METADATA_KEY, wire.SerializeToString()),),
    )
    raise AssertionError("unreachable")  # context.abort always raises


def _environment(exc: OSError, method: str) -> VoicemodeError:
    """An OSError that is the machine's state (disk full, no permission) is the person's to fix, not a
    bug: its own status, naming the path. Anything else is internal."""
    mapped = from_os_error(exc)
    if mapped is None:
        return _internal(exc, method)
    log.warning("rpc.environment_error", method=method, error=str(exc), code=mapped.code.value)
    return mapped


def _internal(exc: BaseException, method: str) -> VoicemodeError:
    log.exception("rpc.internal_error", method=method)
    return VoicemodeError(
        f"internal error in {method}: {type(exc).__name__}: {exc}",
        hint="this is a bug; the daemon log has the traceback (voicemodectl events, or the service log)",
    )


F = TypeVar("F", bound=Callable[..., Awaitable[Any]])


def unary(fn: F) -> F:
    """Wrap a unary servicer method: typed errors become statuses, surprises become INTERNAL."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> Any:
        try:
            return await fn(self, request, context)
        except VoicemodeError as exc:
            await abort(context, exc)
        except (grpc.aio.AbortError, AssertionError):
            raise
        except OSError as exc:
            await abort(context, _environment(exc, fn.__name__))
        except Exception as exc:
            await abort(context, _internal(exc, fn.__name__))

    return wrapper  # type: ignore[return-value]


G = TypeVar("G", bound=Callable[..., AsyncIterator[Any]])


def streaming(fn: G) -> G:
    """The same for server-streaming methods written as async generators."""

    @functools.wraps(fn)
    async def wrapper(self: Any, request: Any, context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        try:
            async for item in fn(self, request, context):
                yield item
        except VoicemodeError as exc:
            await abort(context, exc)
        except (grpc.aio.AbortError, AssertionError):
            raise
        except OSError as exc:
            await abort(context, _environment(exc, fn.__name__))
        except Exception as exc:
            await abort(context, _internal(exc, fn.__name__))

    return wrapper  # type: ignore[return-value]

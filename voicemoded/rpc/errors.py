"""Typed errors cross the gRPC boundary as status codes with an ``ErrorDetail`` in trailing metadata."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NoReturn, TypeVar

import grpc
import structlog

from voicemoded.api.v1 import common_pb2
from voicemoded.errors import ErrorCode, VoicemodeError

log = structlog.get_logger(__name__)

ERROR_METADATA_KEY = "voicemode-error-bin"

STATUS: dict[ErrorCode, grpc.StatusCode] = {
    ErrorCode.INVALID_ARGUMENT: grpc.StatusCode.INVALID_ARGUMENT,
    ErrorCode.NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    ErrorCode.ALREADY_EXISTS: grpc.StatusCode.ALREADY_EXISTS,
    ErrorCode.FAILED_PRECONDITION: grpc.StatusCode.FAILED_PRECONDITION,
    ErrorCode.UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    ErrorCode.RESOURCE_EXHAUSTED: grpc.StatusCode.RESOURCE_EXHAUSTED,
    ErrorCode.DEADLINE_EXCEEDED: grpc.StatusCode.DEADLINE_EXCEEDED,
    ErrorCode.CANCELLED: grpc.StatusCode.CANCELLED,
    ErrorCode.INTERNAL: grpc.StatusCode.INTERNAL,
}


async def abort(context: grpc.aio.ServicerContext, error: VoicemodeError) -> NoReturn:
    detail = common_pb2.ErrorDetail(
        code=error.code.value, message=error.message, hint=error.hint, fields=error.fields
    )
    await context.abort(
        STATUS[error.code],
        error.message,
        trailing_metadata=((ERROR_METADATA_KEY, detail.SerializeToString()),),
    )
    raise AssertionError("unreachable")  # context.abort always raises


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
        except Exception as exc:
            await abort(context, _internal(exc, fn.__name__))

    return wrapper  # type: ignore[return-value]

"""What every embedded engine server shares: app factory, loading state, errors, logging, serving.

Each engine is its own process (a child of the daemon's supervisor). The process binds its port at once
and loads the model on its one worker thread, so the supervisor can tell "starting" (``/health`` 503)
from "dead" (connection refused); ``/health`` turns 200 only when a warm-up inference has run. All
inference goes through the same single worker: the model is never used from two threads, and the event
loop stays free to answer ``/health`` while a long text is being synthesized.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from types import FrameType
from typing import Any, Protocol, TypeVar

import structlog
import uvicorn
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from voicemoded.api.errors import ErrorCode, VoicemodeError
from voicemoded.engines.access import AccessPolicy, TokenFileError, is_loopback_address, read_token
from voicemoded.engines.guard import AccessGuard

log = structlog.get_logger(__name__)

T = TypeVar("T")

DEFAULT_MAX_BODY_BYTES = 1024 * 1024
"""Request body bound for an engine that takes JSON only (a TTS request is at most 4096 characters)."""

_STATUS = {
    ErrorCode.INVALID_ARGUMENT: 400,
    ErrorCode.NOT_FOUND: 404,
    ErrorCode.FAILED_PRECONDITION: 400,
    ErrorCode.UNAVAILABLE: 503,
    ErrorCode.RESOURCE_EXHAUSTED: 429,
    ErrorCode.DEADLINE_EXCEEDED: 504,
}


class ApiError(Exception):
    """An error answered in OpenAI's shape: ``{"error": {"message", "type", "param", "code"}}``."""

    def __init__(
        self, status: int, message: str, *, type: str = "invalid_request_error", param: str | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.param = param

    def response(self) -> JSONResponse:
        body = {"error": {"message": self.message, "type": self.type, "param": self.param, "code": None}}
        return JSONResponse(body, status_code=self.status)


class Engine(Protocol):
    """A model behind a server: loaded once (blocking, on the worker thread), then used from it."""

    name: str

    def load(self) -> None:
        """Load the model and run one small inference so the first request is not the slow one."""

    def model_ids(self) -> list[str]:
        """Model ids this server answers to, for ``/v1/models`` and request validation."""


class EngineHost:
    """Owns an engine's worker thread and its loading state."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=engine.name)
        self.ready = asyncio.Event()
        self.failure: str | None = None

    async def load(self) -> None:
        started = time.monotonic()
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(self._executor, self.engine.load)
        except Exception as exc:
            self.failure = f"{type(exc).__name__}: {exc}"
            log.error("engine.load_failed", engine=self.engine.name, error=self.failure)
            raise
        self.ready.set()
        log.info("engine.ready", engine=self.engine.name, seconds=round(time.monotonic() - started, 2))

    def require_ready(self) -> None:
        if not self.ready.is_set():
            raise ApiError(503, f"the {self.engine.name} model is still loading", type="server_error")

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """Run ``fn`` on the worker thread once the model is loaded; 503 before that."""
        self.require_ready()
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)


def create_app(host: EngineHost, *, on_load_failure: Callable[[], None]) -> FastAPI:
    """The FastAPI app with ``/health``, ``/v1/models`` and OpenAI-shaped errors; engines add routes."""

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        async def load() -> None:
            try:
                await host.load()
            except Exception:
                on_load_failure()

        task = asyncio.create_task(load())
        try:
            yield
        finally:
            task.cancel()
            host.close()

    app = FastAPI(title=f"voicemode {host.engine.name}", lifespan=lifespan, docs_url=None, redoc_url=None)
    app.state.host = host

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return exc.response()

    @app.exception_handler(VoicemodeError)
    async def _voicemode_error(_request: Request, exc: VoicemodeError) -> JSONResponse:
        status = _STATUS.get(exc.code, 500)
        kind = "invalid_request_error" if status < 500 else "server_error"
        param = exc.fields.get("param") or exc.fields.get("field")
        return ApiError(status, str(exc), type=kind, param=param).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        # Unknown routes and methods answer as OpenAI does, so its SDKs raise their NotFoundError.
        if exc.status_code in (404, 405):
            message = f"Invalid URL ({request.method} {request.url.path})"
        else:
            message = str(exc.detail)
        kind = "invalid_request_error" if exc.status_code < 500 else "server_error"
        response = ApiError(exc.status_code, message, type=kind).response()
        if exc.headers:
            response.headers.update(exc.headers)
        return response

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        loc = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "form")]
        param = ".".join(loc) or None
        message = f"{param}: {first.get('msg', 'invalid request')}" if param else "invalid request"
        return ApiError(400, message, param=param).response()

    @app.exception_handler(Exception)
    async def _unexpected(_request: Request, exc: Exception) -> JSONResponse:
        log.error("engine.request_failed", engine=host.engine.name, error=f"{type(exc).__name__}: {exc}")
        return ApiError(500, f"{type(exc).__name__}: {exc}", type="server_error").response()

    @app.get("/health")
    async def health() -> JSONResponse:
        if host.ready.is_set():
            return JSONResponse({"status": "ok", "engine": host.engine.name})
        status = "failed" if host.failure else "loading"
        return JSONResponse({"status": status, "error": host.failure}, status_code=503)

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        created = int(time.time())
        data = [
            {"id": model_id, "object": "model", "created": created, "owned_by": "voicemode"}
            for model_id in host.engine.model_ids()
        ]
        return {"object": "list", "data": data}

    return app


def default_models_dir() -> Path:
    """Where assembled model files live: ``$VOICEMODE_BASE_DIR/models`` (default ``~/.voicemode``)."""
    base = os.environ.get("VOICEMODE_BASE_DIR") or str(Path.home() / ".voicemode")
    return Path(base) / "models"


def argument_parser(engine: str, default_port: int) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=f"python -m voicemoded.engines.{engine}",
        description=f"OpenAI-compatible {engine} speech server, bound to loopback by default.",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=default_port, help=f"port (default {default_port})")
    parser.add_argument(
        "--models-dir",
        type=Path,
        default=None,
        help="where assembled model files are kept (default $VOICEMODE_BASE_DIR/models)",
    )
    parser.add_argument(
        "--token-file",
        type=Path,
        default=None,
        help="file holding the token every request must send as 'Authorization: Bearer'; "
        "required when --host is not a loopback address",
    )
    parser.add_argument("--log-level", default="info", choices=("debug", "info", "warning", "error"))
    return parser


def access_policy(host: str, token_file: Path | None) -> AccessPolicy:
    """Loopback Host names only, or with a token any name; beyond loopback a token is required.

    A ``ValueError`` says why a combination cannot be served; the server then does not start at all.
    """
    if token_file is None:
        if not is_loopback_address(host):
            raise ValueError(
                f"--host {host} is reachable from other machines: give --token-file "
                "(the daemon passes its engine token itself), or bind 127.0.0.1"
            )
        return AccessPolicy()
    try:
        return AccessPolicy(token=read_token(token_file))
    except FileNotFoundError:
        raise ValueError(f"the token file {token_file} does not exist") from None
    except TokenFileError as exc:
        raise ValueError(str(exc)) from None


def configure_logging(level: str) -> None:
    """One JSON object per line on stderr, which the supervisor captures into the service's log."""
    numeric = getattr(logging, level.upper())
    logging.basicConfig(stream=sys.stderr, level=numeric, format="%(name)s %(levelname)s %(message)s")
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            structlog.processors.JSONRenderer(),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        logger_factory=structlog.PrintLoggerFactory(file=sys.stderr),
        cache_logger_on_first_use=True,
    )


class _Server(uvicorn.Server):
    """uvicorn re-raises SIGTERM after a graceful stop; a stop we were asked for is a clean exit (0)."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        super().handle_exit(sig, frame)
        self._captured_signals.clear()


def serve(
    build: Callable[[Callable[[], None]], FastAPI],
    *,
    host: str,
    port: int,
    engine: str,
    token_file: Path | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
) -> int:
    """Serve until SIGTERM/SIGINT (uvicorn drains in-flight requests); exit 1 if the model fails to load.

    ``build`` receives the callback that stops the server, for the app to call when loading fails, so
    the supervisor sees a crash (and its backoff applies) instead of a server stuck answering 503.
    Every request passes the :class:`AccessGuard` first; exit 2 when the bind and token do not fit.
    """
    try:
        policy = access_policy(host, token_file)
    except ValueError as exc:
        log.error("engine.refused_to_start", engine=engine, host=host, error=str(exc))
        return 2
    failed = False
    server: _Server | None = None

    def stop_on_failure() -> None:
        nonlocal failed
        failed = True
        if server is not None:
            server.should_exit = True

    app = build(stop_on_failure)
    guarded = AccessGuard(app, policy=policy, max_body_bytes=max_body_bytes, engine=engine)
    config = uvicorn.Config(
        guarded,
        host=host,
        port=port,
        log_config=None,
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=5,
        # Longer than any client keeps an idle connection (the daemon: 4 s), so idle connections are
        # closed by the client and a request never races the server's close.
        timeout_keep_alive=30,
    )
    server = _Server(config)
    log.info(
        "engine.starting",
        engine=engine,
        host=host,
        port=port,
        pid=os.getpid(),
        token=policy.token is not None,
    )
    server.run()
    log.info("engine.stopped", engine=engine, failed=failed)
    return 1 if failed else 0

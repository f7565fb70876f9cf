"""The door as one Starlette app: the guard, the JSON API, the page, and errors always in words."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import FileResponse, HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from voicemode_web import api
from voicemode_web.errors import WebError, unexpected
from voicemode_web.security import Guard, Policy
from voicemoded.api.client import Client, ClientError

log = logging.getLogger("voicemode_web")

STATIC = Path(__file__).parent / "static"
#: Client calls that may wait at once (a service start waits until it is ready): more than the few
#: the default executor allows on a small machine, so a slow start never stalls the dashboard.
CALL_THREADS = 32
NOT_BUILT = (
    "<!doctype html><meta charset=utf-8><title>voicemode</title>"
    "<p>The voicemode web page was never built. Run <code>scripts/setup.sh</code> in the voicemode "
    "checkout (it needs npm), then reload this page.</p>\n"
)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def page(request: Request) -> Response:
    """``/``, ``/history`` and ``/talk`` are one page that picks its view by path."""
    index = request.app.state.static / "index.html"
    if not index.is_file():
        return HTMLResponse(NOT_BUILT, status_code=503)
    return FileResponse(index, headers={"Cache-Control": "no-store"})


async def asset(request: Request) -> Response:
    folder: Path = (request.app.state.static / "assets").resolve()
    wanted = (folder / request.path_params["path"]).resolve()
    if not wanted.is_relative_to(folder) or not wanted.is_file():
        raise WebError(404, "not_found", "no such file")
    return FileResponse(wanted)


async def _web_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, WebError)
    return exc.response()


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    words = {404: "no such page or endpoint", 405: "this endpoint does not take that method"}
    return WebError(exc.status_code, "not_found" if exc.status_code == 404 else "invalid_request",
                    words.get(exc.status_code, exc.detail)).response()  # fmt: skip


async def _bug(request: Request, exc: Exception) -> Response:
    log.exception("web.request_failed", exc_info=exc)
    return unexpected(exc).response()


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncIterator[None]:
    pool = ThreadPoolExecutor(CALL_THREADS, thread_name_prefix="daemon-call")
    asyncio.get_running_loop().set_default_executor(pool)
    try:
        yield
    finally:
        pool.shutdown(wait=False, cancel_futures=True)  # a call still waiting does not hold the stop


def create_app(client: Client, token: str, *, loopback_only: bool = True, static: Path = STATIC) -> Starlette:
    """The door over ``client``; ``token`` guards every change (and, beyond loopback, every API call)."""
    with contextlib.suppress(ClientError):
        _ = client.channel  # made once here, not raced for by the first requests' threads
    routes = [
        Route("/healthz", healthz),
        Route("/", page),
        Route("/history", page),
        Route("/talk", page),
        Route("/assets/{path:path}", asset),
        *api.ROUTES,
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(Guard, policy=Policy(token, loopback_only))],
        exception_handlers={WebError: _web_error, HTTPException: _http_error, Exception: _bug},
        lifespan=lifespan,
    )
    app.state.client = client
    app.state.static = static
    return app

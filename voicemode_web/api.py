"""The JSON API: each route is one or a few typed client calls, run in a worker thread (the client is
synchronous), and their answers in the page's shapes (:mod:`voicemode_web.views`)."""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from voicemode_web import streams, views
from voicemode_web.errors import WebError, from_client
from voicemoded.api.client import Client, ClientError, TurnOptions
from voicemoded.api.v1 import conversation_pb2

T = TypeVar("T")

MAX_BODY_BYTES = 64 * 1024
TALK_ROOM = "voicemode-web"
ACTIONS = ("start", "stop", "restart")
TRANSPORTS = ("local", "livekit", "auto")
LIVEKIT_HINT = "voicemodectl service install livekit, then voicemodectl service start livekit"
_SAFE_NAME = re.compile(r"[A-Za-z0-9._-]{1,100}")


def client_of(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


async def call(fn: Callable[[], T]) -> T:
    """A blocking client call off the event loop; the daemon's error as the page's."""
    try:
        return await asyncio.to_thread(fn)
    except ClientError as exc:
        raise from_client(exc) from None


def _int_query(request: Request, name: str, default: int, low: int, high: int) -> int:
    text = request.query_params.get(name)
    if text is None or text == "":
        return default
    if not text.isdigit() or not low <= int(text) <= high:
        raise WebError(400, "invalid_argument", f"{name} must be a whole number from {low} to {high}")
    return int(text)


async def json_body(request: Request) -> dict[str, Any]:
    """The request's JSON object, at most :data:`MAX_BODY_BYTES`; an empty body is ``{}``."""
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _too_large(int(declared))
    data = bytearray()
    async for chunk in request.stream():
        data += chunk
        if len(data) > MAX_BODY_BYTES:
            raise _too_large(len(data))
    if not data.strip():
        return {}
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind != "application/json":
        raise WebError(
            415, "unsupported_media_type", "the body must be JSON", "send Content-Type: application/json"
        )
    try:
        body = json.loads(data)
    except ValueError as exc:
        raise WebError(400, "invalid_argument", f"the body is not valid JSON: {exc}") from None
    if not isinstance(body, dict):
        raise WebError(400, "invalid_argument", "the body must be a JSON object")
    return body


def _too_large(size: int) -> WebError:
    return WebError(
        413, "too_large", f"the body is {size:,} bytes, the limit is {MAX_BODY_BYTES:,}", "send less"
    )


def _text(body: dict[str, Any], name: str, default: str = "") -> str:
    value = body.get(name, default)
    if not isinstance(value, str):
        raise WebError(400, "invalid_argument", f"{name} must be a string")
    return value


# --- routes ----------------------------------------------------------------------------------------
async def overview(request: Request) -> JSONResponse:
    client = client_of(request)
    status, services, providers, config, found = await asyncio.gather(
        call(lambda: client.status()),
        call(client.list_services),
        call(lambda: client.list_providers()),
        call(lambda: client.get_config(["LIVEKIT_URL"])),
        _devices(client),
    )
    remote = next((v.value for v in config.values if v.key == "LIVEKIT_URL"), "")
    livekit = next((s for s in services.services if s.name == "livekit"), None)
    return JSONResponse(
        {
            "daemon": {
                "version": status.version,
                "pid": status.pid,
                "uptime_s": round(status.uptime_seconds, 3),
            },
            "services": [views.service(s) for s in services.services],
            "providers": [views.provider(p) for p in providers.providers],
            "devices": found,
            "livekit": _livekit(remote, views.service(livekit) if livekit is not None else None),
        }
    )


async def _devices(client: Client) -> dict[str, Any]:
    """The devices, or why there are none: the rest of the dashboard does not depend on them."""
    try:
        return views.devices(await call(client.list_devices))
    except WebError as exc:
        if exc.code == "daemon_not_running":
            raise
        return {"inputs": [], "outputs": [], "input_error": exc.message, "output_error": exc.message}


def _livekit(remote: str, local: dict[str, Any] | None) -> dict[str, Any]:
    """Where rooms are: the remote deployment LIVEKIT_URL names, else the supervised server."""
    if remote:
        return {"configured": True, "running": True, "url": remote, "hint": ""}
    installed = local is not None and local["installed"]
    running = local is not None and local["state"] == "running"
    url = f"ws://{local['host']}:{local['port']}" if local is not None and local["port"] else ""
    hint = "" if running else ("voicemodectl service start livekit" if installed else LIVEKIT_HINT)
    return {"configured": installed, "running": running, "url": url, "hint": hint}


async def config(request: Request) -> JSONResponse:
    snapshot = await call(client_of(request).get_config)
    return JSONResponse({"settings": [views.setting(v) for v in snapshot.values]})


async def service_action(request: Request) -> JSONResponse:
    name, action = request.path_params["name"], request.path_params["action"]
    if action not in ACTIONS:
        raise WebError(404, "not_found", f"no action {action[:40]!r}", f"use one of {', '.join(ACTIONS)}")
    await json_body(request)  # bounded and checked, though nothing in it is used
    client = client_of(request)
    run = {"start": client.start_service, "stop": client.stop_service, "restart": client.restart_service}[
        action
    ]
    info = await call(lambda: run(name))
    return JSONResponse({"service": views.service(info)})


async def service_logs(request: Request) -> Response:
    name = request.path_params["name"]
    lines = _int_query(request, "lines", 100, 0, 10_000)
    client = client_of(request)
    await call(lambda: client.get_service(name))  # an unknown service is a 404 before the stream starts

    def frames(line: Any) -> Iterator[bytes]:
        yield streams.frame("log", {"line": line.line, "time": views.iso(time.time())})

    return _sse(streams.relay(client.tail_logs(name, lines=lines, follow=True), frames))


async def events(request: Request) -> Response:
    replay = _int_query(request, "replay", 0, 0, 1000)
    client = client_of(request)
    await call(lambda: client.status())  # no daemon: an ordinary 503 answer, not a stream

    def frames(event: Any) -> Iterator[bytes]:
        yield streams.frame("daemon", views.event(event))

    return _sse(streams.relay(client.watch_events(replay=replay), frames))


async def history(request: Request) -> JSONResponse:
    recent = _int_query(request, "recent", 20, 1, 500)
    client = client_of(request)
    report = await call(lambda: client.statistics(recent))
    return JSONResponse(views.history(report.recent))


async def recording(request: Request) -> Response:
    turn_id = request.path_params["turn_id"]
    if not _SAFE_NAME.fullmatch(turn_id):
        raise WebError(404, "not_found", "no such turn")
    client = client_of(request)
    chunks = await call(lambda: list(client.recording(turn_id)))
    if not chunks:
        raise WebError(404, "not_found", f"turn {turn_id} kept no recording")
    head = chunks[0]
    return Response(
        b"".join(c.data for c in chunks),
        media_type=head.mime_type or "application/octet-stream",
        headers={
            "Content-Disposition": f'inline; filename="{turn_id}.{head.format or "bin"}"',
            "Cache-Control": "no-store",
        },
    )


async def talk(request: Request) -> JSONResponse:
    body = await json_body(request)
    room = _text(body, "room", TALK_ROOM) or TALK_ROOM
    client = client_of(request)
    identity = f"person-{secrets.token_hex(4)}"
    try:
        await asyncio.to_thread(client.create_room, room)
        token = await asyncio.to_thread(lambda: client.create_token(room, identity, name="person"))
    except ClientError as exc:
        raise _livekit_error(exc) from None
    return JSONResponse(
        {"url": token.url, "room": token.room or room, "token": token.token, "identity": identity}
    )


def _livekit_error(exc: ClientError) -> WebError:
    error = from_client(exc)
    if error.code == "unavailable":
        return WebError(503, "livekit_unavailable", "no LiveKit server is running", LIVEKIT_HINT)
    if error.code == "failed_precondition":
        return WebError(503, "livekit_unavailable", error.message, error.hint or LIVEKIT_HINT)
    return error


async def converse(request: Request) -> Response:
    body = await json_body(request)
    message = _text(body, "message")
    transport = _text(body, "transport", "livekit") or "livekit"
    if transport not in TRANSPORTS:
        raise WebError(400, "invalid_argument", f"transport must be one of {', '.join(TRANSPORTS)}")
    room = _text(body, "room", TALK_ROOM if transport != "local" else "")
    client = client_of(request)
    await call(lambda: client.status())
    turn = client.converse(message, TurnOptions(transport=transport, room=room))

    def frames(event: conversation_pb2.ConverseEvent) -> Iterable[bytes]:
        yield streams.frame("turn", views.turn_event(event))
        if event.kind == conversation_pb2.ConverseEvent.DONE:
            yield streams.frame("result", views.turn_result(event.result))

    return _sse(streams.relay(turn, frames))


def _sse(body: Any) -> StreamingResponse:
    return StreamingResponse(body, media_type="text/event-stream", headers=streams.HEADERS)


ROUTES = [
    Route("/api/overview", overview),
    Route("/api/config", config),
    Route("/api/services/{name}/logs", service_logs),
    Route("/api/services/{name}/{action}", service_action, methods=["POST"]),
    Route("/api/events", events),
    Route("/api/history", history),
    Route("/api/recordings/{turn_id}", recording),
    Route("/api/talk", talk, methods=["POST"]),
    Route("/api/converse", converse, methods=["POST"]),
]

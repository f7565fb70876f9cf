"""MCP sessions hosted in the daemon: one low-level SDK ``Server`` per tunnel stream.

The SDK serves one connection over any pair of anyio streams of ``SessionMessage``; here those streams
are fed from a gRPC stream of JSON-RPC messages instead of stdio. Each session carries its caller (cwd,
``VOICEMODE_*`` environment, pid), so config resolves per session. Cancellation and progress are the
SDK's own: ``notifications/cancelled`` cancels the handler, and the handler cancels the daemon operation
it started. A session whose tunnel breaks is cancelled as a whole, so nothing it started outlives it.
A message the SDK cannot read is answered with a JSON-RPC error here (the SDK drops it silently, which
would leave the client waiting); voicemode-mcp refuses those already, other tunnels may not.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from dataclasses import dataclass, field
from typing import Any, TypeVar

import anyio
import mcp_types as types
import structlog
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import Server
from mcp.shared.exceptions import MCPError
from mcp.shared.message import SessionMessage

from voicemoded import __version__
from voicemoded.api.errors import VoicemodeError
from voicemoded.api.safe_env import is_utf8
from voicemoded.config import Caller
from voicemoded.events import EventBus
from voicemoded.mcp import resources
from voicemoded.mcp.backend import JSON, Backend
from voicemoded.mcp.tools import TOOL_NAMES, TOOLS, ToolCall, dispatch, error_result, text_result

log = structlog.get_logger(__name__)

T = TypeVar("T")
Send = Callable[[bytes], Awaitable[None]]

INSTRUCTIONS = "Voice conversation with the user: call `converse` to speak and hear the spoken reply."
#: Messages buffered each way; the tunnel's stream applies back-pressure beyond that.
BUFFER = 32


async def isolated(coro: Coroutine[Any, Any, T]) -> T:
    """Run a daemon operation in its own asyncio task and cancel it exactly once when the call is.

    The SDK cancels a handler through an anyio cancel scope, which re-delivers cancellation at every
    await; plain asyncio code (the audio path's ``finally`` blocks) must get one cancel and the time
    to unwind, or a device could be left open.
    """
    task = asyncio.ensure_future(coro)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait([task])
        if not task.cancelled() and task.exception() is not None:
            log.debug("mcp.cancelled_op_failed", error=str(task.exception()))
        raise


def plugin_tools(backend: Backend) -> list[types.Tool]:
    """The plugins' tools as ``tools/list`` shows them, after the built-in ones."""
    return [
        types.Tool(name=t.name, description=t.description, input_schema=t.input_schema)
        for t in backend.plugin_tools()
    ]


class TunnelClosed(Exception):
    """The tunnel's side of the stream is gone (its process died or hung up); raised by ``send``."""


def describe(exc: BaseException) -> str:
    """The leaf errors of an exception group, which is what anyio task groups raise."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


def refusal(raw: bytes) -> types.JSONRPCError:
    """The JSON-RPC 2.0 answer to a message the SDK cannot read (no reply would leave the client waiting)."""
    try:
        message: Any = json.loads(raw)
    except (ValueError, RecursionError):
        return types.JSONRPCError(
            jsonrpc="2.0", id=None, error=types.ErrorData(code=types.PARSE_ERROR, message="parse error")
        )
    id_ = message.get("id") if isinstance(message, dict) and "method" in message else None
    if isinstance(id_, bool) or not isinstance(id_, int | str) or not is_utf8(str(id_)):
        id_ = None
    return types.JSONRPCError(
        jsonrpc="2.0",
        id=id_,
        error=types.ErrorData(
            code=types.INVALID_REQUEST, message="invalid request: not a JSON-RPC 2.0 message"
        ),
    )


@dataclass
class SessionInfo:
    id: int
    caller: Caller
    opened: float = field(default_factory=time.monotonic)
    calls: int = 0


class McpHost:
    """Serves MCP sessions and keeps count of the live ones (for status and tests)."""

    def __init__(
        self, backend: Backend, *, events: EventBus | None = None, version: str = __version__
    ) -> None:
        self._backend = backend
        self._events = events
        self._version = version
        self._ids = itertools.count(1)
        self._live: dict[int, SessionInfo] = {}

    @property
    def live(self) -> int:
        return len(self._live)

    def health_detail(self) -> str:
        return f"{self.live} MCP session{'s' if self.live != 1 else ''}"

    def build_server(self, info: SessionInfo) -> Server[Any]:
        backend = self._backend

        async def list_tools(ctx: ServerRequestContext[Any], params: Any) -> types.ListToolsResult:
            return types.ListToolsResult(tools=[*TOOLS, *plugin_tools(backend)])

        async def call_tool(
            ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
        ) -> types.CallToolResult:
            info.calls += 1
            if params.name not in TOOL_NAMES:
                known = TOOL_NAMES | {t.name for t in backend.plugin_tools()}
                if params.name not in known:
                    # The specs (2025-06-18, 2025-11-25) make an unknown tool a protocol error.
                    raise MCPError(
                        types.INVALID_PARAMS, f"Unknown tool: {params.name}", {"known": sorted(known)}
                    )

            async def progress(done: float, total: float | None, message: str) -> None:
                await ctx.session.report_progress(done, total, message or None)

            call = ToolCall(params.name, dict(params.arguments or {}), info.caller, progress, self._stats)
            started = time.monotonic()
            try:
                payload = await isolated(dispatch(backend, call))
            except VoicemodeError as exc:
                log.info("mcp.tool_failed", session=info.id, tool=params.name, error=exc.message)
                return error_result(exc)
            except asyncio.CancelledError:
                log.info("mcp.tool_cancelled", session=info.id, tool=params.name)
                raise
            except Exception as exc:
                log.exception("mcp.tool_crashed", session=info.id, tool=params.name)
                return error_result(
                    VoicemodeError(
                        f"internal error in {params.name}: {type(exc).__name__}: {exc}",
                        hint="this is a bug; the daemon log has the traceback (`voicemodectl events`)",
                    )
                )
            log.debug("mcp.tool_done", session=info.id, tool=params.name, seconds=time.monotonic() - started)
            return text_result(payload)

        async def list_resources(ctx: ServerRequestContext[Any], params: Any) -> types.ListResourcesResult:
            return resources.list_resources()

        async def read_resource(
            ctx: ServerRequestContext[Any], params: types.ReadResourceRequestParams
        ) -> types.ReadResourceResult:
            return await isolated(resources.read_resource(backend, info.caller, str(params.uri)))

        async def list_templates(
            ctx: ServerRequestContext[Any], params: Any
        ) -> types.ListResourceTemplatesResult:
            return types.ListResourceTemplatesResult(resource_templates=[])

        async def list_prompts(ctx: ServerRequestContext[Any], params: Any) -> types.ListPromptsResult:
            return resources.list_prompts()

        async def get_prompt(
            ctx: ServerRequestContext[Any], params: types.GetPromptRequestParams
        ) -> types.GetPromptResult:
            return resources.get_prompt(params.name, params.arguments)

        return Server(
            "voicemode",
            version=self._version,
            instructions=INSTRUCTIONS,
            on_list_tools=list_tools,
            on_call_tool=call_tool,
            on_list_resources=list_resources,
            on_read_resource=read_resource,
            on_list_resource_templates=list_templates,
            on_list_prompts=list_prompts,
            on_get_prompt=get_prompt,
        )

    def _stats(self) -> JSON:
        return {"mcp_sessions": self.live}

    async def serve(self, caller: Caller, incoming: AsyncIterator[bytes], send: Send) -> str:
        """Serve one session until the tunnel closes it (returns why) or the call is cancelled."""
        info = SessionInfo(next(self._ids), caller)
        self._live[info.id] = info
        reason = "cancelled"
        self._publish("mcp.session_opened", info, "opened")
        try:
            try:
                reason = await self._run(info, incoming, send)
            except* TunnelClosed:
                reason = "tunnel gone"
            except* Exception as group:
                reason = describe(group)
                log.exception("mcp.session_failed", session=info.id)
                raise
            return reason
        except asyncio.CancelledError:
            reason = "tunnel gone"
            raise
        finally:
            del self._live[info.id]
            self._publish("mcp.session_closed", info, reason)

    async def _run(self, info: SessionInfo, incoming: AsyncIterator[bytes], send: Send) -> str:
        server = self.build_server(info)
        to_server, server_in = anyio.create_memory_object_stream[SessionMessage | Exception](BUFFER)
        server_out, from_server = anyio.create_memory_object_stream[SessionMessage](BUFFER)

        answer = server_out.clone()  # refusals go out beside the server's own messages

        async def pump_in() -> None:
            async with to_server, answer:
                async for raw in incoming:
                    try:
                        message = types.jsonrpc_message_adapter.validate_json(raw, by_name=False)
                    except Exception as exc:
                        # voicemode-mcp refuses these itself; any other tunnel's still get an answer.
                        log.info(
                            "mcp.message_refused", session=info.id, size=len(raw), error=type(exc).__name__
                        )
                        await answer.send(SessionMessage(refusal(raw)))
                        continue
                    await to_server.send(SessionMessage(message))

        async def pump_out() -> None:
            async with from_server:
                async for item in from_server:
                    await send(item.message.model_dump_json(by_alias=True, exclude_unset=True).encode())

        async with anyio.create_task_group() as tg:
            tg.start_soon(pump_in)
            tg.start_soon(pump_out)
            async with server_out:
                await server.run(server_in, server_out, server.create_initialization_options())
        return "closed by the client"

    def _publish(self, kind: str, info: SessionInfo, reason: str) -> None:
        c = info.caller
        log.info(kind, session=info.id, client_pid=c.pid, cwd=c.cwd, reason=reason, live=self.live)
        if self._events is not None:
            self._events.publish(
                kind, "mcp", f"MCP session {info.id} {reason}",
                session=info.id, client_pid=c.pid, cwd=c.cwd, reason=reason, live=self.live,
                calls=info.calls, seconds=f"{time.monotonic() - info.opened:.3f}",
            )  # fmt: skip

"""The McpTunnel service: one MCP session per bidirectional stream opened by ``voicemode-mcp``."""

from __future__ import annotations

import asyncio
import importlib
from collections.abc import AsyncIterator, Callable
from typing import TYPE_CHECKING

import grpc
import structlog

from voicemoded.api.errors import InvalidArgument
from voicemoded.api.v1 import mcp_pb2, mcp_pb2_grpc
from voicemoded.rpc import convert
from voicemoded.rpc.errors import abort

if TYPE_CHECKING:
    from voicemoded.mcp.session import McpHost

log = structlog.get_logger(__name__)


class McpTunnelService(mcp_pb2_grpc.McpTunnelServicer):
    """Builds the MCP host on the first session: the SDK costs ~1 s and ~65 MiB, paid once, when used."""

    def __init__(self, make_host: Callable[[], McpHost]) -> None:
        self._make_host = make_host
        self._host: McpHost | None = None
        self._lock = asyncio.Lock()

    async def host(self) -> McpHost:
        async with self._lock:
            if self._host is None:
                # Import the SDK off the event loop so other calls keep being served meanwhile.
                await asyncio.to_thread(importlib.import_module, "voicemoded.mcp.session")
                self._host = self._make_host()
        return self._host

    def health_detail(self) -> str:
        return self._host.health_detail() if self._host is not None else "0 MCP sessions"

    async def Session(  # type: ignore[override]  # a coroutine that writes through the context
        self, request_iterator: AsyncIterator[mcp_pb2.McpFrame], context: grpc.aio.ServicerContext
    ) -> None:
        first = await anext(aiter(request_iterator), None)
        if first is None or first.WhichOneof("frame") != "open":
            await abort(
                context,
                InvalidArgument(
                    "an MCP tunnel stream must start with an open frame",
                    hint="use voicemode-mcp from the same voicemode version as the daemon",
                ),
            )
            return
        from voicemoded.mcp.session import TunnelClosed

        caller = convert.caller(first.open.caller)
        if not caller.client:
            caller = type(caller)(cwd=caller.cwd, env=caller.env, pid=caller.pid, client="voicemode-mcp")

        async def incoming() -> AsyncIterator[bytes]:
            async for frame in request_iterator:
                kind = frame.WhichOneof("frame")
                if kind == "message":
                    yield frame.message
                elif kind == "close":
                    log.debug("mcp.tunnel_close", reason=frame.close.reason)
                    return

        async def send(data: bytes) -> None:
            try:
                await context.write(mcp_pb2.McpFrame(message=data))
            except Exception as exc:  # grpc raises its internal ExecuteBatchError once the peer is gone
                raise TunnelClosed(str(exc)) from exc

        host = await self.host()
        await host.serve(caller, incoming(), send)

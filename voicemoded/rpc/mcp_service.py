"""The McpTunnel service: one MCP session per bidirectional stream opened by ``voicemode-mcp``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

import grpc
import structlog

from voicemoded.api.v1 import mcp_pb2, mcp_pb2_grpc
from voicemoded.errors import InvalidArgument
from voicemoded.rpc import convert
from voicemoded.rpc.errors import abort

if TYPE_CHECKING:
    from voicemoded.mcp.session import McpHost

log = structlog.get_logger(__name__)


class McpTunnelService(mcp_pb2_grpc.McpTunnelServicer):
    def __init__(self, host: McpHost) -> None:
        self._host = host

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

        await self._host.serve(caller, incoming(), send)

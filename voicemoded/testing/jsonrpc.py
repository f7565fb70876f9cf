"""Raw MCP JSON-RPC messages, for speaking to the ``voicemode-mcp`` tunnel without the SDK.

The measuring side of ``benchmarks/mcp_startup.py`` and the tunnel's byte-level tests send these, so
what they time or check is the tunnel alone.
"""

from __future__ import annotations

from typing import Any

INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-11-25",
        "capabilities": {},
        "clientInfo": {"name": "voicemode-tests", "version": "1"},
    },
}
"""The ``initialize`` request (id 1) a client sends first."""

INITIALIZED: dict[str, Any] = {"jsonrpc": "2.0", "method": "notifications/initialized"}
"""The notification that follows the answer to ``initialize``."""


def call(id_: int | str, name: str, arguments: dict[str, Any], **meta: Any) -> dict[str, Any]:
    """A ``tools/call`` request for tool ``name``; ``meta`` becomes the request's ``_meta``."""
    params: dict[str, Any] = {"name": name, "arguments": arguments}
    if meta:
        params["_meta"] = meta
    return {"jsonrpc": "2.0", "id": id_, "method": "tools/call", "params": params}

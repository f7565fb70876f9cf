"""The tools installed plugins add to the MCP door: their listing and their calls.

A plugin tool's arguments are checked against its own schema and its handler runs guarded (see
:mod:`voicemoded.plugins.loaded`): whatever goes wrong is a typed error, which the door reports like
the failure of a built-in tool.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from voicemoded.plugins.api import ToolResult
from voicemoded.plugins.loaded import Plugins


@dataclass(frozen=True, slots=True)
class ToolInfo:
    name: str
    description: str
    input_schema: dict[str, Any]


class Tools:
    def __init__(self, plugins: Plugins) -> None:
        self._plugins = plugins

    def list(self) -> tuple[ToolInfo, ...]:
        """Every plugin tool, in load order."""
        return tuple(ToolInfo(t.name, t.description, t.input_schema) for t in self._plugins.tools)

    async def call(self, name: str, arguments: dict[str, Any]) -> ToolResult:
        """The tool's answer (a JSON object or a text); raises ``VoicemodeError`` for any failure."""
        return await self._plugins.call_tool(name, arguments)

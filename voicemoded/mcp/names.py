"""The built-in MCP tools' names, without their schemas.

The daemon needs them at start-up (a plugin may not take one), before any MCP session exists; the
schemas in :mod:`voicemoded.mcp.tools` import the MCP SDK's types, which cost over a second, so the
names live here on their own (a test holds that they match the tools).
"""

from __future__ import annotations

BUILTIN_TOOLS = ("converse", "service", "providers", "devices", "config", "statistics", "rooms")

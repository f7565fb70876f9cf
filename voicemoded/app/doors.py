"""What a door tells the application about who is calling, beyond the caller's context.

The person's own tools (voicemodectl, anything on the gRPC socket) may change every setting. An
assistant (the MCP door) can be steered by text it read, so it may not change where the person's audio
goes unless the person allowed it in their own config file.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Door:
    name: str
    """What a turn is logged under when the caller gave no client name."""
    may_redirect_audio: bool
    """Whether endpoint URLs, secrets, program paths and who may connect can be changed through it."""


GRPC = Door("grpc", may_redirect_audio=True)
MCP = Door("mcp", may_redirect_audio=False)

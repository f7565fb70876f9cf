"""What a front door tells the daemon about itself with each call. Standard library only."""

from __future__ import annotations

import os
from collections.abc import Mapping

from voicemoded.api.safe_env import text_cwd

#: Caller environment variables forwarded with each call (the daemon ignores names it does not know).
FORWARDED_PREFIXES = ("VOICEMODE_", "OPENAI_", "LIVEKIT_")


def forwarded_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if k.startswith(FORWARDED_PREFIXES)}


def current_cwd() -> str:
    """The caller's folder, or "" when it was deleted or its name is not UTF-8 (protobuf carries text)."""
    return text_cwd()

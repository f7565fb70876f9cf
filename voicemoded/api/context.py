"""What a front door tells the daemon about itself with each call. Standard library only."""

from __future__ import annotations

import os
from collections.abc import Mapping

#: Caller environment variables forwarded with each call (the daemon ignores names it does not know).
FORWARDED_PREFIXES = ("VOICEMODE_", "OPENAI_", "LIVEKIT_")


def forwarded_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    env = os.environ if env is None else env
    return {k: v for k, v in env.items() if k.startswith(FORWARDED_PREFIXES)}


def current_cwd() -> str:
    try:
        return os.getcwd()
    except FileNotFoundError:  # the caller's folder was deleted under it
        return ""

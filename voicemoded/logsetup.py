"""structlog set-up: readable on a terminal, JSON lines otherwise, and secrets scrubbed everywhere.

The scrubber runs last before rendering, so no processor, exception or third-party message can carry an
API key into a log: known secret values are replaced wherever they appear, and fields whose names say
"key", "secret", "token" or "password" are redacted whatever their value.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

_SECRET_FIELD = re.compile(r"(api_?key|secret|token|password|authorization)", re.IGNORECASE)
# Shapes of credentials worth hiding even when we were never told the value.
_SECRET_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_\-]{12,}|Bearer\s+[A-Za-z0-9._\-]{12,})")


class SecretScrubber:
    """A structlog processor holding the current secret values (updated on config reload)."""

    def __init__(self) -> None:
        self._values: tuple[str, ...] = ()

    def update(self, values: Iterable[str]) -> None:
        self._values = tuple(sorted({v for v in values if v and len(v) >= 4}, key=len, reverse=True))

    def scrub(self, text: str) -> str:
        for value in self._values:
            if value in text:
                text = text.replace(value, "[redacted]")
        return _SECRET_SHAPES.sub("[redacted]", text)

    def _clean(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._clean(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._clean(v) for v in value)
        return value

    def __call__(self, logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> Any:
        for key in list(event_dict):
            value = event_dict[key]
            if key != "event" and _SECRET_FIELD.search(key) and isinstance(value, str) and value:
                event_dict[key] = "[redacted]"
            else:
                event_dict[key] = self._clean(value)
        return event_dict


def configure(
    level: str = "info", fmt: str = "auto", scrubber: SecretScrubber | None = None
) -> SecretScrubber:
    """Route structlog and stdlib logging to stderr; returns the scrubber to feed secret values to."""
    scrubber = scrubber or SecretScrubber()
    use_console = fmt == "console" or (fmt == "auto" and sys.stderr.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=True) if use_console else structlog.processors.JSONRenderer()
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[
            structlog.stdlib.ProcessorFormatter.remove_processors_meta,
            structlog.processors.format_exc_info,
            scrubber,
            renderer,
        ],
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # grpc and httpx are chatty at info; their warnings still show.
    for noisy in ("grpc", "httpx", "httpcore", "asyncio", "watchfiles"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    return scrubber


def set_level(level: str) -> None:
    logging.getLogger().setLevel(level.upper())

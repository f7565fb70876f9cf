"""What ``status`` says about each plugin entry point, and its wire form."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from voicemoded.api.errors import clip

if TYPE_CHECKING:
    from voicemoded.api.v1 import daemon_pb2

State = Literal["loaded", "failed", "disabled"]
ERROR_CHARS = 500


def describe(exc: BaseException) -> str:
    """An exception as one line of a report: its type and message, cut to a readable length."""
    text = str(exc).strip()
    return clip(f"{type(exc).__name__}: {text}" if text else type(exc).__name__, ERROR_CHARS)


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """One entry point: where it comes from, whether it loaded, and why not."""

    name: str
    """The entry point's name (what ``VOICEMODE_PLUGINS`` lists)."""
    group: str
    distribution: str = ""
    version: str = ""
    state: State = "loaded"
    error: str = ""
    """Why it failed; for a loaded service, why its last refresh failed (the previous spec stays)."""
    provides: str = ""
    """The service, provider or tool name it adds."""
    target: str = ""
    """``package.module:attribute``."""

    def to_proto(self) -> daemon_pb2.PluginInfo:
        from voicemoded.api.v1 import daemon_pb2

        states = {
            "loaded": daemon_pb2.PluginInfo.LOADED,
            "failed": daemon_pb2.PluginInfo.FAILED,
            "disabled": daemon_pb2.PluginInfo.DISABLED,
        }
        return daemon_pb2.PluginInfo(
            name=self.name,
            group=self.group,
            distribution=self.distribution,
            version=self.version,
            state=states[self.state],
            error=self.error,
            provides=self.provides,
            target=self.target,
        )

    def as_dict(self) -> dict[str, str]:
        """The MCP ``statistics`` form: only the fields that say something."""
        fields = {
            "name": self.name,
            "group": self.group,
            "distribution": self.distribution,
            "version": self.version,
            "state": self.state,
            "error": self.error,
            "provides": self.provides,
        }
        return {k: v for k, v in fields.items() if v}

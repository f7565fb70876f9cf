"""Settings as the doors see them: effective values with their origins, edits, reloads.

Secrets leave here redacted, whichever door asks. An edit is refused before anything is written when
the door may not make it (see :mod:`voicemoded.app.doors`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import structlog

from voicemoded.api.errors import PermissionDenied
from voicemoded.app.doors import Door
from voicemoded.config import (
    SETTINGS,
    Caller,
    ConfigError,
    ConfigManager,
    Resolved,
    SettingInfo,
    format_value,
    redact,
)
from voicemoded.config.schema import ENDPOINT_KEYS
from voicemoded.health import Health

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class ConfigEntry:
    """One setting's effective value for a caller; ``value`` and ``default`` redacted for a secret."""

    key: str
    value: str
    layer: str
    file: str
    line: int
    secret: bool
    type: str
    description: str
    default: str

    @property
    def origin(self) -> str:
        """Where the value came from in one word: ``file:line``, or the layer's name."""
        return f"{self.file}:{self.line}" if self.file else self.layer


@dataclass(frozen=True, slots=True)
class ConfigSource:
    layer: str
    path: str
    loaded: bool
    keys: int


@dataclass(frozen=True, slots=True)
class ConfigView:
    entries: tuple[ConfigEntry, ...]
    sources: tuple[ConfigSource, ...]
    errors: tuple[ConfigError, ...]
    """Errors of the daemon's own layers (the last good configuration stays in force)."""


@dataclass(frozen=True, slots=True)
class ConfigWrite:
    file: Path
    line: int
    """The line written; 0 for an unset."""
    entry: ConfigEntry
    """The setting's effective value for the caller after the edit."""


@dataclass(frozen=True, slots=True)
class ConfigReload:
    changed_keys: tuple[str, ...]
    errors: tuple[ConfigError, ...]


def sends_audio_elsewhere(info: SettingInfo) -> bool:
    """Endpoint URLs, secrets, program paths, who may connect, and the switch that guards them (an
    assistant must not grant itself)."""
    return (
        info.secret
        or info.env in ENDPOINT_KEYS
        or info.env.endswith(("_URL", "_URLS"))
        or info.env == "VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS"
    )


def entries(resolved: Resolved, keys: Sequence[str] = ()) -> tuple[ConfigEntry, ...]:
    """Every setting in schema order, or only ``keys`` (any spelling ``ConfigManager.info`` accepts)."""
    wanted = {ConfigManager.info(k).name for k in keys} if keys else None
    out = []
    for info in SETTINGS:
        if wanted is not None and info.name not in wanted:
            continue
        origin = resolved.origins[info.name]
        text = format_value(getattr(resolved.settings, info.name))
        default = format_value(info.default)
        out.append(
            ConfigEntry(
                key=info.env,
                value=redact(text) if info.secret else text,
                layer=origin.layer,
                file=origin.file,
                line=origin.line,
                secret=info.secret,
                type=info.type_name,
                description=info.doc,
                default=redact(default) if info.secret else default,
            )
        )
    return tuple(out)


def sources(resolved: Resolved) -> tuple[ConfigSource, ...]:
    out = [ConfigSource(layer="default", path="", loaded=True, keys=len(SETTINGS))]
    out += [
        ConfigSource(layer.name, layer.path, layer.loaded, len(layer.values)) for layer in resolved.layers
    ]
    return tuple(out)


class Configuration:
    def __init__(self, manager: ConfigManager) -> None:
        self._manager = manager

    def get(self, keys: Sequence[str], caller: Caller) -> ConfigView:
        resolved = self._manager.resolve(caller)
        return ConfigView(entries(resolved, keys), sources(resolved), self._manager.errors)

    def daemon_view(self) -> ConfigView:
        """The daemon's own configuration (no caller layers), as ``status`` shows it."""
        resolved = self._manager.resolved
        return ConfigView((), sources(resolved), self._manager.errors)

    def set(self, key: str, value: str, scope: str, caller: Caller, door: Door) -> ConfigWrite:
        info = ConfigManager.info(key)
        self._check_door_may_change(info, door)
        path, line = self._manager.set(info.env, value, scope or "user", caller)
        log.info("config.set", key=info.env, scope=scope or "user", file=str(path), door=door.name)
        return ConfigWrite(path, line, self._effective(info.env, caller))

    def unset(self, key: str, scope: str, caller: Caller, door: Door) -> ConfigWrite:
        info = ConfigManager.info(key)
        self._check_door_may_change(info, door)
        path = self._manager.unset(info.env, scope or "user", caller)
        log.info("config.unset", key=info.env, scope=scope or "user", file=str(path), door=door.name)
        return ConfigWrite(path, 0, self._effective(info.env, caller))

    def reload(self) -> ConfigReload:
        result = self._manager.load()
        return ConfigReload(tuple(ConfigManager.info(name).env for name in result.changed), result.errors)

    def _effective(self, key: str, caller: Caller) -> ConfigEntry:
        return entries(self._manager.resolve(caller), [key])[0]

    def _check_door_may_change(self, info: SettingInfo, door: Door) -> None:
        """Where audio goes (endpoint URLs) and the keys for it change only if the person allowed it.

        An assistant can be steered by text it read; it must not be able to send the person's recordings
        to a server of someone else's choosing. Only the user's own file grants it: a project file or
        a caller's environment could have been written by whoever steers the assistant.
        """
        if door.may_redirect_audio or not sends_audio_elsewhere(info):
            return
        if self._manager.user_file_allows_endpoint_changes():
            return
        what = "a secret" if info.secret else "where audio goes, what programs run or who may connect"
        user_file = self._manager.user_file
        raise PermissionDenied(
            f"{info.env} decides {what} and cannot be changed through the assistant",
            hint=f"change it yourself (`voicemodectl config set {info.env} …` or edit "
            f"{user_file}); to let the assistant change endpoints and keys, put "
            f"VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS=true in {user_file}",
            fields={"key": info.env},
        )

    def health(self) -> Health:
        """Errors make it degraded; warnings (unknown keys, a non-loopback host) change nothing in force
        but are usually a mistake the person wants to see, so they ride along in the detail."""
        manager = self._manager
        if manager.errors:
            health = Health("config", "degraded", "; ".join(map(str, manager.errors)))
        else:
            health = Health("config", "ok", str(manager.user_file))
        warnings = manager.warnings
        if not warnings:
            return health
        count = f"{len(warnings)} warning{'s' if len(warnings) != 1 else ''}"
        return Health(health.name, health.state, f"{health.detail}; {count}: " + "; ".join(warnings))

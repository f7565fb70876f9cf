"""The daemon's live configuration: load, resolve per caller, edit, watch, reload.

A user file with a bad value never replaces a good configuration: the last good one stays in force and
the error (key, file, line, why) is kept for ``voicemodectl status`` and logged. A caller's project file
or environment with a bad value fails that call with the same detail.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import structlog

from voicemoded.config import envfile
from voicemoded.config.layers import (
    Caller,
    ConfigError,
    Layer,
    Resolved,
    combine,
    env_layer,
    file_layer,
    find_project_file,
    lookup,
    scrub_errors,
    suggest,
)
from voicemoded.config.schema import SETTINGS, SettingInfo, Settings, format_value
from voicemoded.errors import InvalidArgument, NotFound
from voicemoded.events import EventBus
from voicemoded.paths import PROJECT_FILE_NAME, Paths

log = structlog.get_logger(__name__)

ChangeCallback = Callable[[Settings, Settings], None]


@dataclass(frozen=True, slots=True)
class ReloadResult:
    changed: tuple[str, ...]
    errors: tuple[ConfigError, ...]


def changed_settings(old: Settings, new: Settings) -> tuple[str, ...]:
    return tuple(f.name for f in fields(Settings) if getattr(old, f.name) != getattr(new, f.name))


class ConfigManager:
    """Owns the user layer (last good + current errors) and resolves settings for callers."""

    def __init__(self, paths: Paths, daemon_env: Mapping[str, str], events: EventBus | None = None) -> None:
        self._paths = paths
        self._events = events
        self._daemon_layer = env_layer("daemon-environment", daemon_env)
        self._user_layer = Layer(name="user", path=str(paths.user_file))
        self._errors: tuple[ConfigError, ...] = ()
        self._project_cache: dict[Path, tuple[int, int, Layer]] = {}
        self._callbacks: list[ChangeCallback] = []
        self._resolved = combine(self._base_layers())

    # --- reading ---------------------------------------------------------------------------------
    def _base_layers(self) -> tuple[Layer, ...]:
        return (self._daemon_layer, self._user_layer)

    @property
    def settings(self) -> Settings:
        """The daemon's own settings (no caller layers)."""
        return self._resolved.settings

    @property
    def resolved(self) -> Resolved:
        return self._resolved

    @property
    def errors(self) -> tuple[ConfigError, ...]:
        """Errors of the daemon's own layers that kept the last good configuration in force."""
        return self._daemon_layer.errors + self._errors

    @property
    def user_file(self) -> Path:
        return self._paths.user_file

    def on_change(self, callback: ChangeCallback) -> None:
        self._callbacks.append(callback)

    def _project_layer(self, cwd: str) -> Layer | None:
        path = find_project_file(cwd)
        if path is None:
            return None
        try:
            stat = path.stat()
        except OSError:
            return None
        cached = self._project_cache.get(path)
        if cached and cached[:2] == (stat.st_mtime_ns, stat.st_size):
            return cached[2]
        layer = file_layer("project", path)
        self._project_cache[path] = (stat.st_mtime_ns, stat.st_size, layer)
        return layer

    def resolve(self, caller: Caller | None = None) -> Resolved:
        """Settings for one call; raises ``InvalidArgument`` naming key, file and line for a bad value."""
        if caller is None or (not caller.cwd and not caller.env):
            return self._resolved
        layers = list(self._base_layers())
        project = self._project_layer(caller.cwd)
        if project is not None:
            layers.append(project)
        caller_env = env_layer("environment", caller.env)
        layers.append(caller_env)
        problems = [*(project.errors if project else ()), *caller_env.errors]
        if problems:
            first = problems[0]
            raise InvalidArgument(
                f"bad configuration: {'; '.join(str(p) for p in problems)}",
                hint=f"fix {first.key or 'the line'} in {first.file or 'your environment'}",
                fields={"key": first.key, "file": first.file, "line": str(first.line)},
            )
        return combine(tuple(layers))

    # --- reloading -------------------------------------------------------------------------------
    def load(self) -> ReloadResult:
        """Read the user file; keep the last good layer when it has errors."""
        layer = file_layer("user", self._paths.user_file)
        current_secrets = [str(getattr(self.settings, i.name)) for i in SETTINGS if i.secret]
        layer = replace(layer, errors=tuple(scrub_errors(list(layer.errors), current_secrets)))
        for warning in layer.warnings:
            log.warning("config.warning", detail=warning)
            self._publish("config.warning", warning, level="warning")
        if layer.errors:
            self._errors = layer.errors
            for error in layer.errors:
                log.error(
                    "config.error", key=error.key, file=error.file, line=error.line, reason=error.reason
                )
            self._publish(
                "config.error",
                "kept the last good configuration: " + "; ".join(str(e) for e in layer.errors),
                level="error",
                key=layer.errors[0].key,
                file=layer.errors[0].file,
                line=layer.errors[0].line,
                reason=layer.errors[0].reason,
            )
            return ReloadResult((), layer.errors)
        self._errors = ()
        self._user_layer = layer
        old = self._resolved.settings
        self._resolved = combine(self._base_layers())
        changed = changed_settings(old, self._resolved.settings)
        if changed:
            names = [self.info(name).env for name in changed]
            log.info("config.reloaded", changed=names)
            self._publish("config.reloaded", f"changed: {', '.join(names)}", changed=",".join(names))
            for callback in list(self._callbacks):
                try:
                    callback(old, self._resolved.settings)
                except Exception:
                    log.exception("config.callback_failed", callback=getattr(callback, "__qualname__", ""))
        return ReloadResult(changed, ())

    def _publish(self, kind: str, message: str, level: str = "info", **fields: object) -> None:
        if self._events is not None:
            self._events.publish(kind, "config", message, level=level, **fields)

    async def watch(self, debounce_ms: int = 50) -> None:
        """Reload whenever the user file changes; runs until cancelled."""
        from watchfiles import awatch

        folder = self._paths.user_file.parent
        name = self._paths.user_file.name
        while True:
            if not folder.exists():
                # Nothing to watch until the folder exists; the daemon creates it at start.
                await asyncio.sleep(1.0)
                continue
            try:
                async for changes in awatch(folder, debounce=debounce_ms, step=20, recursive=False):
                    # Not recursive, so a matching name in this folder is the user file.
                    if any(Path(path).name == name for _, path in changes):
                        self.load()
            except FileNotFoundError:
                continue

    # --- editing ---------------------------------------------------------------------------------
    def _target(self, scope: str, caller: Caller | None) -> Path:
        if scope in ("", "user"):
            return self._paths.user_file
        if scope == "project":
            if caller is None or not caller.cwd:
                raise InvalidArgument("project scope needs the caller's working directory")
            return find_project_file(caller.cwd) or Path(caller.cwd) / PROJECT_FILE_NAME
        raise InvalidArgument(f"unknown scope {scope!r}", hint="use --scope user or --scope project")

    @staticmethod
    def info(key: str) -> SettingInfo:
        info = lookup(key)
        if info is None:
            raise NotFound(f"unknown setting {key!r}", hint=suggest(key))
        return info

    def set(
        self, key: str, value: str, scope: str = "user", caller: Caller | None = None
    ) -> tuple[Path, int]:
        """Validate, write to the file keeping its other lines, and reload."""
        info = self.info(key)
        try:
            typed = info.parse(value)
        except ValueError as exc:
            raise InvalidArgument(f"{info.env}: {exc}", hint=info.doc) from None
        if scope == "project" and info.daemon_wide:
            raise InvalidArgument(
                f"{info.env} is daemon-wide and cannot differ per project",
                hint=f"set it for the user: voicemodectl config set {info.env} {value}",
            )
        path = self._target(scope, caller)
        line = envfile.set_key(path, info.env, format_value(typed))
        self._after_edit(path)
        return path, line

    def unset(self, key: str, scope: str = "user", caller: Caller | None = None) -> Path:
        info = self.info(key)
        path = self._target(scope, caller)
        envfile.set_key(path, info.env, None)
        self._after_edit(path)
        return path

    def _after_edit(self, path: Path) -> None:
        if path == self._paths.user_file:
            self.load()
        else:
            self._project_cache.pop(path, None)

"""The daemon's live configuration: load, resolve per caller, edit, watch, reload.

A user file with a bad value never replaces a good configuration: the last good one stays in force and
the error (key, file, line, why) is kept for ``voicemodectl status`` and logged. A caller's project file
or environment with a bad value fails that call with the same detail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path

import structlog

from voicemoded.api.errors import InvalidArgument, NotFound, clip, quote
from voicemoded.api.paths import PROJECT_FILE_NAME, Paths
from voicemoded.config import editing
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
from voicemoded.config.redaction import mask_shapes
from voicemoded.config.schema import SETTINGS, SettingInfo, Settings, format_value
from voicemoded.events import EventBus

#: A project file changed this recently is read again on every call: two edits within one tick of the
#: file system's clock can leave the same size and modification time (git calls this "racily clean").
_RACY_SECONDS = 2.0
_PROJECT_CACHE_SIZE = 256

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
        self._user_warnings: tuple[str, ...] = ()
        self._project_cache: dict[Path, tuple[tuple[int, ...], Layer]] = {}
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
    def warnings(self) -> tuple[str, ...]:
        """Valid but doubtful settings of the daemon's own layers (unknown keys, a non-loopback host)."""
        return self._daemon_layer.warnings + self._user_warnings

    @property
    def user_file(self) -> Path:
        return self._paths.user_file

    def user_file_allows_endpoint_changes(self) -> bool:
        """Whether the person's own voicemode.env lets the MCP door change endpoint URLs and keys.

        Only the user file counts: a project file, a caller's environment or the daemon's environment
        could be written by whoever steers the assistant, so they never grant this.
        """
        entry = self._user_layer.values.get("mcp_can_change_endpoints")
        return bool(entry and entry[0] is True)

    def on_change(self, callback: ChangeCallback) -> None:
        self._callbacks.append(callback)

    def _project_layer(self, cwd: str) -> Layer | None:
        path = find_project_file(cwd)
        if path is None:
            return None
        try:
            stat = path.stat()
        except OSError:
            stat = None
        if stat is None:
            return file_layer("project", path)  # a dangling link: reading it says so
        key = (stat.st_ino, stat.st_dev, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_size)
        cached = self._project_cache.get(path)
        if cached and cached[0] == key and time.time() - stat.st_mtime_ns / 1e9 > _RACY_SECONDS:
            return cached[1]
        layer = file_layer("project", path)
        self._project_cache.pop(path, None)
        self._project_cache[path] = (key, layer)
        while len(self._project_cache) > _PROJECT_CACHE_SIZE:  # callers choose the paths: bound them
            del self._project_cache[next(iter(self._project_cache))]
        return layer

    def resolve(self, caller: Caller | None = None) -> Resolved:
        """Settings for one call; raises ``InvalidArgument`` naming key, file and line for a bad value."""
        if caller is None or (not caller.cwd and not caller.env):
            return self._resolved
        if caller.cwd:
            editing.check_text("caller.cwd", caller.cwd)
            if not caller.cwd.startswith("/"):
                raise InvalidArgument(
                    f"caller.cwd must be an absolute path, got {quote(caller.cwd)}",
                    hint="front doors send os.getcwd(); a relative path would name a folder of the daemon's",
                    fields={"field": "caller.cwd"},
                )
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
        self._user_warnings = layer.warnings
        for warning in self._daemon_layer.warnings + layer.warnings:
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
            editing.ensure_user_folder(self._paths.user_file)
            return self._paths.user_file
        if scope == "project":
            folder = editing.project_folder(caller.cwd if caller is not None else "")
            return find_project_file(str(folder)) or folder / PROJECT_FILE_NAME
        raise InvalidArgument(
            f"unknown scope {quote(scope)}",
            hint="use --scope user or --scope project",
            fields={"field": "scope"},
        )

    @staticmethod
    def info(key: str) -> SettingInfo:
        editing.check_text("key", key)
        info = lookup(key)
        if info is None:
            raise NotFound(f"unknown setting {quote(key)}", hint=suggest(key[:200]), fields={"field": "key"})
        return info

    def set(
        self, key: str, value: str, scope: str = "user", caller: Caller | None = None
    ) -> tuple[Path, int]:
        """Validate, write to the file keeping its other lines, and reload."""
        info = self.info(key)
        editing.check_text("value", value)
        try:
            typed = info.parse(value)
        except ValueError as exc:
            reason = clip(mask_shapes(str(exc)), 300)
            raise InvalidArgument(f"{info.env}: {reason}", hint=info.doc, fields={"field": "value"}) from None
        if scope == "project" and info.daemon_wide:
            raise InvalidArgument(
                f"{info.env} is daemon-wide and cannot differ per project",
                hint=f"set it for the user: voicemodectl config set {info.env} {quote(value)}",
            )
        path = self._target(scope, caller)
        line = editing.write(path, info.env, format_value(typed))
        self._after_edit(path)
        return path, line

    def unset(self, key: str, scope: str = "user", caller: Caller | None = None) -> Path:
        info = self.info(key)
        path = self._target(scope, caller)
        editing.write(path, info.env, None)
        self._after_edit(path)
        return path

    def _after_edit(self, path: Path) -> None:
        if path == self._paths.user_file:
            self.load()
        else:
            self._project_cache.pop(path, None)

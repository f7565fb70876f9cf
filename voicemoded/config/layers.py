"""Configuration layers and how they combine.

Precedence, highest first: the caller's environment > the caller's project ``.voicemode.env`` (nearest,
walking up from its working directory) > the user file ``~/.voicemode/voicemode.env`` > the daemon's own
environment > defaults. Daemon-wide settings (ports, devices, services, logging) cannot change per call:
for them only the user file, the daemon's environment and defaults count.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from voicemoded.api.context import FORWARDED_PREFIXES
from voicemoded.api.paths import PROJECT_FILE_NAME
from voicemoded.config import envfile
from voicemoded.config.redaction import mask_shapes, quote_line
from voicemoded.config.schema import (
    BOOTSTRAP_KEYS,
    BY_ENV,
    SETTINGS,
    SettingInfo,
    Settings,
    build_settings,
    caution,
    redact,
)


@dataclass(frozen=True, slots=True)
class ConfigError:
    """A value that was refused: which key, where it was written, and why."""

    key: str
    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.file else "environment"
        return f"{self.key or 'line'} ({where}): {self.reason}"


@dataclass(frozen=True, slots=True)
class Origin:
    layer: str
    file: str = ""
    line: int = 0


@dataclass(frozen=True, slots=True)
class Layer:
    """One source of settings, parsed: typed values by setting name, with where each came from."""

    name: str
    path: str = ""
    loaded: bool = False
    values: Mapping[str, tuple[Any, Origin]] = field(default_factory=dict)
    errors: tuple[ConfigError, ...] = ()
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Caller:
    """What a front door sends with a call: where it runs and its own overrides."""

    cwd: str = ""
    env: Mapping[str, str] = field(default_factory=dict)
    pid: int = 0
    client: str = ""


@dataclass(frozen=True, slots=True)
class Resolved:
    settings: Settings
    origins: Mapping[str, Origin]
    layers: tuple[Layer, ...]

    @property
    def warnings(self) -> list[str]:
        return [w for layer in self.layers for w in layer.warnings]


BY_NAME = {info.name: info for info in SETTINGS}


def lookup(key: str) -> SettingInfo | None:
    """A setting by its environment name or field name, in any case."""
    upper = key.strip().upper()
    if upper in BY_ENV:
        return BY_ENV[upper]
    for info in SETTINGS:
        if info.name == key.strip().lower():
            return info
    return None


def suggest(key: str) -> str:
    close = difflib.get_close_matches(key.upper(), list(BY_ENV), n=1, cutoff=0.6)
    return f"did you mean {close[0]}?" if close else "`voicemodectl config show` lists the settings"


def _parse_entries(
    name: str, path: str, entries: list[tuple[str, str, int]], *, strict_unknown: bool
) -> tuple[dict[str, tuple[Any, Origin]], list[ConfigError], list[str]]:
    values: dict[str, tuple[Any, Origin]] = {}
    errors: list[ConfigError] = []
    warnings: list[str] = []
    for key, raw, line in entries:
        info = BY_ENV.get(key)
        where = f"{path}:{line}" if path else name
        if info is None:
            if key in BOOTSTRAP_KEYS:
                if name == "daemon-environment":
                    continue  # exactly where they belong
                warnings.append(f"{key} ({where}) is read only from the daemon's environment; ignored here")
            elif strict_unknown or key.startswith("VOICEMODE_"):
                warnings.append(f"unknown setting {key} ({where}) ignored; {suggest(key)}")
            continue
        try:
            value = info.parse(raw)
        except ValueError as exc:
            errors.append(ConfigError(key, path, line, str(exc)))
            continue
        values[info.name] = (value, Origin(name, path, line))
        if warning := caution(info.env, value):
            warnings.append(f"{warning} ({where})")
    secrets = [str(v) for n, (v, _) in values.items() if BY_NAME[n].secret and v]
    return values, scrub_errors(errors, secrets), warnings


def scrub_errors(errors: list[ConfigError], secrets: list[str]) -> list[ConfigError]:
    """Error reasons quote the bad text; a secret written on the same line must not travel with it.

    Known secret values are cut to their last characters; anything else shaped like a credential
    (``sk-…``, a bearer token, a long random run) is masked whatever setting it was written for.
    """
    out = []
    for error in errors:
        reason = error.reason
        for secret in secrets:
            if len(secret) >= 4:
                reason = reason.replace(secret, redact(secret))
        out.append(ConfigError(error.key, error.file, error.line, mask_shapes(reason)))
    return out


def _malformed(path: Path, line: envfile.Malformed, via_link: bool) -> ConfigError:
    if via_link:
        # The lines belong to whatever the link points at (a key file, say): say where, never what.
        return ConfigError(
            "", str(path), line.line, "not KEY=value (not quoted: the file is a symbolic link)"
        )
    return ConfigError("", str(path), line.line, f"not KEY=value: {quote_line(line.text)}")


def file_layer(name: str, path: Path) -> Layer:
    """A file's layer; a file that cannot be configuration is a layer with one error and no values."""
    try:
        parsed = envfile.read(path)
    except envfile.UnreadableFile as exc:
        return Layer(name, str(path), False, {}, (ConfigError("", str(path), exc.line, exc.reason),))
    if parsed is None:
        return Layer(name=name, path=str(path), loaded=False)
    values, errors, warnings = _parse_entries(
        name, str(path), [(e.key, e.value, e.line) for e in parsed.entries], strict_unknown=True
    )
    errors += [_malformed(path, m, parsed.via_link) for m in parsed.malformed]
    return Layer(name, str(path), True, values, tuple(errors), tuple(warnings))


def env_layer(name: str, env: Mapping[str, str]) -> Layer:
    relevant = [(k, v, 0) for k, v in env.items() if k.startswith(FORWARDED_PREFIXES)]
    values, errors, warnings = _parse_entries(name, "", relevant, strict_unknown=False)
    return Layer(name, "", bool(values), values, tuple(errors), tuple(warnings))


def trusted_owner(uid: int) -> bool:
    """A file this user (or root) owns; anyone else's file must not steer where this user's audio goes."""
    return uid in (os.geteuid(), 0)


def find_project_file(cwd: str) -> Path | None:
    """The nearest ``.voicemode.env`` in ``cwd`` or a folder above it.

    Any kind of entry by that name counts (reading it then says what is wrong with a folder or a pipe)
    except one owned by another user: a ``/tmp/.voicemode.env`` planted by someone else would otherwise
    apply to everything this user runs below ``/tmp``. A relative ``cwd`` finds nothing (it would be
    resolved against the daemon's own folder); ``resolve`` refuses it before it gets here.
    """
    if not cwd or not os.path.isabs(cwd):
        return None
    folder = Path(cwd)
    for candidate in (folder, *folder.parents):
        path = candidate / PROJECT_FILE_NAME
        try:
            info = path.lstat()
        except OSError:
            continue
        if trusted_owner(info.st_uid):
            return path
    return None


def combine(layers: tuple[Layer, ...]) -> Resolved:
    """Later layers win; daemon-wide settings only take the daemon's own layers."""
    values: dict[str, Any] = {}
    origins: dict[str, Origin] = {info.name: Origin("default") for info in SETTINGS}
    daemon_wide = {info.name for info in SETTINGS if info.daemon_wide}
    for layer in layers:
        for name, (value, origin) in layer.values.items():
            if name in daemon_wide and layer.name in ("project", "environment"):
                continue
            values[name] = value
            origins[name] = origin
    return Resolved(build_settings(values), origins, layers)

"""Layered, typed, validated settings (see ``layers`` for the precedence)."""

from voicemoded.config.layers import Caller, ConfigError, Resolved, lookup
from voicemoded.config.manager import ConfigManager, ReloadResult
from voicemoded.config.schema import SETTINGS, SettingInfo, Settings, format_value, redact

__all__ = [
    "SETTINGS",
    "Caller",
    "ConfigError",
    "ConfigManager",
    "ReloadResult",
    "Resolved",
    "SettingInfo",
    "Settings",
    "format_value",
    "lookup",
    "redact",
]

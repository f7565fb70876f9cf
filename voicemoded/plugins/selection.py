"""Which installed plugins the daemon loads: the ``VOICEMODE_PLUGINS`` value and its one parser.

``all`` (the default) loads every entry point of the plugin groups, ``none`` loads nothing, and a comma
list loads only the entry points of those names (in any group). Plugins are code running inside the
daemon, so the choice is read once, when the daemon starts.
"""

from __future__ import annotations

import re

from voicemoded.api.errors import clip

ALL = "all"
NONE = "none"

#: Entry-point names as packaging writes them; anything else cannot name an installed plugin.
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,99}$")


def parse_plugins(text: str) -> tuple[str, ...]:
    """``all`` -> ``("all",)``, ``none`` or empty -> ``("none",)``, else the entry-point names."""
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    lowered = tuple(name.lower() for name in names)
    if not names or lowered == (NONE,):
        return (NONE,)
    if lowered == (ALL,):
        return (ALL,)
    if ALL in lowered or NONE in lowered:
        raise ValueError("all and none stand alone; otherwise list entry-point names")
    for name in names:
        if not _NAME.match(name):
            raise ValueError(f"{clip(name, 40)!r} is not an entry-point name (letters, digits, '_', '-', '.')")
    return names


parse_plugins.__name__ = "plugin list"


def allows(selection: tuple[str, ...], name: str) -> bool:
    """Whether an entry point called ``name`` is to be loaded."""
    if selection == (ALL,):
        return True
    if selection == (NONE,):
        return False
    return name in selection


def unknown(selection: tuple[str, ...], found: set[str]) -> list[str]:
    """Names the person asked for that no installed package provides."""
    if selection in ((ALL,), (NONE,)):
        return []
    return [name for name in selection if name not in found]

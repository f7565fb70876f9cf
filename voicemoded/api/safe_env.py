"""Text from the operating system that is not valid UTF-8: found, shown and set aside, never fatal.

POSIX hands a process bytes: arguments, environment values and the working directory may hold any of
them, and Python decodes the undecodable ones to lone surrogates. Such a string cannot be encoded into
a protobuf field, a JSON document or a log line, so a front door that forwards it as it is crashes
before it has said anything. The doors check what they forward here first: a bad caller override is
dropped with a message that names it, a bad working directory means no project file, and a bad path
the door needs (its socket) is an error the person is told about. Standard library only.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass

#: Variables that say where the daemon lives: a bad one cannot be ignored (another daemon would answer).
LOCATION_KEYS = ("VOICEMODE_SOCKET", "VOICEMODE_BASE_DIR", "XDG_RUNTIME_DIR", "HOME")


def is_utf8(text: str) -> bool:
    """True when ``text`` came from valid UTF-8 (no lone surrogates from undecodable bytes)."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def shown(text: str, limit: int = 80) -> str:
    """``text`` printable anywhere: undecodable bytes as ``\\xNN``, cut to ``limit`` characters."""
    raw = text.encode("utf-8", "surrogateescape")
    out = raw.decode("utf-8", "backslashreplace")
    return out if len(out) <= limit else out[: limit - 1] + "…"


@dataclass(frozen=True, slots=True)
class BadText:
    """One piece of the caller's context that is not valid UTF-8, and what was done about it."""

    what: str
    """What it is, as the person knows it: ``VOICEMODE_VOICES``, ``the working directory``, ``--socket``."""
    value: str
    """The value, with its undecodable bytes escaped (safe to print)."""
    outcome: str
    """What the door does instead, e.g. ``ignored`` or ``project .voicemode.env files are not read``."""

    def message(self) -> str:
        return f"{self.what} is not valid UTF-8 ('{self.value}'): {self.outcome}"


def bad_environment(env: Mapping[str, str], prefixes: Iterable[str]) -> list[BadText]:
    """The variables starting with one of ``prefixes`` whose name or value is not valid UTF-8."""
    wanted = tuple(prefixes)
    bad = []
    for key, value in env.items():
        if not key.startswith(wanted) or (is_utf8(key) and is_utf8(value)):
            continue
        outcome = (
            "it is needed to find the daemon; fix or unset it"
            if key in LOCATION_KEYS
            else "it is ignored; fix or unset it"
        )
        bad.append(BadText(shown(key), shown(value), outcome))
    return bad


def drop_bad_environment(env: MutableMapping[str, str], prefixes: Iterable[str]) -> list[BadText]:
    """Remove the bad variables (except where the daemon lives) so nothing later trips over them."""
    bad = bad_environment(env, prefixes)
    for key in [k for k in env if not is_utf8(k) or not is_utf8(env[k])]:
        if key.startswith(tuple(prefixes)) and key not in LOCATION_KEYS:
            del env[key]
    return bad


def text_cwd() -> str:
    """The working directory when it exists and is valid UTF-8, else ``""`` (no project config then)."""
    try:
        cwd = os.getcwd()
    except FileNotFoundError:  # the caller's folder was deleted under it
        return ""
    return cwd if is_utf8(cwd) else ""


def bad_cwd() -> BadText | None:
    """Why :func:`text_cwd` gave ``""`` for a folder that exists, to tell the person once."""
    try:
        cwd = os.getcwd()
    except FileNotFoundError:
        return None
    if is_utf8(cwd):
        return None
    return BadText(
        "the working directory", shown(cwd), "project .voicemode.env files are not read for this caller"
    )


def bad_arguments(argv: Sequence[str]) -> list[BadText]:
    """Command-line arguments that are not valid UTF-8, named by their position."""
    return [
        BadText(f"argument {i}", shown(arg), "it is passed on as bytes")
        for i, arg in enumerate(argv, start=1)
        if not is_utf8(arg)
    ]

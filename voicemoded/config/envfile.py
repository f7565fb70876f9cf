"""Reading and editing ``KEY=value`` files, keeping every line a person wrote.

The format is the dotenv subset people actually write: comments, blank lines, optional ``export``,
single or double quotes. Reading records the line of each key so errors can point at it; editing
replaces the key's line in place (or appends) so comments and other keys survive.
"""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class Malformed:
    line: int
    text: str


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        return inner.replace('\\"', '"').replace("\\\\", "\\") if raw[0] == '"' else inner
    # Unquoted: a " #" starts a trailing comment.
    hash_at = raw.find(" #")
    return (raw[:hash_at] if hash_at >= 0 else raw).strip()


def parse_text(text: str) -> tuple[list[Entry], list[Malformed]]:
    """Entries in file order (a later line for the same key wins) and the lines that are not ``KEY=value``."""
    entries: list[Entry] = []
    bad: list[Malformed] = []
    for number, line in enumerate(text.splitlines(), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None:
            bad.append(Malformed(number, stripped))
            continue
        entries.append(Entry(match.group(1), _unquote(match.group(2)), number))
    return entries, bad


def read(path: Path) -> tuple[list[Entry], list[Malformed]] | None:
    """Parse a file, or None when it does not exist."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    return parse_text(text)


def _quote(value: str) -> str:
    if value == "" or re.search(r"[\s#'\"\\]", value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def set_key(path: Path, key: str, value: str | None) -> int:
    """Set (or with ``None`` remove) ``key`` in the file, keeping all other lines; returns the line number.

    The last line that sets the key is rewritten in place and earlier duplicates are removed, so the file
    says one thing. The write is atomic and the file stays private (it may hold API keys).
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        lines = []
    positions = [i for i, line in enumerate(lines) if (m := _LINE.match(line)) and m.group(1) == key]
    new_line = f"{key}={_quote(value)}" if value is not None else None
    result_line = 0
    if positions:
        last = positions[-1]
        if new_line is None:
            drop = set(positions)
        else:
            lines[last] = new_line
            drop = set(positions[:-1])
        lines = [line for i, line in enumerate(lines) if i not in drop]
        if new_line is not None:
            result_line = lines.index(new_line) + 1
    elif new_line is not None:
        if lines and lines[-1].strip():
            lines.append("")
        lines.append(new_line)
        result_line = len(lines)
    _atomic_write(path, "\n".join(lines) + ("\n" if lines else ""))
    return result_line


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    mode = path.stat().st_mode & 0o777 if path.exists() else 0o600
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

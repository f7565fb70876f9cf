"""Reading and editing ``KEY=value`` files, keeping every line a person wrote.

The format is the dotenv subset people actually write: comments, blank lines, optional ``export``,
single or double quotes. Reading records the line of each key so errors can point at it; editing
replaces the key's line in place (or appends) so comments and other keys survive.

These files are read by a long-running daemon from places other people can influence (a project folder
someone cloned), so reading is defensive: only a regular file is opened (a FIFO would block the daemon
for ever, a device would never end), it is opened non-blocking and checked again after opening, at most
``MAX_BYTES`` are read, and it must be valid UTF-8. A file reached through a symbolic link is read (dotfile
managers link ``voicemode.env``) but flagged, so nobody quotes the lines of the file it points to; a link
is never written through, because rewriting it would copy the target's lines into a new file.
"""

from __future__ import annotations

import errno
import os
import re
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

from voicemoded.api.errors import DENIED_ERRNOS
from voicemoded.api.files import NotRegular, OverLimit, read_bounded

_LINE = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$")

MAX_BYTES = 1 << 20
"""Largest configuration file read (1 MiB): far beyond any real one, small enough to never hurt."""

_LINE_BREAKS = "\x85\u2028\u2029"


@dataclass(frozen=True, slots=True)
class Entry:
    key: str
    value: str
    line: int


@dataclass(frozen=True, slots=True)
class Malformed:
    line: int
    text: str


@dataclass(frozen=True, slots=True)
class Parsed:
    entries: list[Entry]
    malformed: list[Malformed]
    via_link: bool = False
    """Read through a symbolic link: its lines belong to another file and are not quoted."""


class UnreadableFile(Exception):
    """The file cannot be used as configuration; ``reason`` says why and what to do."""

    def __init__(self, reason: str, line: int = 0) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line = line


def control_character(text: str, *, allow_tab: bool = False) -> tuple[int, str] | None:
    """The first control or line-break character in ``text`` (position, ``U+XXXX``), if any.

    One of these in a value written to a file would start a new line there: the next ``KEY=value`` of
    the caller's choosing.
    """
    for position, char in enumerate(text):
        code = ord(char)
        if (code < 0x20 and not (allow_tab and char == "\t")) or 0x7F <= code <= 0x9F or char in _LINE_BREAKS:
            return position, f"U+{code:04X}"
    return None


def _unquote(raw: str) -> str:
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        inner = raw[1:-1]
        return inner.replace('\\"', '"').replace("\\\\", "\\") if raw[0] == '"' else inner
    # Unquoted: a " #" starts a trailing comment.
    hash_at = raw.find(" #")
    return (raw[:hash_at] if hash_at >= 0 else raw).strip()


def _lines(text: str) -> list[str]:
    """Lines as an editor numbers them: only ``\\n`` ends one (``str.splitlines`` also splits on form
    feeds and U+2028, which would shift every line number after them)."""
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    return [line.removesuffix("\r") for line in lines]


def parse_text(text: str) -> tuple[list[Entry], list[Malformed]]:
    """Entries in file order (a later line for the same key wins) and the lines that are not ``KEY=value``."""
    entries: list[Entry] = []
    bad: list[Malformed] = []
    for number, line in enumerate(_lines(text), start=1):
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        match = _LINE.match(line)
        if match is None or control_character(line, allow_tab=True) is not None:
            bad.append(Malformed(number, stripped))
            continue
        entries.append(Entry(match.group(1), _unquote(match.group(2)), number))
    return entries, bad


def _describe(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def _oserror(exc: OSError, doing: str) -> UnreadableFile:
    if exc.errno in DENIED_ERRNOS:
        return UnreadableFile(f"cannot {doing} it: permission denied; make it yours and readable (chmod 600)")
    if exc.errno == errno.ELOOP:
        return UnreadableFile("its symbolic links go round in a loop; replace it with a regular file")
    return UnreadableFile(f"cannot {doing} it: {exc.strerror or exc}")


def read_bytes(path: Path) -> tuple[bytes, bool] | None:
    """The file's bytes and whether it was reached through a link; None when there is no such file."""
    try:
        via_link = stat.S_ISLNK(os.lstat(path).st_mode)
        before = os.stat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise _oserror(exc, "read") from None
    if not stat.S_ISREG(before.st_mode):
        # Never opened: opening a FIFO waits for a writer, reading a device never ends.
        raise UnreadableFile(f"it is {_describe(before.st_mode)}; it must be a regular text file")
    try:
        return read_bounded(path, MAX_BYTES), via_link
    except FileNotFoundError:
        return None
    except NotRegular as exc:  # swapped between the check and the open
        raise UnreadableFile(f"it is {_describe(exc.mode)}; it must be a regular text file") from None
    except OverLimit:
        raise UnreadableFile(
            f"it is larger than {MAX_BYTES // 1024} KiB; a configuration file is a few lines"
        ) from None
    except OSError as exc:
        raise _oserror(exc, "read") from None


def decode(data: bytes) -> str:
    """UTF-8 text, or an error naming the line of the first byte that is not."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UnreadableFile(
            f"line {line} is not valid UTF-8 (byte 0x{data[exc.start]:02x}); save the file as UTF-8", line
        ) from None


def read(path: Path) -> Parsed | None:
    """Parse a file, or None when it does not exist; ``UnreadableFile`` when it cannot be configuration."""
    raw = read_bytes(path)
    if raw is None:
        return None
    data, via_link = raw
    entries, bad = parse_text(decode(data))
    return Parsed(entries, bad, via_link)


def _quote(value: str) -> str:
    if value == "" or re.search(r"[\s#'\"\\]", value):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return value


def set_key(path: Path, key: str, value: str | None) -> int:
    """Set (or with ``None`` remove) ``key`` in the file, keeping all other lines; returns the line number.

    The last line that sets the key is rewritten in place and earlier duplicates are removed, so the file
    says one thing. The write is atomic and the file is left private (0600: it may hold API keys). The
    folder must exist: creating folders is not an edit.
    """
    for name, text in (("key", key), ("value", value or "")):
        found = control_character(text)
        if found is not None:
            raise ValueError(f"the {name} contains the control character {found[1]} at position {found[0]}")
    if not _LINE.match(f"{key}=x"):
        raise ValueError(f"{key!r} is not a KEY name")
    if os.path.islink(path):
        raise UnreadableFile(
            "it is a symbolic link; edit the file it points to, or replace the link with a file"
        )
    raw = read_bytes(path)
    lines = _lines(decode(raw[0])) if raw is not None else []
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
    atomic_write(path, "\n".join(lines) + ("\n" if lines else ""))
    return result_line


def atomic_write(path: Path, text: str) -> None:
    """Write through a private temporary file in the same folder, then rename it over ``path``.

    The temporary file is created 0600 and stays so: a file that was 0644 comes out 0600, because a
    configuration file is where API keys live. Readers see the old file or the new one, never half.
    """
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise

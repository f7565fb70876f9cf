"""Reading a file someone named, without trusting what it is or how big it is. Standard library only:
the front doors use it too.

The file is opened without blocking (a FIFO would wait for a writer forever) and without becoming a
controlling terminal, checked on the open descriptor (nothing can be swapped in between the check and
the read), and read at most ``limit + 1`` bytes, so a device such as ``/dev/zero`` or a file that grows
while it is read is refused rather than read without end. Callers turn the two refusals into their own
error, in their own words.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path


class NotRegular(Exception):
    """The path is not a regular file; ``mode`` says what it is."""

    def __init__(self, mode: int) -> None:
        super().__init__(f"not a regular file (mode {stat.filemode(mode)})")
        self.mode = mode


class OverLimit(Exception):
    """The file holds more than the limit; ``size`` is what was seen (at least limit + 1)."""

    def __init__(self, size: int, limit: int) -> None:
        super().__init__(f"{size} bytes, the limit is {limit}")
        self.size = size
        self.limit = limit


def read_bounded(path: Path | str, limit: int) -> bytes:
    """The bytes of the regular file ``path``, at most ``limit`` of them; OSError as the system gave it."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise NotRegular(info.st_mode)
        if info.st_size > limit:
            raise OverLimit(info.st_size, limit)
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(limit + 1)
    finally:
        os.close(fd)
    if len(data) > limit:
        raise OverLimit(len(data), limit)
    return data

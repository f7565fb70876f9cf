"""Model files from a model hub (the Hugging Face layout), bounded and verified against the catalog.

A model's files are written to a hidden folder beside its final one, each to a temporary file that
takes its own name only once its size and sha256 match the catalog (a file the catalog does not pin
is checked by its size, or only bounded, and the listing says so); the folder takes the model's name
only when every file is in. A failed, refused or cancelled download leaves nothing behind, and a
server sending more than the catalog allows is cut off at that many bytes: a wrong or hostile hub
cannot fill the disk or leave a half model that looks installed.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from http.client import HTTPResponse
from pathlib import Path
from typing import BinaryIO

import structlog

from voicemoded.api.errors import FailedPrecondition, NoSpace, NotFound, TooLarge, Unavailable
from voicemoded.engines.catalog import HubFile, HubSource

log = structlog.get_logger(__name__)

DEFAULT_HUB = "https://huggingface.co"
"""Where faster-whisper and Piper fetch their models from (``VOICEMODE_MODEL_HUB``)."""
CHUNK = 1 << 20
TIMEOUT_S = 15.0
"""For connecting and for each read: a hub that stalls this long is given up on."""
PROGRESS_EVERY_S = 2.0
_OTHER_FILE = "the hub serves another file than the catalog names; check VOICEMODE_MODEL_HUB"

Report = Callable[[str], Awaitable[None]]


class HubUnreachable(Unavailable):
    """The hub could not be reached at all (no network, no name resolution, refused): the caller may
    fall back to the package registry."""


def file_url(hub: str, source: HubSource, file: HubFile) -> str:
    path = urllib.parse.quote(file.path)
    return f"{hub.rstrip('/')}/{source.repo}/resolve/{source.revision}/{path}"


async def download(hub: str, source: HubSource, folder: Path, report: Report) -> Path:
    """Every file of ``source`` into ``folder``, which appears only once all of them are verified.

    Raises :class:`HubUnreachable` when the hub cannot be reached at all.
    """
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.", suffix=".part", dir=folder.parent))
    try:
        for file in source.files:
            await fetch(file_url(hub, source, file), file, staging / file.name, report)
        shutil.rmtree(folder, ignore_errors=True)  # an older, incomplete copy
        os.replace(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


async def fetch(url: str, file: HubFile, target: Path, report: Report) -> None:
    """One file, read at most ``file.limit`` bytes, renamed to ``target`` once verified."""
    fd, tmp_name = tempfile.mkstemp(prefix=f".{file.name}.", suffix=".part", dir=target.parent)
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as out:
            response = await asyncio.to_thread(_open, url)
            with response:
                got, digest = await _copy(response, out, file, url, report, target.parent)
        verify(file, got, digest, url)
        os.replace(tmp, target)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    await report(f"{file.name}: {got} bytes, {'sha256 verified' if file.sha256 else 'size checked'}")
    log.info("models.downloaded", url=url, bytes=got, pinned=file.sha256 is not None)


async def _copy(
    response: HTTPResponse, out: BinaryIO, file: HubFile, url: str, report: Report, folder: Path
) -> tuple[int, str]:
    """Copy the body into ``out`` within the file's limit; its length and sha256."""
    announced = _length(response)
    if announced is not None and announced > file.limit:
        raise TooLarge(
            f"{url} is {announced} bytes, more than the {file.limit} the catalog allows for {file.name}",
            hint=_OTHER_FILE,
        )
    total = announced or file.size
    digest = hashlib.sha256()
    got = 0
    last = time.monotonic()
    while True:
        try:
            read = await asyncio.to_thread(_pump, response, out, digest, min(CHUNK, file.limit + 1 - got))
        except OSError as exc:
            if exc.errno == errno.ENOSPC:
                raise NoSpace(
                    f"the disk filled up downloading {file.name}; the partial file was removed",
                    hint=f"free space on the disk of {folder}, then retry",
                ) from None
            raise Unavailable(f"the download of {url} broke off: {exc}", hint="retry") from exc
        if not read:
            break
        got += read
        if got > file.limit:
            raise TooLarge(
                f"{url} sent more than the {file.limit} bytes the catalog allows for {file.name}; "
                "the download was cut off and removed",
                hint=_OTHER_FILE,
            )
        if time.monotonic() - last >= PROGRESS_EVERY_S:
            last = time.monotonic()
            await report(f"{file.name}: {got} of {total if total else '?'} bytes")
    if announced is not None and got != announced:
        raise Unavailable(f"the download of {url} stopped at {got} of {announced} bytes", hint="retry")
    return got, digest.hexdigest()


def _pump(response: HTTPResponse, out: BinaryIO, digest: hashlib._Hash, most: int) -> int:
    """Read at most ``most`` bytes, hash and write them (in a worker thread: disk and CPU work)."""
    block = response.read(most)
    digest.update(block)
    out.write(block)
    return len(block)


def verify(file: HubFile, size: int, sha256: str, url: str) -> None:
    """Refuse a file whose size or hash is not the catalog's (what it does not pin is not checked)."""
    if file.size is not None and size != file.size:
        raise FailedPrecondition(
            f"{url} is {size} bytes, the catalog pins {file.size}; it was not kept",
            hint=_OTHER_FILE,
            fields={"file": file.name},
        )
    if file.sha256 is not None and sha256 != file.sha256:
        raise FailedPrecondition(
            f"{url} has sha256 {sha256}, the catalog pins {file.sha256}; it was not kept",
            hint=_OTHER_FILE,
            fields={"file": file.name},
        )


def _open(url: str) -> HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "voicemoded"})
    try:
        response: HTTPResponse = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        exc.close()
        if exc.code == 404:
            raise NotFound(
                f"the hub has no {url}", hint="check VOICEMODE_MODEL_HUB points at the model hub"
            ) from None
        raise Unavailable(f"the hub answered {exc.code} for {url}", hint="retry later") from None
    except (urllib.error.URLError, OSError) as exc:
        reason = getattr(exc, "reason", exc)
        raise HubUnreachable(
            f"the model hub cannot be reached ({reason})",
            hint="connect to the network, or set VOICEMODE_MODEL_HUB to a reachable mirror",
        ) from None
    return response


def _length(response: HTTPResponse) -> int | None:
    value = response.headers.get("Content-Length")
    try:
        return int(value) if value is not None else None
    except ValueError:
        return None

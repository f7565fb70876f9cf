"""The web door's token file: made once, private, shared by every process that asks, refused when damaged."""

from __future__ import annotations

import base64
import os
import stat
import threading
from pathlib import Path

import pytest

from voicemoded.api import webtoken
from voicemoded.api.errors import FailedPrecondition


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_token_is_made_once_in_a_private_file_and_folder(tmp_path: Path) -> None:
    path = webtoken.token_path({"VOICEMODE_BASE_DIR": str(tmp_path / "base")})
    assert path == tmp_path / "base" / "web" / "token"
    assert webtoken.read_token(path) is None and not path.parent.exists(), "reading creates nothing"
    token = webtoken.ensure_token(path)
    assert len(base64.urlsafe_b64decode(token + "=")) == 32
    assert mode(path) == 0o600 and mode(path.parent) == 0o700 and mode(path.parent.parent) == 0o700
    assert webtoken.ensure_token(path) == token == webtoken.read_token(path)
    assert [p.name for p in path.parent.iterdir()] == ["token"], "no temporary file is left"


def test_processes_starting_together_agree_on_one_token(tmp_path: Path) -> None:
    path = tmp_path / "web" / "token"
    found: list[str] = []
    threads = [threading.Thread(target=lambda: found.append(webtoken.ensure_token(path))) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(found)) == 1 and found[0] == webtoken.read_token(path)


def test_a_readable_token_file_is_narrowed(tmp_path: Path) -> None:
    path = tmp_path / "token"
    path.write_text("abc\n")
    os.chmod(path, 0o644)
    assert webtoken.read_token(path) == "abc" and mode(path) == 0o600


@pytest.mark.parametrize("content", [b"", b"  \n", b"two words\n", b"x" * 5000])
def test_a_damaged_file_says_to_delete_it(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "token"
    path.write_bytes(content)
    with pytest.raises(FailedPrecondition) as caught:
        webtoken.ensure_token(path)
    assert f"delete {path}" in caught.value.hint


def test_a_link_or_folder_is_not_a_token(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("abc\n")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    (tmp_path / "dir").mkdir()
    with pytest.raises(FailedPrecondition):
        webtoken.read_token(tmp_path / "link")
    with pytest.raises(FailedPrecondition):
        webtoken.read_token(tmp_path / "dir")


def test_matching_is_exact() -> None:
    assert webtoken.matches("abc", "abc")
    assert (
        not webtoken.matches("abd", "abc")
        and not webtoken.matches("", "abc")
        and not webtoken.matches("ab", "abc")
    )

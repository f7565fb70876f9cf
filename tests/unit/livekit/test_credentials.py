"""Which LiveKit the daemon uses and with which key: a remote deployment's three settings, or the
supervised server's key pair, generated once, kept 0600 in a 0700 folder, and never the dev key."""

from __future__ import annotations

import os
import stat
from dataclasses import replace
from pathlib import Path

import pytest

from voicemoded.api.errors import FailedPrecondition
from voicemoded.api.paths import Paths
from voicemoded.config import Settings
from voicemoded.livekit.credentials import (
    LiveKitAccess,
    ensure_keys,
    keys_file,
    livekit_access,
    local_url,
    read_keys,
)


def paths(tmp_path: Path) -> Paths:
    return Paths(base=tmp_path / "base", socket=tmp_path / "s.sock")


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_supervised_server_gets_a_key_made_once_and_kept_private(tmp_path: Path) -> None:
    first = livekit_access(Settings(), paths(tmp_path))
    assert first.managed and first.url == "ws://127.0.0.1:7880"
    assert first.api_key.startswith("API") and len(first.api_secret) >= 32
    assert (first.api_key, first.api_secret) != ("devkey", "secret")
    file = keys_file(paths(tmp_path))
    assert mode(file) == 0o600 and mode(file.parent) == 0o700
    assert file.read_text() == f'"{first.api_key}": "{first.api_secret}"\n'  # livekit-server's key_file form
    again = livekit_access(Settings(), paths(tmp_path))
    assert again == first
    other = livekit_access(Settings(), paths(tmp_path / "elsewhere"))
    assert other.api_secret != first.api_secret


def test_the_secret_stays_out_of_the_repr(tmp_path: Path) -> None:
    access = livekit_access(Settings(), paths(tmp_path))
    assert access.api_secret not in repr(access) and access.api_key in repr(access)


def test_the_url_follows_the_service_host_and_port(tmp_path: Path) -> None:
    settings = replace(Settings(), service_host="0.0.0.0", livekit_port=7990)
    assert livekit_access(settings, paths(tmp_path)).url == "ws://127.0.0.1:7990"
    assert local_url("192.168.1.5", 7880) == "ws://192.168.1.5:7880"
    assert local_url("::1", 7880) == "ws://[::1]:7880"
    assert local_url("::", 7880) == "ws://127.0.0.1:7880"


def test_a_remote_deployment_wins_and_no_local_key_is_made(tmp_path: Path) -> None:
    settings = replace(
        Settings(), livekit_url="wss://lk.example.com", livekit_api_key="APIremote", livekit_api_secret="s3"
    )
    access = livekit_access(settings, paths(tmp_path))
    assert access == LiveKitAccess("wss://lk.example.com", "APIremote", "s3", managed=False)
    assert not keys_file(paths(tmp_path)).exists()


@pytest.mark.parametrize(
    ("key", "secret", "missing"),
    [
        ("", "", "LIVEKIT_API_KEY and LIVEKIT_API_SECRET are"),
        ("APIremote", "", "LIVEKIT_API_SECRET is"),
        ("", "s3", "LIVEKIT_API_KEY is"),
    ],
)
def test_a_url_without_its_key_pair_names_what_is_missing(
    tmp_path: Path, key: str, secret: str, missing: str
) -> None:
    settings = replace(
        Settings(), livekit_url="wss://lk.example.com", livekit_api_key=key, livekit_api_secret=secret
    )
    with pytest.raises(FailedPrecondition) as info:
        livekit_access(settings, paths(tmp_path))
    assert info.value.message == f"LIVEKIT_URL is set but {missing} not"
    assert "unset LIVEKIT_URL" in info.value.hint


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"garbage\n",
        b'"APIkey": "short"\n',
        b'"APIkeykey": "' + b"x" * 40 + b'"\n"b": "c"\n',
        b"\xff" * 50,
    ],
)
def test_a_damaged_keys_file_is_a_clear_error_not_a_new_key(tmp_path: Path, content: bytes) -> None:
    file = keys_file(paths(tmp_path))
    file.parent.mkdir(parents=True)
    file.write_bytes(content)
    with pytest.raises(FailedPrecondition) as info:
        livekit_access(Settings(), paths(tmp_path))
    assert str(file) in info.value.message and f"delete {file}" in info.value.hint
    assert file.read_bytes() == content  # nothing overwritten: tokens signed with it may be in use


def test_a_keys_file_that_is_a_pipe_is_refused_without_blocking(tmp_path: Path) -> None:
    file = keys_file(paths(tmp_path))
    file.parent.mkdir(parents=True)
    os.mkfifo(file)
    with pytest.raises(FailedPrecondition, match="cannot be used: not a regular file"):
        read_keys(file)


def test_a_keys_file_that_is_a_folder_is_a_clear_error(tmp_path: Path) -> None:
    file = keys_file(paths(tmp_path))
    file.mkdir(parents=True)
    with pytest.raises(FailedPrecondition, match="not a regular file"):
        livekit_access(Settings(), paths(tmp_path))


def test_a_readable_keys_file_is_narrowed_to_the_user(tmp_path: Path) -> None:
    file = keys_file(paths(tmp_path))
    key, secret = ensure_keys(file)
    file.chmod(0o644)
    assert read_keys(file) == (key, secret)
    assert mode(file) == 0o600


def test_an_unwritable_base_folder_says_which_folder(tmp_path: Path) -> None:
    base = tmp_path / "base"
    base.write_text("a file where the folder should be")
    with pytest.raises(FailedPrecondition) as info:
        livekit_access(Settings(), Paths(base=base, socket=tmp_path / "s.sock"))
    assert "LiveKit API key" in info.value.message

"""An engine bound beyond loopback: it takes the per-install token, and without one it does not start.

Bound to 0.0.0.0 the engine is reachable from other machines, where a Host check proves nothing; the
token is what a web page (or a neighbour on the network) cannot know. With it, any Host name is
accepted; the readiness probe (``/health``) needs none; a cross-origin page is refused regardless.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from voicemoded.engines.access import ensure_token
from voicemoded.testing.engines import EngineProcess, running_engine, start_engine

pytestmark = [pytest.mark.engines, pytest.mark.slow]


@pytest.fixture(scope="module")
def token_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("token") / "base" / "engine-token"
    ensure_token(path)
    return path


@pytest.fixture(scope="module")
def exposed_piper(tmp_path_factory: pytest.TempPathFactory, token_file: Path) -> Iterator[EngineProcess]:
    tmp = tmp_path_factory.mktemp("exposed")
    yield from running_engine("piper", tmp, "--host", "0.0.0.0", "--token-file", str(token_file))


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_the_token_file_is_private_and_stable(token_file: Path) -> None:
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert len(token) >= 40
    assert ensure_token(token_file) == token, "created once: a second call reads the same token"
    os.chmod(token_file, 0o644)
    assert ensure_token(token_file) == token
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600, "a widened token file is narrowed again"


def test_without_the_token_nothing_but_health_is_served(exposed_piper: EngineProcess) -> None:
    url = exposed_piper.url
    assert httpx.get(f"{url}/health", headers={"Host": "0.0.0.0:1"}).status_code == 200
    for headers in ({}, bearer("wrong"), {"Authorization": "Basic dXNlcjpwYXNz"}):
        response = httpx.get(f"{url}/v1/models", headers=headers)
        assert response.status_code == 401, response.text
        assert response.headers["www-authenticate"] == "Bearer"
        assert response.json()["error"]["code"] == "token_required"
    spoken = httpx.post(f"{url}/v1/audio/speech", json={"input": "Hello.", "response_format": "pcm"})
    assert spoken.status_code == 401


def test_with_the_token_any_host_name_is_served(exposed_piper: EngineProcess, token_file: Path) -> None:
    token = token_file.read_text().strip()
    for host in ("127.0.0.1", "192.0.2.7:8881", "voice-box.lan"):
        response = httpx.get(f"{exposed_piper.url}/v1/models", headers={**bearer(token), "Host": host})
        assert response.status_code == 200, (host, response.text)
    spoken = httpx.post(
        f"{exposed_piper.url}/v1/audio/speech",
        json={"input": "Hello there.", "response_format": "pcm"},
        headers=bearer(token),
        timeout=60,
    )
    assert spoken.status_code == 200 and len(spoken.content) > 10_000


def test_a_cross_origin_page_is_refused_even_with_the_token(
    exposed_piper: EngineProcess, token_file: Path
) -> None:
    headers = {**bearer(token_file.read_text().strip()), "Origin": "http://attacker.example"}
    response = httpx.get(f"{exposed_piper.url}/v1/models", headers=headers)
    assert response.status_code == 403 and response.json()["error"]["code"] == "cross_origin"


def test_an_engine_beyond_loopback_without_a_token_refuses_to_start(tmp_path: Path) -> None:
    engine = start_engine("piper", tmp_path, "--host", "0.0.0.0")
    code = engine.proc.wait(60)
    engine.exited.wait(5)
    assert code == 2
    refused = [e for e in engine.events() if e.get("event") == "engine.refused_to_start"]
    assert refused and "--token-file" in str(refused[0]["error"]), engine.lines[-5:]


def test_an_unusable_token_file_stops_the_start(tmp_path: Path) -> None:
    empty = tmp_path / "engine-token"
    empty.write_text("\n")
    engine = start_engine("piper", tmp_path, "--host", "0.0.0.0", "--token-file", str(empty))
    assert engine.proc.wait(60) == 2
    engine.exited.wait(5)
    assert any("holds no usable token" in str(e.get("error")) for e in engine.events()), engine.lines[-5:]

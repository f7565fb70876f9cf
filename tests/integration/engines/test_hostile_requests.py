"""The real engine servers against requests a hostile web page or a local program could send.

A declared sample rate of 10 Hz, an oversized upload, a rebinding Host name, a cross-origin page: each
is refused with a clear JSON error before it costs the engine memory, and the engine keeps serving.
"""

from __future__ import annotations

import io
import struct
import wave
from collections.abc import Iterator

import httpx
import psutil
import pytest

from tests.integration.engines.conftest import transcribe
from voicemoded.testing.engines import EngineProcess

pytestmark = [pytest.mark.engines, pytest.mark.slow]

MIB = 1024 * 1024
WHISPER_LIMIT = 100 * MIB


def wav(rate: int, nbytes: int = 32_000, *, channels: int = 1, bits: int = 16) -> bytes:
    """A WAV whose header declares ``rate``/``channels``/``bits``, holding ``nbytes`` of quiet noise."""
    body = struct.pack("<HHIIHH", 1, channels, rate, rate * 2, 2, bits)
    samples = bytes((i * 7) % 5 for i in range(nbytes))
    chunks = b"fmt " + struct.pack("<I", 16) + body + b"data" + struct.pack("<I", nbytes) + samples
    return b"RIFF" + struct.pack("<I", 4 + len(chunks)) + b"WAVE" + chunks


def rss(engine: EngineProcess) -> int:
    return int(psutil.Process(engine.proc.pid).memory_info().rss)


@pytest.fixture
def warm_whisper(whisper: EngineProcess) -> EngineProcess:
    """The upload path used once (multipart parser, decoder imports) so later growth is the request's."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(b"\0\0" * 16_000)
    for _ in range(2):
        assert transcribe(whisper, buffer.getvalue(), "quiet.wav", "audio/wav").status_code == 200
    return whisper


@pytest.mark.parametrize("rate", [10, 50, 100, 7_999, 192_001, 0])
def test_a_wav_declaring_an_absurd_rate_is_refused_before_it_is_resampled(
    warm_whisper: EngineProcess, rate: int
) -> None:
    before = rss(warm_whisper)
    response = transcribe(warm_whisper, wav(rate), "clip.wav", "audio/wav")
    grown = rss(warm_whisper) - before
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["message"].startswith(f"file.rate must be 8000..192000 Hz, got {rate}"), error
    assert error["param"] == "file.rate"
    assert grown < 4 * MIB, f"the engine grew by {grown / MIB:.1f} MiB for a refused 32 KB upload"
    print(f"\n{rate} Hz WAV: 400, the engine grew {grown / MIB:.2f} MiB")


@pytest.mark.parametrize(
    ("channels", "bits", "field"),
    [(0, 16, "file.channels"), (1000, 16, "file.channels"), (1, 0, "file.width"), (1, 56, "file.width")],
)
def test_a_wav_with_an_odd_layout_is_refused_naming_the_field(
    whisper: EngineProcess, channels: int, bits: int, field: str
) -> None:
    response = transcribe(whisper, wav(16_000, channels=channels, bits=bits), "clip.wav", "audio/wav")
    assert response.status_code == 400, response.text
    assert response.json()["error"]["message"].startswith(f"{field} must be "), response.text


@pytest.mark.parametrize(
    ("content_type", "fields"),
    [("application/octet-stream", {"sample_rate": "10"}), ("audio/pcm;rate=10", {})],
)
def test_raw_pcm_with_a_tiny_rate_is_refused(
    warm_whisper: EngineProcess, content_type: str, fields: dict[str, str]
) -> None:
    before = rss(warm_whisper)
    response = transcribe(warm_whisper, b"\1\0" * 16_000, "clip.pcm", content_type, **fields)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["param"] == "sample_rate" and "8000..192000 Hz, got 10" in error["message"], error
    assert rss(warm_whisper) - before < 4 * MIB


def _multipart_stream(total: int) -> Iterator[bytes]:
    """A well-formed multipart upload of ``total`` bytes, sent without a Content-Length."""
    yield (
        b'--b0undary\r\nContent-Disposition: form-data; name="file"; filename="big.pcm"\r\n'
        b"Content-Type: audio/pcm\r\n\r\n"
    )
    block = b"\0" * MIB
    for _ in range(total // MIB):
        yield block
    yield b"\r\n--b0undary--\r\n"


def test_an_upload_over_the_limit_is_refused_before_it_is_read(warm_whisper: EngineProcess) -> None:
    before = rss(warm_whisper)
    declared = httpx.post(
        f"{warm_whisper.url}/v1/audio/transcriptions",
        files={"file": ("big.pcm", b"\0" * (WHISPER_LIMIT + MIB), "audio/pcm")},
        data={"sample_rate": "16000"},
        timeout=120,
    )
    assert declared.status_code == 413, declared.text
    assert "limit of 100 MiB" in declared.json()["error"]["message"]
    streamed = httpx.post(
        f"{warm_whisper.url}/v1/audio/transcriptions",
        content=_multipart_stream(WHISPER_LIMIT + 8 * MIB),
        headers={"content-type": "multipart/form-data; boundary=b0undary"},
        timeout=120,
    )
    assert streamed.status_code == 413, streamed.text
    assert "limit of 100 MiB" in streamed.json()["error"]["message"]
    grown = rss(warm_whisper) - before
    assert grown < 16 * MIB, f"the engine grew by {grown / MIB:.1f} MiB while refusing two 100 MiB uploads"
    assert httpx.get(f"{warm_whisper.url}/health").status_code == 200


@pytest.mark.parametrize("engine_name", ["whisper", "piper"])
@pytest.mark.parametrize("host", ["attacker.example", "attacker.example:2022", "127.0.0.1.nip.io", "0.0.0.0"])
def test_a_rebinding_host_name_is_refused(
    engine_name: str, host: str, request: pytest.FixtureRequest
) -> None:
    engine: EngineProcess = request.getfixturevalue(engine_name)
    for path in ("/health", "/v1/models"):
        response = httpx.get(f"{engine.url}{path}", headers={"Host": host})
        assert response.status_code == 421, (path, response.text)
        assert response.json()["error"]["code"] == "host_not_allowed"
        assert "loopback names only" in response.json()["error"]["message"]
    posted = httpx.post(
        f"{engine.url}/v1/audio/speech",
        json={"input": "hello", "response_format": "pcm"},
        headers={"Host": host},
    )
    assert posted.status_code == 421, posted.text


@pytest.mark.parametrize("engine_name", ["whisper", "piper"])
def test_loopback_host_names_are_served(engine_name: str, request: pytest.FixtureRequest) -> None:
    engine: EngineProcess = request.getfixturevalue(engine_name)
    for host in ("localhost", f"localhost:{engine.port}", f"127.0.0.1:{engine.port}", f"[::1]:{engine.port}"):
        response = httpx.get(f"{engine.url}/v1/models", headers={"Host": host})
        assert response.status_code == 200, (host, response.text)


@pytest.mark.parametrize("engine_name", ["whisper", "piper"])
def test_cross_origin_requests_are_refused_and_no_cors_is_offered(
    engine_name: str, request: pytest.FixtureRequest
) -> None:
    engine: EngineProcess = request.getfixturevalue(engine_name)
    evil = {"Origin": "http://attacker.example"}
    responses = [
        httpx.get(f"{engine.url}/v1/models", headers=evil),
        httpx.get(f"{engine.url}/v1/models", headers={"Origin": "null"}),
        httpx.get(f"{engine.url}/v1/models", headers={"Sec-Fetch-Site": "cross-site"}),
        httpx.options(
            f"{engine.url}/v1/audio/speech", headers={**evil, "Access-Control-Request-Method": "POST"}
        ),
        httpx.post(f"{engine.url}/v1/audio/speech", json={"input": "hello"}, headers=evil),
    ]
    for response in responses:
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "cross_origin"
    local = httpx.get(f"{engine.url}/v1/models", headers={"Origin": f"http://localhost:{engine.port}"})
    assert local.status_code == 200
    for response in [*responses, local]:
        assert not [h for h in response.headers if h.lower().startswith("access-control-")], response.headers


def test_a_speech_request_over_a_megabyte_is_refused(piper: EngineProcess) -> None:
    response = httpx.post(
        f"{piper.url}/v1/audio/speech",
        content=b'{"input": "' + b"a" * (2 * MIB) + b'"}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 413, response.text
    assert "limit of 1 MiB" in response.json()["error"]["message"]
    assert httpx.post(
        f"{piper.url}/v1/audio/speech", json={"input": "Fine.", "response_format": "pcm"}
    ).content

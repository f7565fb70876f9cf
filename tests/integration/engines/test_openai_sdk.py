"""The official ``openai`` SDK against each embedded engine: OpenAI's voice names, its error shape."""

from __future__ import annotations

import openai
import pytest

from tests.integration.engines.conftest import transcribe
from voicemoded.testing.engines import EngineProcess
from voicemoded.testing.words import word_error_rate

pytestmark = [pytest.mark.engines, pytest.mark.slow]

TEXT = "Please call me back tomorrow morning."
#: What each OpenAI (or Kokoro-FastAPI) name lands on, per engine: the table in engines/voice_names.py.
EXPECTED = {
    "kokoro": {
        "alloy": "jf_alpha",
        "nova": "jf_alpha",
        "onyx": "jm_kumo",
        "af_bella": "jf_alpha",
        "am_adam": "jm_kumo",
    },
    "piper": {"alloy": "en_US-joe-medium", "nova": "en_US-joe-medium", "af_sky": "en_US-joe-medium"},
}


def client(engine: EngineProcess) -> openai.OpenAI:
    return openai.OpenAI(base_url=f"{engine.url}/v1", api_key="unused", max_retries=0, timeout=60)


@pytest.mark.parametrize("engine_name", ["piper", "kokoro"])
def test_openai_voice_names_are_spoken(
    engine_name: str, whisper: EngineProcess, request: pytest.FixtureRequest
) -> None:
    engine: EngineProcess = request.getfixturevalue(engine_name)
    sdk = client(engine)
    with sdk.audio.speech.with_streaming_response.create(
        model="tts-1", voice="alloy", input=TEXT, response_format="pcm"
    ) as response:
        assert response.headers["x-voice"] == EXPECTED[engine_name]["alloy"]
        pcm = response.read()
    heard = transcribe(whisper, pcm, "speech.pcm", "audio/pcm", sample_rate="24000").json()["text"]
    assert word_error_rate(TEXT, heard) <= 0.2, heard
    for asked, voice in EXPECTED[engine_name].items():
        raw = sdk.audio.speech.with_raw_response.create(
            model="tts-1", voice=asked, input="Hi.", response_format="pcm"
        )
        assert raw.headers["x-voice"] == voice, asked


@pytest.mark.parametrize("engine_name", ["piper", "kokoro", "whisper"])
def test_unknown_routes_answer_in_openai_error_shape(
    engine_name: str, request: pytest.FixtureRequest
) -> None:
    engine: EngineProcess = request.getfixturevalue(engine_name)
    sdk = client(engine)
    with pytest.raises(openai.NotFoundError) as raised:
        sdk.images.generate(prompt="a cat")
    assert raised.value.status_code == 404
    body = raised.value.response.json()
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert body["error"]["message"] == "Invalid URL (POST /v1/images/generations)"
    assert body["error"]["type"] == "invalid_request_error"


def test_unknown_voice_is_a_bad_request_error(piper: EngineProcess) -> None:
    with pytest.raises(openai.BadRequestError) as raised:
        client(piper).audio.speech.create(model="tts-1", voice="zz_nobody", input="Hi.")  # type: ignore[arg-type]
    error = raised.value.response.json()["error"]
    assert error["param"] == "voice" and "en_US-joe-medium" in error["message"]

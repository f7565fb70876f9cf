"""STT through the facade: uploads, failover, parameter checks, all against loopback servers."""

from __future__ import annotations

import io
import time
import wave

import pytest

from tests.unit.providers.conftest import FAST, ServerFactory, SpeechFactory
from tests.unit.providers.faultserver import closed_port_url, tone
from voicemoded.api.errors import FailedPrecondition, InvalidArgument, Unavailable
from voicemoded.audio.format import AudioChunk

STT_MODELS = ("whisper-1", "tiny.en")


def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(tone(1600))
    return buffer.getvalue()


async def test_transcribe_wav_and_pcm_chunk(server: ServerFactory, speech: SpeechFactory) -> None:
    whisper = await server(models=STT_MODELS, transcript=" Hello world. ")
    sp = await speech(local={"stt": {"whisper": whisper.url}})
    result = await sp.transcribe(wav_bytes(), language="en", prompt="greeting")
    assert result.text == "Hello world."
    assert result.endpoint.name == "whisper" and result.model == "whisper-1"
    assert result.elapsed > 0
    request = whisper.posts()[0]
    assert request.path == "/v1/audio/transcriptions"
    assert b'name="language"\r\n\r\nen' in request.body and b"greeting" in request.body
    assert b'filename="audio.wav"' in request.body
    await sp.transcribe(AudioChunk(tone(800)))
    uploaded = whisper.posts()[1].body
    assert b"RIFF" in uploaded and b"WAVE" in uploaded


async def test_transcribe_fails_over_in_order(server: ServerFactory, speech: SpeechFactory) -> None:
    bad, hung, good = await server("http500"), await server("hang_headers"), await server(models=STT_MODELS)
    sp = await speech(
        stt_base_urls=(closed_port_url(), bad.url, hung.url), local={"stt": {"whisper": good.url}}
    )
    started = time.monotonic()
    result = await sp.transcribe(wav_bytes())
    assert time.monotonic() - started < FAST.request_timeout + 1.0
    assert result.endpoint.url == good.url
    reasons = [reason for _, reason in result.failed_over]
    assert "refused" in reasons[0] and "HTTP 500" in reasons[1] and "within 0.6 s" in reasons[2]
    started = time.monotonic()
    await sp.transcribe(wav_bytes())
    assert time.monotonic() - started < FAST.request_timeout, "the hung endpoint is skipped now"


async def test_transcribe_all_failed(server: ServerFactory, speech: SpeechFactory) -> None:
    html = await server("wrong_type")
    sp = await speech(stt_base_urls=(html.url,))
    with pytest.raises(Unavailable) as err:
        await sp.transcribe(wav_bytes())
    assert html.url in err.value.message


async def test_transcribe_parameters(server: ServerFactory, speech: SpeechFactory) -> None:
    whisper = await server(models=STT_MODELS)
    sp = await speech(local={"stt": {"whisper": whisper.url}})
    with pytest.raises(InvalidArgument, match="ISO 639"):
        await sp.transcribe(wav_bytes(), language="english")
    with pytest.raises(InvalidArgument, match="large-v3"):
        await sp.transcribe(wav_bytes(), model="large-v3")
    with pytest.raises(InvalidArgument, match="not WAV"):
        await sp.transcribe(b"\x00\x01garbage")
    with pytest.raises(InvalidArgument, match="no audio"):
        await sp.transcribe(b"")
    result = await sp.transcribe(wav_bytes(), model="tiny.en")
    assert result.model == "tiny.en"
    assert b"tiny.en" in whisper.posts()[-1].body
    none = await speech()
    with pytest.raises(FailedPrecondition, match="no STT endpoint"):
        await none.transcribe(wav_bytes())


async def test_transcribe_retries_a_dropped_kept_alive_connection(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    srv = await server(drop_reused="reset", transcript="still here")
    sp = await speech(local={"stt": {"whisper": srv.url}})
    for _ in range(3):
        result = await sp.transcribe(wav_bytes())
        assert result.text == "still here" and not result.failed_over
    assert srv.dropped >= 2


async def test_stt_is_local_names_where_a_transcription_would_go_first(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    local = await server(models=STT_MODELS)
    remote = await server(models=STT_MODELS)
    # The same kind of server at an address that is not loopback: the converse loop asks such an
    # endpoint at pauses only when the voice sounds finished (it may charge per request).
    remote_url = remote.url.replace("127.0.0.1", "0.0.0.0")
    only_local = await speech(local={"stt": {"whisper": local.url}})
    assert await only_local.stt_is_local()
    both = await speech(stt_base_urls=(remote_url,), local={"stt": {"whisper": local.url}})
    assert not await both.stt_is_local(), "the user's URL comes before the local child"
    assert await both.stt_is_local(provider=local.url)
    assert not await both.stt_is_local(provider="no-such-endpoint"), "a bad selector is left to the request"
    assert remote.posts() == [] and local.posts() == [], "nothing was transcribed to find out"

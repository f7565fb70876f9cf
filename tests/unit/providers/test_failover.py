"""TTS failover against real loopback servers that refuse, fail, hang, truncate or lie about content."""

from __future__ import annotations

import asyncio
import contextlib
import time

import pytest

from tests.unit.providers.conftest import FAST, ServerFactory, SpeechFactory
from tests.unit.providers.faultserver import closed_port_url, tone
from voicemoded.api.errors import InvalidArgument, Unavailable
from voicemoded.audio.format import AudioChunk
from voicemoded.providers import Speech, SpeechInfo, SpeechInterrupted

#: Generous margin for scheduling noise on a loaded 2-core machine.
MARGIN = 1.0


async def speak(sp: Speech, text: str = "hello", **kwargs: object) -> tuple[SpeechInfo, bytes]:
    items = [item async for item in sp.synthesize(text, **kwargs)]  # type: ignore[arg-type]
    info = items[0]
    assert isinstance(info, SpeechInfo)
    chunks = items[1:]
    assert chunks and all(isinstance(c, AudioChunk) for c in chunks)
    assert all(c.format.rate == 24_000 and c.format.channels == 1 for c in chunks)  # type: ignore[union-attr]
    return info, b"".join(c.audio for c in chunks)  # type: ignore[union-attr]


def breaker_of(sp: Speech, url: str) -> str:
    return next(s.breaker for s in sp.list("tts") if s.url == url)


async def test_priority_order_user_then_local(server: ServerFactory, speech: SpeechFactory) -> None:
    user, local = await server(), await server()
    sp = await speech(tts_base_urls=(user.url,), local={"tts": {"kokoro": local.url}})
    info, audio = await speak(sp)
    assert info.endpoint.url == user.url and info.endpoint.source == "user"
    assert audio == tone()
    assert len(user.posts()) == 1 and not local.posts()


async def test_refused_endpoint_fails_over_fast_and_is_skipped_next_time(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    local = await server()
    dead = closed_port_url()
    sp = await speech(tts_base_urls=(dead,), local={"tts": {"kokoro": local.url}})
    started = time.monotonic()
    info, _ = await speak(sp)
    assert time.monotonic() - started < FAST.local_connect_timeout + MARGIN
    assert info.endpoint.name == "kokoro"
    assert info.failed_over[0][0] == dead and "refused" in info.failed_over[0][1]
    assert breaker_of(sp, dead) == "open"
    info, _ = await speak(sp)
    assert "circuit open" in info.failed_over[0][1]


async def test_refused_during_request_not_discovery(server: ServerFactory, speech: SpeechFactory) -> None:
    """An endpoint that dies after discovery costs one refused connect, then the breaker opens."""
    doomed, local = await server(), await server()
    sp = await speech(tts_base_urls=(doomed.url,), local={"tts": {"kokoro": local.url}})
    await speak(sp)
    await doomed.close()
    started = time.monotonic()
    info, _ = await speak(sp)
    assert time.monotonic() - started < FAST.local_connect_timeout + MARGIN
    assert info.endpoint.url == local.url
    assert "cannot connect" in info.failed_over[0][1]
    assert breaker_of(sp, doomed.url) == "open"


async def test_http_500_fails_over_and_opens_after_threshold(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    bad, good = await server("http500"), await server()
    sp = await speech(tts_base_urls=(bad.url,), local={"tts": {"piper": good.url}})
    for attempt in range(1, 4):
        info, _ = await speak(sp)
        assert info.endpoint.url == good.url
        assert info.failed_over == ((bad.url, "HTTP 500: engine exploded"),)
        assert breaker_of(sp, bad.url) == ("open" if attempt == 3 else "closed")
    await speak(sp)
    assert len(bad.posts()) == 3, "an open circuit is not contacted"


async def test_hang_before_headers_costs_its_timeout_once(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    hung, good = await server("hang_headers"), await server()
    sp = await speech(tts_base_urls=(hung.url,), local={"tts": {"piper": good.url}})
    started = time.monotonic()
    info, _ = await speak(sp)
    cost = time.monotonic() - started
    assert FAST.request_timeout * 0.9 <= cost < FAST.request_timeout + MARGIN
    assert hung.hanging.is_set()
    assert info.endpoint.url == good.url and "within 0.6 s" in info.failed_over[0][1]
    assert breaker_of(sp, hung.url) == "open"
    started = time.monotonic()
    info, _ = await speak(sp)
    assert time.monotonic() - started < FAST.request_timeout, "the next request goes straight to piper"
    assert len(hung.posts()) == 1


async def test_hang_mid_stream_raises_after_audio_and_next_request_avoids_it(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    hung, good = await server("hang_mid"), await server()
    sp = await speech(tts_base_urls=(hung.url,), local={"tts": {"piper": good.url}})
    received: list[object] = []
    started = time.monotonic()
    with pytest.raises(SpeechInterrupted) as err:
        async for item in sp.synthesize("hello"):
            received.append(item)
    assert time.monotonic() - started < FAST.stream_timeout + MARGIN
    assert isinstance(received[0], SpeechInfo) and received[0].endpoint.url == hung.url
    assert sum(len(c.audio) for c in received[1:]) == hung.chunk  # type: ignore[attr-defined]
    assert "stalled" in err.value.message and hung.url in err.value.message
    assert not good.posts(), "no failover once audio reached the caller"
    info, _ = await speak(sp)
    assert info.endpoint.url == good.url


async def test_truncated_stream_after_audio_is_an_interruption(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    cut, good = await server("truncated", truncate_at=1200), await server()
    sp = await speech(tts_base_urls=(cut.url,), local={"tts": {"piper": good.url}})
    with pytest.raises(SpeechInterrupted, match=r"complete message body|broke off"):
        _ = [item async for item in sp.synthesize("hello")]


async def test_truncated_before_any_audio_fails_over(server: ServerFactory, speech: SpeechFactory) -> None:
    cut, good = await server("truncated", truncate_at=0), await server()
    odd, _ = await server("truncated", truncate_at=1), None
    sp = await speech(tts_base_urls=(cut.url, odd.url), local={"tts": {"piper": good.url}})
    info, audio = await speak(sp)
    assert info.endpoint.url == good.url and audio == tone()
    assert [url for url, _ in info.failed_over] == [cut.url, odd.url]


async def test_wrong_content_type_and_empty_audio_fail_over(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    html, empty, good = await server("wrong_type"), await server("empty"), await server()
    sp = await speech(tts_base_urls=(html.url, empty.url), local={"tts": {"piper": good.url}})
    info, _ = await speak(sp)
    reasons = dict(info.failed_over)
    assert "text/html" in reasons[html.url]
    assert "no audio" in reasons[empty.url]


async def test_all_failed_lists_every_endpoint_with_its_reason(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    bad, html = await server("http500"), await server("wrong_type")
    dead = closed_port_url()
    sp = await speech(tts_base_urls=(dead, bad.url), local={"tts": {"piper": html.url}})
    with pytest.raises(Unavailable) as err:
        _ = [item async for item in sp.synthesize("hello")]
    message = err.value.message
    lines = message.splitlines()
    assert len(lines) == 4, message
    assert dead in lines[1] and "refused" in lines[1]
    assert bad.url in lines[2] and "HTTP 500: engine exploded" in lines[2]
    assert "piper" in lines[3] and "text/html" in lines[3]
    assert err.value.fields[bad.url] == "HTTP 500: engine exploded"
    assert err.value.hint


async def test_all_rejecting_the_request_is_invalid_argument(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    picky = await server("reject400", voices=None)
    sp = await speech(tts_base_urls=(picky.url,))
    with pytest.raises(InvalidArgument, match="unknown voice, valid: joe"):
        _ = [item async for item in sp.synthesize("hello", voice="af_sky")]
    assert breaker_of(sp, picky.url) == "closed", "a 4xx proves the endpoint alive"


async def test_equal_priority_endpoints_share_the_work(server: ServerFactory, speech: SpeechFactory) -> None:
    one, two = await server(), await server()
    sp = await speech(local={"tts": {"kokoro-a": one.url, "kokoro-b": two.url}})
    used = [(await speak(sp))[0].endpoint.url for _ in range(4)]
    assert sorted(used) == sorted([one.url, two.url] * 2)
    assert used[0] != used[1] and used[2] != used[3]


async def test_explicit_parameters_reach_the_endpoint(server: ServerFactory, speech: SpeechFactory) -> None:
    srv = await server()
    sp = await speech(local={"tts": {"kokoro": srv.url}})
    info, _ = await speak(sp, voice="am_adam", model="kokoro", speed=1.5)
    body = srv.posts()[0].json()
    assert body["voice"] == "am_adam" and body["model"] == "kokoro" and body["speed"] == 1.5
    assert body["response_format"] == "pcm"
    assert (info.voice, info.model) == ("am_adam", "kokoro")
    with pytest.raises(InvalidArgument, match="speed"):
        await speak(sp, speed=9.0)
    with pytest.raises(InvalidArgument, match="zz_nobody"):
        await speak(sp, voice="zz_nobody")
    with pytest.raises(InvalidArgument, match="instructions"):
        await speak(sp, instructions="whisper it")
    with pytest.raises(InvalidArgument, match="no text"):
        await speak(sp, text="  ")


async def test_provider_selects_by_name_engine_or_url(server: ServerFactory, speech: SpeechFactory) -> None:
    user, piper = await server(voices=("en_US-joe-medium",)), await server(voices=("en_US-joe-medium",))
    sp = await speech(tts_base_urls=(user.url,), local={"tts": {"piper": piper.url}})
    assert (await speak(sp, provider="piper"))[0].endpoint.url == piper.url
    assert (await speak(sp, provider=piper.url.removesuffix("/v1")))[0].endpoint.url == piper.url
    assert (await speak(sp, provider=f"127.0.0.1:{user.port}"))[0].endpoint.url == user.url
    with pytest.raises(InvalidArgument, match="openai") as err:
        await speak(sp, provider="openai")
    assert piper.url in err.value.message


async def test_kokoro_voice_on_openai_is_mapped_and_reported(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    cloud = await server(models=("tts-1", "tts-1-hd", "gpt-4o-mini-tts", "whisper-1"))
    sp = await speech(openai_api_key="sk-test-secret", openai_base_url=cloud.url)
    info, _ = await speak(sp, voice="af_sky")
    assert info.endpoint.source == "cloud" and info.endpoint.engine == "openai"
    assert (info.voice_requested, info.voice) == ("af_sky", "nova")
    assert any("nova" in note for note in info.notes)
    request = cloud.posts()[0]
    assert request.json()["voice"] == "nova"
    assert request.headers["authorization"] == "Bearer sk-test-secret"
    info, _ = await speak(sp, instructions="calm and slow")
    assert cloud.posts()[1].json()["model"] == "gpt-4o-mini-tts"
    assert cloud.posts()[1].json()["instructions"] == "calm and slow"


async def test_api_key_goes_to_openai_only(server: ServerFactory, speech: SpeechFactory) -> None:
    cloud, local = await server(), await server()
    sp = await speech(
        openai_api_key="sk-test-secret", openai_base_url=cloud.url, local={"tts": {"k": local.url}}
    )
    await speak(sp)
    assert all("sk-test-secret" not in r.headers.get("authorization", "") for r in local.requests)
    assert "sk-test-secret" not in repr(sp.settings)


async def test_stopping_early_releases_the_endpoint(server: ServerFactory, speech: SpeechFactory) -> None:
    srv = await server(chunk=480)
    sp = await speech(local={"tts": {"piper": srv.url}})
    async with contextlib.aclosing(sp.synthesize("hello")) as stream:
        async for item in stream:
            if isinstance(item, AudioChunk):
                break
    [status] = sp.list("tts")
    assert status.in_flight == 0 and status.breaker == "closed" and status.health == "healthy"
    _, audio = await speak(sp)
    assert audio == tone()


async def test_cancelled_trial_is_released(server: ServerFactory, speech: SpeechFactory) -> None:
    """A caller that gives up during a half-open trial does not leave the endpoint locked out."""
    hung = await server("hang_headers")
    sp = await speech(tts_base_urls=(hung.url,), request_timeout=5.0)
    state = sp.registry.states("tts")[0]
    state.breaker.record_failure(hard=True)
    state.breaker.opened_at -= state.breaker.cooldown  # the cool-down is over: next request is the trial
    task = asyncio.create_task(speak(sp))
    await asyncio.wait_for(hung.hanging.wait(), 5)
    assert state.breaker.state.value == "half_open" and state.in_flight == 1
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state.in_flight == 0 and state.breaker.ready()


@pytest.mark.parametrize("how", ["reset", "close"])
async def test_a_kept_alive_connection_dropped_under_a_request_is_retried_fresh(
    server: ServerFactory, speech: SpeechFactory, how: str
) -> None:
    """The server's idle close races the reuse of a pooled connection: the request goes again, at once."""
    srv = await server(drop_reused=how)
    sp = await speech(local={"tts": {"piper": srv.url}})
    for _ in range(3):
        info, audio = await speak(sp)
        assert audio == tone() and not info.failed_over
    assert srv.dropped >= 2, "the pooled connection was reused and dropped"
    [status] = sp.list("tts")
    assert status.breaker == "closed" and status.health == "healthy"


async def test_the_only_endpoint_is_tried_again_when_it_comes_back(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    """One refused connect must not lock people out of their only TTS for the whole cool-down."""
    srv = await server()
    sp = await speech(local={"tts": {"piper": srv.url}})
    await speak(sp)
    await srv.close()
    with pytest.raises(Unavailable, match="refused"):
        await speak(sp)
    assert breaker_of(sp, srv.url) == "open"
    with pytest.raises(Unavailable, match="refused"):
        await speak(sp)  # still down: tried (refused at once), not answered from the breaker
    await server(port=srv.port)  # back on the same port, well inside the 30 s cool-down
    info, audio = await speak(sp)
    assert audio == tone() and not info.failed_over
    assert breaker_of(sp, srv.url) == "closed"


async def test_a_hung_only_endpoint_is_not_tried_again_during_its_cool_down(
    server: ServerFactory, speech: SpeechFactory
) -> None:
    hung = await server("hang_headers")
    sp = await speech(local={"tts": {"piper": hung.url}})
    with pytest.raises(Unavailable, match="within"):
        await speak(sp)
    started = time.monotonic()
    with pytest.raises(Unavailable, match="circuit open"):
        await speak(sp)
    assert time.monotonic() - started < FAST.request_timeout
    assert len(hung.posts()) == 1

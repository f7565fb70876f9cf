"""The walk over endpoints that synthesis and transcription share, proven the same for both kinds.

Every test runs once per kind against real loopback servers that fail on demand: if either kind stopped
walking its plan through the shared attempts (its own skip rule, its own error text, its own bookkeeping),
one of the two runs would differ.
"""

from __future__ import annotations

import asyncio
import io
import time
import wave
from collections.abc import Callable
from typing import Any

import pytest

from tests.unit.providers.conftest import FAST, ServerFactory, SpeechFactory
from tests.unit.providers.faultserver import FaultServer, closed_port_url, tone
from voicemoded.api.errors import InvalidArgument, Unavailable
from voicemoded.events import EventBus
from voicemoded.providers import BreakerPolicy, EndpointStatus, Speech, SpeechInfo
from voicemoded.providers.client import AttemptError
from voicemoded.providers.endpoint import EndpointState, Kind

KINDS = pytest.mark.parametrize("kind", ["tts", "stt"])
STT_MODELS = ("whisper-1", "tiny.en")
BOOM = "HTTP 500: engine exploded"


def wav_bytes() -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16_000)
        out.writeframes(tone(1600))
    return buffer.getvalue()


async def ask(sp: Speech, kind: Kind) -> tuple[EndpointStatus, tuple[tuple[str, str], ...]]:
    """One request of ``kind``: where it was served and what it passed over on the way."""
    if kind == "stt":
        result = await sp.transcribe(wav_bytes())
        return result.endpoint, result.failed_over
    items = [item async for item in sp.synthesize("hello")]
    info = items[0]
    assert isinstance(info, SpeechInfo) and len(items) > 1
    return info.endpoint, info.failed_over


async def make_server(server: ServerFactory, kind: Kind, mode: str = "ok", **kwargs: Any) -> FaultServer:
    if kind == "stt":
        kwargs.setdefault("models", STT_MODELS)
    return await server(mode, **kwargs)


async def make_speech(
    speech: SpeechFactory,
    kind: Kind,
    user: tuple[str, ...] = (),
    local: dict[str, str] | None = None,
    **overrides: Any,
) -> Speech:
    return await speech(local={kind: local or {}}, **{f"{kind}_base_urls": user}, **overrides)


def state_of(sp: Speech, kind: Kind, url: str) -> EndpointState:
    return next(s for s in sp.registry.states(kind) if s.endpoint.url == url)


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


@KINDS
async def test_soft_failures_fail_over_then_open_the_circuit_and_are_skipped(
    server: ServerFactory, speech: SpeechFactory, kind: Kind
) -> None:
    bad, good = await make_server(server, kind, "http500"), await make_server(server, kind)
    sp = await make_speech(speech, kind, (bad.url,), {"local": good.url})
    for attempt in range(1, FAST.breaker.failure_threshold + 1):
        endpoint, failed_over = await ask(sp, kind)
        assert endpoint.url == good.url and failed_over == ((bad.url, BOOM),)
        assert state_of(sp, kind, bad.url).breaker.state.value == (
            "open" if attempt == FAST.breaker.failure_threshold else "closed"
        )
    endpoint, failed_over = await ask(sp, kind)
    assert endpoint.url == good.url
    [(url, reason)] = failed_over
    assert url == bad.url and reason.startswith(f"circuit open after: {BOOM}; next try in ")
    assert len(bad.posts()) == FAST.breaker.failure_threshold, "an open circuit is not contacted"
    bad_state, good_state = state_of(sp, kind, bad.url), state_of(sp, kind, good.url)
    assert (bad_state.health.value, bad_state.last_error) == ("unhealthy", BOOM)
    assert good_state.health.value == "healthy" and good_state.latency is not None
    assert (bad_state.served, good_state.served) == (FAST.breaker.failure_threshold, 4)
    assert bad_state.in_flight == good_state.in_flight == 0


@KINDS
async def test_nothing_served_names_every_endpoint_and_each_move_is_published(
    server: ServerFactory, speech: SpeechFactory, kind: Kind
) -> None:
    dead = closed_port_url()
    bad, picky = await make_server(server, kind, "http500"), await make_server(server, kind, "reject400")
    events = EventBus()
    sp = await make_speech(speech, kind, (dead, bad.url, picky.url), events=events)
    with pytest.raises(Unavailable) as err:
        await ask(sp, kind)
    lines = err.value.message.splitlines()
    assert lines[0] == f"no {kind.upper()} endpoint could serve the request:"
    assert len(lines) == 4 and dead in lines[1] and "refused" in lines[1]
    assert f"{bad.url}, user): {BOOM}" in lines[2]
    assert f"{picky.url}, user): HTTP 400: unknown voice, valid: joe" in lines[3]
    assert list(err.value.fields) == [dead, bad.url, picky.url]
    assert ("whisper" if kind == "stt" else "piper") in err.value.hint
    moves = [(e.fields["url"], e.fields["to"]) for e in events.recent() if e.kind == "provider.failover"]
    assert moves == [(bad.url, picky.url), (picky.url, "")]
    assert all(s.in_flight == 0 for s in sp.registry.states(kind))


@KINDS
async def test_only_refusals_of_the_request_make_it_invalid(
    server: ServerFactory, speech: SpeechFactory, kind: Kind
) -> None:
    picky = await make_server(server, kind, "reject400")
    sp = await make_speech(speech, kind, (picky.url,))
    with pytest.raises(InvalidArgument, match="unknown voice, valid: joe"):
        await ask(sp, kind)
    state = state_of(sp, kind, picky.url)
    assert (state.breaker.state.value, state.health.value) == ("closed", "healthy"), "a 4xx proves it alive"


@KINDS
async def test_the_only_endpoint_is_tried_again_after_a_quick_failure(
    server: ServerFactory, speech: SpeechFactory, kind: Kind
) -> None:
    srv = await make_server(server, kind)
    sp = await make_speech(speech, kind, local={"local": srv.url})
    await ask(sp, kind)
    await srv.close()
    for _ in range(2):  # tried each time (refused at once), not answered from the open circuit
        with pytest.raises(Unavailable, match="refused"):
            await ask(sp, kind)
        assert state_of(sp, kind, srv.url).breaker.state.value == "open"
    await make_server(server, kind, port=srv.port)  # back, well inside the cool-down
    endpoint, failed_over = await ask(sp, kind)
    assert endpoint.url == srv.url and not failed_over
    assert state_of(sp, kind, srv.url).breaker.state.value == "closed"


@KINDS
async def test_a_hung_only_endpoint_waits_out_its_cool_down(
    server: ServerFactory, speech: SpeechFactory, kind: Kind
) -> None:
    hung = await make_server(server, kind, "hang_headers")
    sp = await make_speech(speech, kind, local={"local": hung.url})
    with pytest.raises(Unavailable, match=rf"(?s)no {kind.upper()} endpoint.*within 0\.6 s"):
        await ask(sp, kind)
    started = time.monotonic()
    with pytest.raises(Unavailable, match=r"circuit open after: no \w+ within 0\.6 s"):
        await ask(sp, kind)
    assert time.monotonic() - started < FAST.request_timeout
    assert len(hung.posts()) == 1


@KINDS
async def test_a_cancelled_trial_gives_its_slot_back(
    server: ServerFactory, speech: SpeechFactory, kind: Kind
) -> None:
    hung = await make_server(server, kind, "hang_headers")
    policy = BreakerPolicy(cooldown=0.1, max_cooldown=0.2)
    sp = await make_speech(speech, kind, (hung.url,), request_timeout=5.0, breaker=policy)
    state = state_of(sp, kind, hung.url)
    sp.health.mark_failure(state, AttemptError("cannot connect: connection refused", hard=True))
    await until(state.breaker.ready)
    task = asyncio.create_task(ask(sp, kind))
    await asyncio.wait_for(hung.hanging.wait(), 5)
    assert state.breaker.state.value == "half_open" and state.in_flight == 1
    assert not state.breaker.ready(), "the trial slot is taken"
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert state.in_flight == 0 and state.breaker.ready()
    assert state.breaker.state.value == "half_open", "no verdict from a cancelled request"


@KINDS
async def test_equal_endpoints_take_turns(server: ServerFactory, speech: SpeechFactory, kind: Kind) -> None:
    one, two = await make_server(server, kind), await make_server(server, kind)
    sp = await make_speech(speech, kind, local={"a": one.url, "b": two.url})
    used = [(await ask(sp, kind))[0].url for _ in range(4)]
    assert used[0] != used[1] and used[2] != used[3]
    assert sorted(used) == sorted([one.url, two.url] * 2)

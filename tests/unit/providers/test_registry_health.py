"""Registry membership, discovery, active probes and the events they publish."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from tests.unit.providers.conftest import FAST, ServerFactory, SpeechFactory
from tests.unit.providers.faultserver import closed_port_url
from voicemoded.events import EventBus
from voicemoded.providers import BreakerPolicy, ProviderSettings, Speech
from voicemoded.providers.client import AttemptError


async def until(condition: Callable[[], bool], timeout: float = 3.0) -> None:
    """Await a condition that time (a cool-down) makes true, polling finely, with a deadline."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def test_settings_hide_the_key() -> None:
    settings = ProviderSettings(openai_api_key="sk-very-secret")
    assert "sk-very-secret" not in repr(settings)


async def test_order_user_local_cloud_and_local_updates(speech: SpeechFactory) -> None:
    sp = await speech(
        tts_base_urls=("http://10.0.0.5:8880", "http://127.0.0.1:9/v1"),
        openai_api_key="sk-x",
        local={"tts": {"piper": "http://127.0.0.1:8881/v1", "kokoro": "http://127.0.0.1:8880/v1"}},
    )
    listed = sp.list("tts")
    assert [(s.source, s.name) for s in listed] == [
        ("user", "10.0.0.5:8880"),
        ("user", "127.0.0.1:9"),
        ("local", "kokoro"),
        ("local", "piper"),
        ("cloud", "openai"),
    ]
    assert listed[0].url == "http://10.0.0.5:8880/v1"
    assert listed[-1].voices and "nova" in listed[-1].voices
    assert [s.source for s in sp.list("stt")] == ["cloud"]
    sp.set_local_endpoints("tts", {"piper": "http://127.0.0.1:8881/v1"})
    assert [s.name for s in sp.list("tts")] == ["10.0.0.5:8880", "127.0.0.1:9", "piper", "openai"]


async def test_probe_discovers_and_marks(server: ServerFactory, speech: SpeechFactory) -> None:
    good = await server(models=("kokoro",), voices=("af_sky", "jf_alpha"))
    bad = await server(probe_mode="http500")
    dead = closed_port_url()
    sp = await speech(tts_base_urls=(dead, bad.url), local={"tts": {"kokoro": good.url}})
    statuses = {s.url: s for s in await sp.probe("tts")}
    assert statuses[good.url].health == "healthy" and statuses[good.url].latency_ms is not None
    assert statuses[good.url].voices == ("af_sky", "jf_alpha") and statuses[good.url].engine == "kokoro"
    assert statuses[dead].health == "unhealthy" and statuses[dead].breaker == "open"
    assert "refused" in statuses[dead].last_error
    assert statuses[bad.url].breaker == "closed" and "HTTP 500" in statuses[bad.url].last_error
    assert any(r.path == "/health" for r in good.requests)


async def test_probe_is_the_half_open_trial(server: ServerFactory) -> None:
    srv = await server(probe_mode="hang")
    events = EventBus()
    policy = BreakerPolicy(cooldown=0.2, max_cooldown=0.4)
    settings = ProviderSettings(tts_base_urls=(srv.url,), probe_timeout=0.3, breaker=policy)
    async with Speech(settings, events) as sp:
        state = sp.registry.states("tts")[0]
        await sp.health.probe(state)
        assert state.breaker.state.value == "open" and "within 0.3 s" in state.last_error
        srv.probe_mode = "ok"
        await sp.health.probe(state)
        assert state.breaker.state.value == "open", "no trial before the cool-down ends"
        await until(state.breaker.ready)
        await sp.health.probe(state)
        assert state.breaker.state.value == "closed" and state.health.value == "healthy"
    kinds = [(e.kind, e.fields["breaker"]) for e in events.recent() if e.kind == "provider.health"]
    assert kinds == [
        ("provider.health", "open"),
        ("provider.health", "half_open"),
        ("provider.health", "closed"),
    ]


async def test_background_probe_loop_runs(server: ServerFactory) -> None:
    srv = await server()
    settings = ProviderSettings(
        tts_base_urls=(srv.url,), probe_interval=0.05, probe_timeout=FAST.probe_timeout
    )
    async with Speech(settings) as sp:
        await until(lambda: sum(r.path == "/health" for r in srv.requests) >= 2)
        assert sp.list("tts")[0].health == "healthy"


async def test_failover_and_health_events(server: ServerFactory) -> None:
    bad, good = await server("http500"), await server()
    events = EventBus()
    settings = ProviderSettings(tts_base_urls=(bad.url, good.url), request_timeout=1.0)
    async with Speech(settings, events) as sp:
        _ = [item async for item in sp.synthesize("hi")]
    failovers = [e for e in events.recent() if e.kind == "provider.failover"]
    assert len(failovers) == 1
    assert failovers[0].subsystem == "providers" and failovers[0].fields["url"] == bad.url
    assert failovers[0].fields["to"] == good.url and "HTTP 500" in failovers[0].fields["reason"]


async def test_probe_asks_again_what_an_endpoint_offers(server: ServerFactory, speech: SpeechFactory) -> None:
    srv = await server(voices=("af_sky",))
    sp = await speech(local={"tts": {"kokoro": srv.url}})
    assert (await sp.probe("tts"))[0].voices == ("af_sky",)
    srv.voices = ("af_sky", "am_adam")
    assert sp.list("tts")[0].voices == ("af_sky",), "discovery stays fresh for its TTL"
    assert (await sp.probe("tts"))[0].voices == ("af_sky", "am_adam")


async def test_reset_forgets_an_endpoints_past(speech: SpeechFactory) -> None:
    events = EventBus()
    sp = await speech(tts_base_urls=(closed_port_url(),), events=events)
    state = sp.registry.states("tts")[0]
    sp.health.mark_failure(state, AttemptError("cannot connect: connection refused", hard=True))
    assert (state.breaker.state.value, state.health.value) == ("open", "unhealthy")
    sp.health.reset(state)
    assert (state.breaker.state.value, state.health.value) == ("closed", "unknown")
    assert state.breaker.ready()
    published = [
        (e.fields["health"], e.fields["breaker"]) for e in events.recent() if e.kind == "provider.health"
    ]
    assert published == [("unhealthy", "open"), ("unknown", "closed")]

"""Which endpoints exist, in which order, and what each offers.

User URLs come first (the person named them), then the local children the supervisor reports as running
(never guessed from open ports: a port can be anybody's), then OpenAI when a key is set. Models and voices
are discovered from each endpoint and cached for ``discovery_ttl``; OpenAI cannot list its voices, so its
published list stands in.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

import structlog

from voicemoded.api.errors import InvalidArgument
from voicemoded.providers.breaker import Breaker
from voicemoded.providers.client import AttemptError, EndpointClient
from voicemoded.providers.endpoint import (
    KINDS,
    Endpoint,
    EndpointState,
    Engine,
    Kind,
    Source,
    normalize_url,
    update_state,
)
from voicemoded.providers.settings import ProviderSettings
from voicemoded.providers.voices import OPENAI_STT_MODELS, OPENAI_TTS_MODELS, OPENAI_VOICES

log = structlog.get_logger(__name__)


def _host_name(url: str) -> str:
    parts = urlsplit(url)
    return parts.netloc or url


def parse_models(document: Any) -> tuple[str, ...] | None:
    """``{"data": [{"id": ...}]}`` (OpenAI) or a bare list; None when the shape is unknown."""
    items = document.get("data") if isinstance(document, dict) else document
    if not isinstance(items, list):
        return None
    ids = [item.get("id") if isinstance(item, dict) else item for item in items]
    return tuple(str(i) for i in ids if isinstance(i, str) and i)


def parse_voices(document: Any) -> tuple[str, ...] | None:
    """``{"voices": [...]}`` with names or objects carrying ``id``/``name`` (Kokoro-FastAPI, our engines)."""
    items = document.get("voices", document.get("data")) if isinstance(document, dict) else document
    if not isinstance(items, list):
        return None
    names = []
    for item in items:
        name = item.get("id") or item.get("name") if isinstance(item, dict) else item
        if isinstance(name, str) and name:
            names.append(name)
    return tuple(names)


def parse_genders(document: Any) -> dict[str, str]:
    """Voice genders from ``{"data": [{"id", "gender"}]}`` (our engines publish them), as ``f``/``m``."""
    items = document.get("data") if isinstance(document, dict) else None
    genders: dict[str, str] = {}
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            gender = str(item.get("gender") or "").lower()
            if gender in ("f", "female", "m", "male"):
                genders[item["id"]] = gender[0]
    return genders


def parse_languages(document: Any) -> dict[str, tuple[str, ...]]:
    """Voice languages from ``{"data": [{"id", "language", "languages"}]}`` (our engines publish them)."""
    items = document.get("data") if isinstance(document, dict) else None
    languages: dict[str, tuple[str, ...]] = {}
    for item in items if isinstance(items, list) else ():
        if isinstance(item, dict) and isinstance(item.get("id"), str):
            listed = item.get("languages")
            named = [*(listed if isinstance(listed, list) else ()), item.get("language")]
            found = [n.lower().replace("_", "-") for n in named if isinstance(n, str) and 2 <= len(n) <= 16]
            if found:
                languages[item["id"]] = tuple(dict.fromkeys(found))
    return languages


def guess_engine(state: EndpointState) -> Engine:
    """Name the engine behind an endpoint from what it told us, so ``provider=kokoro`` can find it."""
    ep = state.endpoint
    if ep.source is Source.CLOUD:
        return Engine.OPENAI
    for engine in (Engine.KOKORO, Engine.PIPER, Engine.WHISPER):
        if ep.name == engine.value:
            return engine
    models = " ".join(state.models or ()).lower()
    for engine in (Engine.KOKORO, Engine.PIPER, Engine.WHISPER):
        if engine.value in models:
            return engine
    if state.voices and any(len(v) > 3 and v[2] == "_" and v[1] in "fm" for v in state.voices):
        return Engine.KOKORO
    if urlsplit(ep.url).hostname == "api.openai.com":
        return Engine.OPENAI
    return Engine.UNKNOWN


class Registry:
    """Endpoint membership and discovery: the only writer of what an endpoint is and offers.

    Health, breakers and load live in the same states but are the health tracker's to change.
    """

    def __init__(
        self,
        settings: ProviderSettings,
        client: EndpointClient,
        on_error: Callable[[EndpointState, AttemptError], None] | None = None,
    ) -> None:
        self._settings = settings
        self._client = client
        self._on_error = on_error
        """Told when discovery could not reach an endpoint, so the health tracker can mark it down."""
        self._states: dict[Kind, list[EndpointState]] = {kind: [] for kind in KINDS}
        self._local: dict[Kind, dict[str, str]] = {kind: {} for kind in KINDS}
        self._discovering: dict[str, asyncio.Task[None]] = {}
        for kind in KINDS:
            self._rebuild(kind)

    def _declared(self, kind: Kind) -> list[Endpoint]:
        s = self._settings
        seen: set[str] = set()
        result: list[Endpoint] = []

        def add(url: str, source: Source, name: str, order: int = 0) -> None:
            norm = normalize_url(url)
            if norm not in seen:
                seen.add(norm)
                result.append(Endpoint(url=norm, kind=kind, source=source, name=name, order=order))

        for order, url in enumerate(s.stt_base_urls if kind == "stt" else s.tts_base_urls):
            norm = normalize_url(url)
            name = "openai" if norm == normalize_url(s.openai_base_url) else _host_name(norm)
            add(norm, Source.USER, name, order)
        for name, url in sorted(self._local[kind].items()):
            add(url, Source.LOCAL, name)
        if s.openai_api_key:
            add(s.openai_base_url, Source.CLOUD, "openai")
        return result

    def _rebuild(self, kind: Kind) -> None:
        old = {state.endpoint: state for state in self._states[kind]}
        fresh = []
        for endpoint in self._declared(kind):
            state = old.get(endpoint) or EndpointState(endpoint, Breaker(self._settings.breaker))
            update_state(state, engine=guess_engine(state))
            if endpoint.source is Source.CLOUD or state.engine is Engine.OPENAI:
                models = OPENAI_TTS_MODELS if kind == "tts" else OPENAI_STT_MODELS
                voices = tuple(OPENAI_VOICES) if kind == "tts" else None
                update_state(state, models=state.models or models, voices=voices)
            fresh.append(state)
        self._states[kind] = fresh

    def set_local_endpoints(self, kind: Kind, endpoints: Mapping[str, str]) -> None:
        """Replace the running local children of one kind: ``{"piper": "http://127.0.0.1:8881/v1"}``.

        The supervisor's view is the truth: call this whenever a child starts or stops. A child that
        comes back after being removed starts with a fresh breaker.
        """
        if kind not in KINDS:
            raise InvalidArgument(f"unknown endpoint kind {kind!r}", hint="use 'stt' or 'tts'")
        self._local[kind] = {name: normalize_url(url) for name, url in endpoints.items()}
        self._rebuild(kind)
        log.info("providers.local_endpoints", kind=kind, endpoints=sorted(self._local[kind].items()))

    def states(self, kind: Kind) -> list[EndpointState]:
        """Endpoints of one kind in priority order (user, local, cloud; declaration order within)."""
        return list(self._states[kind])

    def all_states(self) -> list[EndpointState]:
        return [state for kind in KINDS for state in self._states[kind]]

    def select(self, kind: Kind, provider: str | None) -> list[EndpointState]:
        """The endpoints a ``provider`` selector allows: a URL, an endpoint name, or an engine name."""
        states = self.states(kind)
        if not provider:
            return states
        wanted = provider.strip()
        try:
            as_url: str | None = normalize_url(wanted) if "://" in wanted else None
        except ValueError:
            as_url = None
        lowered = wanted.lower()
        chosen = [
            s
            for s in states
            if s.endpoint.url == as_url or s.endpoint.name.lower() == lowered or s.engine.value == lowered
        ]
        if not chosen:
            known = ", ".join(f"{s.endpoint.name} ({s.endpoint.url})" for s in states) or "none"
            raise InvalidArgument(
                f"no {kind.upper()} endpoint matches provider {provider!r}; configured: {known}",
                hint=f"pass one of those names or URLs, or add the URL to VOICEMODE_{kind.upper()}_BASE_URLS",
                fields={"provider": provider},
            )
        return chosen

    def rediscover(self, states: list[EndpointState]) -> None:
        """Forget when these were discovered, so the next probe asks them again what they offer."""
        for state in states:
            update_state(state, discovered_at=None)

    async def ensure_discovered(self, states: list[EndpointState]) -> None:
        """Discover endpoints never seen before (bounded by the probe timeout); refresh stale ones later."""
        ttl = self._settings.discovery_ttl
        never = [s for s in states if s.discovered_at is None and s.breaker.ready()]
        if never:
            await asyncio.gather(*(self.discover(s) for s in never))
        for state in states:
            if not state.discovery_fresh(ttl) and state.endpoint.url not in self._discovering:
                task = asyncio.create_task(self.discover(state))
                self._discovering[state.endpoint.url] = task
                task.add_done_callback(self._discovered)

    def _discovered(self, task: asyncio.Task[None]) -> None:
        for url, running in list(self._discovering.items()):
            if running is task:
                del self._discovering[url]

    async def discover(self, state: EndpointState) -> None:
        """Fetch models (and voices for TTS); a failure keeps what was known and retries after the TTL."""
        ep = state.endpoint
        timeout = self._settings.probe_timeout
        update_state(state, discovered_at=time.monotonic())
        try:
            status, document = await self._client.get_json(ep, f"{ep.url}/models", timeout)
            models = parse_models(document) if status < 400 else None
            if models is not None and state.engine is Engine.OPENAI:
                models = tuple(m for m in models if _fits(ep.kind, m)) or state.models
            if models is not None:
                update_state(state, models=models)
            if ep.kind == "tts" and state.engine is not Engine.OPENAI:
                status, document = await self._client.get_json(ep, f"{ep.url}/audio/voices", timeout)
                if status < 400:
                    update_state(
                        state,
                        voices=parse_voices(document),
                        voice_genders=parse_genders(document),
                        voice_languages=parse_languages(document),
                    )
        except AttemptError as exc:
            log.info("providers.discovery_failed", endpoint=ep.url, reason=exc.reason)
            if self._on_error is not None and not exc.rejected:
                self._on_error(state, exc)
            return
        update_state(state, engine=guess_engine(state))
        log.debug("providers.discovered", endpoint=ep.url, models=state.models, voices=state.voices)

    async def aclose(self) -> None:
        tasks = list(self._discovering.values())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)


def _fits(kind: Kind, model: str) -> bool:
    if kind == "tts":
        return "tts" in model
    return "whisper" in model or "transcribe" in model

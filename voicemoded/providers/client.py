"""Talking to one endpoint through the official ``openai`` SDK, with every failure classified.

One pooled ``httpx.AsyncClient`` is shared by all endpoints (connections to a local child stay warm);
each endpoint gets its own ``AsyncOpenAI`` with its own timeouts and ``max_retries=0``, because retrying is
the router's decision (the next endpoint, not the same one again). The one exception is a kept-alive
connection the server closed just as a request went out on it: that request never reached the endpoint,
so it is sent once more on a fresh connection, at once. Every error leaves this module as an
:class:`AttemptError` that says whether it was the endpoint's fault, and how hard a fault it was.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import sys
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, cast
from urllib.parse import urlsplit

import httpx
import structlog

from voicemoded.providers.endpoint import Endpoint, Source
from voicemoded.providers.settings import ProviderSettings

if TYPE_CHECKING:
    # The SDK costs ~40 MiB of memory; it is imported on the first real request, not at start-up.
    import openai

log = structlog.get_logger(__name__)
T = TypeVar("T")

#: Content types a PCM stream may arrive with; anything else (an HTML error page, JSON) is not audio.
AUDIO_CONTENT_TYPES = ("audio/", "application/octet-stream", "binary/octet-stream")
_PLACEHOLDER_KEY = "voicemode-local"
#: Idle pooled connections are dropped after this many seconds: below uvicorn's default 5 s keep-alive
#: (Kokoro-FastAPI; the embedded engines keep 30 s), so the client, not the server, closes an idle one.
KEEPALIVE_EXPIRY = 4.0
_STALE_ERRNOS = frozenset({errno.ECONNRESET, errno.EPIPE, errno.ECONNABORTED})


def _chain(exc: BaseException) -> list[BaseException]:
    """``exc`` and what caused it, outermost first (the SDK wraps httpx, which wraps the OS error)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in chain:
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain


def stale_connection(exc: BaseException) -> bool:
    """Did a reused connection die under the request (reset, broken pipe, closed before any answer)?

    Such a request never reached the server's application, so sending it again cannot do anything twice.
    A refused connect or a timeout is not stale: the server is down or slow, and trying again would not help.
    """
    chain = _chain(exc)
    if any(isinstance(e, httpx.TimeoutException | TimeoutError | ConnectionRefusedError) for e in chain):
        return False
    return any(
        isinstance(e, httpx.RemoteProtocolError | httpx.ReadError | httpx.WriteError)
        or (isinstance(e, OSError) and e.errno in _STALE_ERRNOS)
        for e in chain
    )


class AttemptError(Exception):
    """Why one attempt at one endpoint failed.

    ``hard``: refused or timed out, the endpoint is down (open its breaker at once). ``rejected``: the
    endpoint answered and refused this request (HTTP 4xx), so it is healthy and the request is not.
    ``timed_out``: the attempt cost its whole timeout (trying again would cost it again).
    """

    def __init__(
        self, reason: str, *, hard: bool = False, rejected: bool = False, timed_out: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hard = hard
        self.rejected = rejected
        self.timed_out = timed_out

    def __str__(self) -> str:
        return self.reason


def classify(exc: BaseException, what: str, timeout: float) -> AttemptError:
    """Turn SDK, httpx and asyncio errors into an :class:`AttemptError` with a reason a person can read."""
    if isinstance(exc, AttemptError):
        return exc
    sdk = sys.modules.get("openai")  # no SDK loaded yet: the error cannot be one of its types
    if isinstance(exc, TimeoutError | httpx.TimeoutException) or (
        sdk and isinstance(exc, sdk.APITimeoutError)
    ):
        return AttemptError(f"no {what} within {timeout:g} s", hard=True, timed_out=True)
    if isinstance(exc, httpx.ConnectError) or (sdk and isinstance(exc, sdk.APIConnectionError)):
        return AttemptError(f"cannot connect: {_root_cause(exc)}", hard=True)
    if sdk and isinstance(exc, sdk.APIStatusError):
        status = exc.status_code
        message = _error_message(exc)
        soft = status >= 500 or status in (408, 429)
        return AttemptError(f"HTTP {status}: {message}", rejected=not soft)
    if isinstance(exc, httpx.HTTPError):
        return AttemptError(f"{what} broke off: {exc or type(exc).__name__}")
    return AttemptError(f"unexpected {type(exc).__name__}: {exc}")


def _root_cause(exc: BaseException) -> str:
    """The innermost useful reason: ``connection refused`` rather than the SDK's ``Connection error.``."""
    chain = _chain(exc)
    if any(
        isinstance(e, ConnectionRefusedError)
        or (isinstance(e, OSError) and e.errno == errno.ECONNREFUSED)
        or "refused" in str(e).lower()
        or "all connection attempts failed" in str(e).lower()
        for e in chain
    ):
        return "connection refused"
    last = chain[-1]
    return str(last) or type(last).__name__


def _error_message(exc: openai.APIStatusError) -> str:
    body = exc.body
    if isinstance(body, dict):
        detail = body.get("error", body.get("detail", body))
        if isinstance(detail, dict):
            detail = detail.get("message", detail)
        return str(detail)[:300]
    return (str(body) if body else exc.message)[:300]


class EndpointClient:
    """The pooled HTTP client plus one ``AsyncOpenAI`` per endpoint."""

    def __init__(self, settings: ProviderSettings) -> None:
        self._settings = settings
        self._http: httpx.AsyncClient | None = None
        self._sdks: dict[str, openai.AsyncOpenAI] = {}
        self._openai_host = urlsplit(settings.openai_base_url.lower()).netloc

    @property
    def http(self) -> httpx.AsyncClient:
        if self._http is None:
            limits = httpx.Limits(
                max_connections=self._settings.max_connections,
                max_keepalive_connections=10,
                keepalive_expiry=KEEPALIVE_EXPIRY,
            )
            self._http = httpx.AsyncClient(limits=limits, timeout=self._settings.request_timeout)
        return self._http

    async def aclose(self) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None
        self._sdks.clear()

    def connect_timeout(self, endpoint: Endpoint) -> float:
        s = self._settings
        return s.local_connect_timeout if endpoint.local else s.remote_connect_timeout

    def api_key(self, endpoint: Endpoint) -> str:
        """The OpenAI key goes to the OpenAI host only, the engine token to the daemon's own engines only,
        a plugin provider's key to its endpoints; other servers get a placeholder they ignore."""
        s = self._settings
        if s.openai_api_key and urlsplit(endpoint.url).netloc == self._openai_host:
            return s.openai_api_key
        if endpoint.source is Source.LOCAL:
            if key := s.endpoint_keys.get((endpoint.kind, endpoint.name)):
                return key
            if s.engine_token and endpoint.name in s.engines:
                return s.engine_token
        return _PLACEHOLDER_KEY

    @staticmethod
    async def load_sdk() -> None:
        """Import the SDK (once, ~0.5 s) in a worker thread, outside any request's deadline."""
        if "openai" not in sys.modules:
            await asyncio.to_thread(importlib.import_module, "openai")

    def sdk(self, endpoint: Endpoint) -> openai.AsyncOpenAI:
        client = self._sdks.get(endpoint.url)
        if client is None:
            import openai

            connect = self.connect_timeout(endpoint)
            read = self._settings.request_timeout
            client = openai.AsyncOpenAI(
                base_url=endpoint.url,
                api_key=self.api_key(endpoint),
                timeout=openai.Timeout(connect=connect, read=read, write=read, pool=connect),
                max_retries=0,
                # openai 3.x types this as httpx2 but accepts an httpx client; 1.x/2.x want httpx.
                http_client=cast(Any, self.http),
            )
            self._sdks[endpoint.url] = client
        return client

    @staticmethod
    async def _send(endpoint: Endpoint, request: Callable[[], Awaitable[T]]) -> T:
        """Make a request; when a stale kept-alive connection dies under it, once more on a fresh one."""
        try:
            return await request()
        except Exception as exc:
            if not stale_connection(exc):
                raise
            log.info("providers.stale_connection", endpoint=endpoint.url, error=_root_cause(exc))
        return await request()

    async def get_json(self, endpoint: Endpoint, url: str, timeout: float) -> tuple[int, Any]:
        """GET a JSON document (probe and discovery); the status comes back, errors are classified."""
        headers = {}
        key = self.api_key(endpoint)
        if key != _PLACEHOLDER_KEY:
            headers["Authorization"] = f"Bearer {key}"
        connect = min(self.connect_timeout(endpoint), timeout)
        try:
            async with asyncio.timeout(timeout):
                response = await self._send(
                    endpoint,
                    lambda: self.http.get(
                        url, headers=headers, timeout=httpx.Timeout(timeout, connect=connect)
                    ),
                )
        except Exception as exc:
            raise classify(exc, "answer", timeout) from exc
        if response.status_code >= 400:
            return response.status_code, None
        try:
            return response.status_code, response.json()
        except ValueError:
            return response.status_code, None

    async def stream_speech(
        self,
        endpoint: Endpoint,
        *,
        text: str,
        voice: str,
        model: str,
        speed: float | None,
        instructions: str | None,
        frame_bytes: int = 2,
    ) -> AsyncGenerator[bytes, None]:
        """Yield whole PCM frames as they arrive.

        The first audio must come within ``request_timeout`` and each later chunk within
        ``stream_timeout``; an empty, truncated or non-audio answer is an :class:`AttemptError`.
        """
        await self.load_sdk()
        settings = self._settings
        first_deadline = settings.request_timeout
        started = time.monotonic()
        extra: dict[str, Any] = {}
        if speed is not None:
            extra["speed"] = speed
        if instructions:
            extra["instructions"] = instructions
        what = "audio"

        async def open_stream() -> tuple[Any, Any]:
            opener = self.sdk(endpoint).audio.speech.with_streaming_response.create(
                input=text, voice=voice, model=model, response_format="pcm", **extra
            )
            return opener, await opener.__aenter__()

        try:
            async with asyncio.timeout(first_deadline):
                opener, response = await self._send(endpoint, open_stream)
        except Exception as exc:
            raise classify(exc, "response", first_deadline) from exc
        try:
            content_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
            if content_type and not content_type.startswith(AUDIO_CONTENT_TYPES):
                raise AttemptError(f"answered {content_type!r} instead of audio")
            chunks = response.iter_bytes().__aiter__()
            remainder = b""
            received = 0
            timeout = first_deadline - (time.monotonic() - started)
            while True:
                try:
                    async with asyncio.timeout(max(timeout, 0.001)):
                        chunk = await chunks.__anext__()
                except StopAsyncIteration:
                    break
                except TimeoutError as exc:
                    phase = "audio" if received == 0 else "audio for longer than"
                    limit = first_deadline if received == 0 else settings.stream_timeout
                    raise AttemptError(
                        f"no {phase} {limit:g} s (stalled)", hard=True, timed_out=True
                    ) from exc
                timeout = settings.stream_timeout
                received += len(chunk)
                data = remainder + chunk
                cut = len(data) - len(data) % frame_bytes
                remainder = data[cut:]
                if cut:
                    yield data[:cut]
            if received == 0:
                raise AttemptError("answered with no audio")
            if remainder:
                raise AttemptError(f"audio ended mid-sample after {received} bytes (truncated)")
        except AttemptError:
            raise
        except GeneratorExit:
            raise
        except Exception as exc:
            raise classify(exc, what, settings.stream_timeout) from exc
        finally:
            await opener.__aexit__(None, None, None)

    async def transcribe(
        self,
        endpoint: Endpoint,
        *,
        audio: bytes,
        filename: str,
        model: str,
        language: str | None,
        prompt: str | None,
    ) -> Heard:
        """One transcription under a single deadline; returns the text and Whisper's confidence."""
        await self.load_sdk()
        timeout = self._settings.request_timeout
        extra: dict[str, Any] = {}
        if language:
            extra["language"] = language
        if prompt:
            extra["prompt"] = prompt
        try:
            async with asyncio.timeout(timeout):
                result = await self._send(
                    endpoint,
                    lambda: self.sdk(endpoint).audio.transcriptions.create(
                        file=(filename, audio), model=model, response_format="json", **extra
                    ),
                )
        except Exception as exc:
            raise classify(exc, "transcript", timeout) from exc
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise AttemptError(f"answered without a transcript ({type(result).__name__})")
        return Heard(
            text, _number(result, "avg_logprob"), _number(result, "no_speech_prob"), _language(result)
        )


@dataclass(frozen=True, slots=True)
class Heard:
    """A transcript and, when the server reports it (our engines do; OpenAI's ``json`` does not),
    Whisper's confidence: the lowest segment average log-probability, the highest no-speech probability."""

    text: str
    avg_logprob: float | None = None
    no_speech_prob: float | None = None
    language: str = ""
    """The language Whisper heard (our engines add it to ``json``; OpenAI's ``json`` does not)."""


def _language(result: object) -> str:
    """The extra ``language`` field of the SDK's response model, when it is a plausible language code."""
    value = getattr(result, "language", None) or (getattr(result, "model_extra", None) or {}).get("language")
    return value.lower() if isinstance(value, str) and 2 <= len(value) <= 3 and value.isalpha() else ""


def _number(result: object, name: str) -> float | None:
    """An extra numeric field of the SDK's response model (kept in ``model_extra``), if present."""
    value = getattr(result, name, None)
    if value is None:
        extra = getattr(result, "model_extra", None) or {}
        value = extra.get(name)
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None

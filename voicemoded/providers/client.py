"""Talking to one endpoint through the official ``openai`` SDK, with every failure classified.

One pooled ``httpx.AsyncClient`` is shared by all endpoints (connections to a local child stay warm);
each endpoint gets its own ``AsyncOpenAI`` with its own timeouts and ``max_retries=0``, because retrying is
the router's decision (the next endpoint, not the same one again). Every error leaves this module as an
:class:`AttemptError` that says whether it was the endpoint's fault, and how hard a fault it was.
"""

from __future__ import annotations

import asyncio
import errno
import importlib
import sys
import time
from collections.abc import AsyncGenerator
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

import httpx
import structlog

from voicemoded.providers.endpoint import Endpoint
from voicemoded.providers.settings import ProviderSettings

if TYPE_CHECKING:
    # The SDK costs ~40 MiB of memory; it is imported on the first real request, not at start-up.
    import openai

log = structlog.get_logger(__name__)

#: Content types a PCM stream may arrive with; anything else (an HTML error page, JSON) is not audio.
AUDIO_CONTENT_TYPES = ("audio/", "application/octet-stream", "binary/octet-stream")
_PLACEHOLDER_KEY = "voicemode-local"


class AttemptError(Exception):
    """Why one attempt at one endpoint failed.

    ``hard``: refused or timed out, the endpoint is down (open its breaker at once). ``rejected``: the
    endpoint answered and refused this request (HTTP 4xx), so it is healthy and the request is not.
    """

    def __init__(self, reason: str, *, hard: bool = False, rejected: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason
        self.hard = hard
        self.rejected = rejected

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
        return AttemptError(f"no {what} within {timeout:g} s", hard=True)
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
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and current not in seen:
        seen.append(current)
        if isinstance(current, ConnectionRefusedError) or (
            isinstance(current, OSError) and current.errno == errno.ECONNREFUSED
        ):
            return "connection refused"
        current = current.__cause__ or current.__context__
    if any("refused" in str(e).lower() or "all connection attempts failed" in str(e).lower() for e in seen):
        return "connection refused"
    last = seen[-1]
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
                max_connections=self._settings.max_connections, max_keepalive_connections=10
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
        """The OpenAI key goes to the OpenAI host only; local servers get a placeholder they ignore."""
        if self._settings.openai_api_key and urlsplit(endpoint.url).netloc == self._openai_host:
            return self._settings.openai_api_key
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

    async def get_json(self, endpoint: Endpoint, url: str, timeout: float) -> tuple[int, Any]:
        """GET a JSON document (probe and discovery); the status comes back, errors are classified."""
        headers = {}
        key = self.api_key(endpoint)
        if key != _PLACEHOLDER_KEY:
            headers["Authorization"] = f"Bearer {key}"
        connect = min(self.connect_timeout(endpoint), timeout)
        try:
            async with asyncio.timeout(timeout):
                response = await self.http.get(
                    url,
                    headers=headers,
                    timeout=httpx.Timeout(timeout, connect=connect),
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
        try:
            async with asyncio.timeout(first_deadline):
                opener = self.sdk(endpoint).audio.speech.with_streaming_response.create(
                    input=text, voice=voice, model=model, response_format="pcm", **extra
                )
                response = await opener.__aenter__()
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
                    raise AttemptError(f"no {phase} {limit:g} s (stalled)", hard=True) from exc
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
    ) -> str:
        """One transcription under a single deadline; returns the text."""
        await self.load_sdk()
        timeout = self._settings.request_timeout
        extra: dict[str, Any] = {}
        if language:
            extra["language"] = language
        if prompt:
            extra["prompt"] = prompt
        try:
            async with asyncio.timeout(timeout):
                result = await self.sdk(endpoint).audio.transcriptions.create(
                    file=(filename, audio), model=model, response_format="json", **extra
                )
        except Exception as exc:
            raise classify(exc, "transcript", timeout) from exc
        text = getattr(result, "text", None)
        if not isinstance(text, str):
            raise AttemptError(f"answered without a transcript ({type(result).__name__})")
        return text

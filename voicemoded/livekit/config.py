"""The config the supervised livekit-server runs with, generated from the settings.

Always a config file, never ``--dev`` (whose key pair everyone knows): bound to loopback unless
``VOICEMODE_SERVICE_HOST`` says otherwise, media on its own UDP range, and the API key read from the 0600
key file, so the secret is in neither the command line nor this file.
"""

from __future__ import annotations

import ipaddress
import json
from dataclasses import dataclass
from pathlib import Path

from voicemoded.api.loopback import is_loopback_address
from voicemoded.config.envfile import atomic_write
from voicemoded.livekit.credentials import ensure_private_folder

CONFIG_FILE_NAME = "livekit.yaml"


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """What the generated ``livekit.yaml`` says."""

    port: int
    key_file: Path
    """The 0600 ``"<key>": "<secret>"`` file (livekit-server refuses one others can read)."""
    host: str = "127.0.0.1"
    rtc_ports: tuple[int, int] = (50000, 50100)
    """UDP ports for media, first and last."""
    redis: str = ""
    """``host:port`` of a Redis shared with other nodes; empty: a single node."""

    def document(self) -> dict[str, object]:
        loopback = is_loopback_address(self.host)
        rtc: dict[str, object] = {
            "port_range_start": self.rtc_ports[0],
            "port_range_end": self.rtc_ports[1],
            "use_external_ip": False,
            # The TCP fallback listens on every address whatever the bind: only offered beyond loopback.
            "tcp_port": 0 if loopback else self.port + 1,
        }
        address = _media_address(self.host)
        if address is not None:
            # Media on the bound address only, announced as it is (no STUN lookup of a public address).
            bits = 32 if address.version == 4 else 128
            rtc |= {"node_ip": str(address), "ips": {"includes": [f"{address}/{bits}"]}}
            if loopback:
                rtc["enable_loopback_candidate"] = True
        doc: dict[str, object] = {
            "port": self.port,
            "bind_addresses": [self.host.strip("[]")],
            "rtc": rtc,
            "key_file": str(self.key_file),
            "logging": {"level": "info", "json": False},
        }
        if self.redis:
            doc["redis"] = {"address": self.redis}
        return doc

    def text(self) -> str:
        """The config as YAML (JSON is YAML, and needs no quoting rules of its own)."""
        return json.dumps(self.document(), indent=2) + "\n"


def _media_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The one address media may use: the bound one; None when bound to every address (or a name)."""
    name = host.strip("[]")
    try:
        address = ipaddress.ip_address("127.0.0.1" if name == "localhost" else name)
    except ValueError:
        return None
    return None if address.is_unspecified else address


def parse_rtc_ports(text: str) -> tuple[int, int]:
    """``"50000-50100"`` (already validated by the settings) -> ``(50000, 50100)``."""
    first, _, last = text.partition("-")
    return int(first), int(last)


def write_config(path: Path, config: ServerConfig) -> None:
    """Write the config 0600 in a 0700 folder; readers see the old file or the new one."""
    ensure_private_folder(path.parent)
    if path.is_file() and path.read_text(encoding="utf-8", errors="replace") == config.text():
        return
    atomic_write(path, config.text())

"""The embedded engines of a test or benchmark daemon: each on a free port, started and waited for.

A daemon started by a test must never take an engine's default port (another daemon, or a user's own,
may hold it), and a turn must not begin before its engines answer.
"""

from __future__ import annotations

from collections.abc import Iterable

from voicemoded.api.client import Client
from voicemoded.api.v1 import services_pb2
from voicemoded.testing.ports import free_port

ENGINE_PORTS = {
    "whisper": "VOICEMODE_WHISPER_PORT",
    "kokoro": "VOICEMODE_KOKORO_PORT",
    "piper": "VOICEMODE_PIPER_PORT",
}
"""Each embedded engine's port setting."""


def engine_env(autostart: Iterable[str] = ()) -> dict[str, str]:
    """Every embedded engine on a free port, and the services the daemon starts by itself."""
    env = {setting: str(free_port()) for setting in ENGINE_PORTS.values()}
    env["VOICEMODE_AUTOSTART_SERVICES"] = ",".join(autostart)
    return env


def start_services(
    client: Client, names: Iterable[str], timeout: float = 300
) -> dict[str, services_pb2.ServiceInfo]:
    """Start each service (a running one is left as it is) once it answers; what each reports, by name."""
    return {
        name: client.call(
            client.supervisor.StartService, services_pb2.ServiceRequest(name=name), timeout=timeout
        )
        for name in names
    }

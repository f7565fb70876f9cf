"""The daemon's ``web`` service: the door as a child, probed on /healthz, off unless asked for."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from voicemoded.supervisor.builtin import BuiltinService, BuiltinSettings, builtin_specs
from voicemoded.supervisor.spec import HttpProbe, ServiceSpec


def web(settings: BuiltinSettings, find_spec: Callable[[str], object] | None = None) -> ServiceSpec:
    return next(s for s in builtin_specs(settings, find_spec=find_spec) if s.name == "web")


def test_the_door_runs_on_its_port_with_the_daemons_socket() -> None:
    spec = web(BuiltinSettings(python="/opt/py", socket=Path("/run/vm/voicemoded.sock")))
    assert spec.command == (
        "/opt/py", "-m", "voicemode_web", "--host", "127.0.0.1", "--port", "8790",
        "--socket", "/run/vm/voicemoded.sock",
    )  # fmt: skip
    assert (spec.host, spec.port) == ("127.0.0.1", 8790)
    assert spec.probe == HttpProbe("/healthz") and spec.not_installed is None
    assert spec.autostart is False, "installed is not reason enough to open a port"


def test_autostart_and_the_address_are_the_settings() -> None:
    spec = web(BuiltinSettings(web=BuiltinService(port=9000, host="0.0.0.0", autostart=True)))
    assert spec.autostart and (spec.host, spec.port) == ("0.0.0.0", 9000)
    assert "--socket" not in spec.command, "no socket named: the door looks where voicemodectl does"


def test_without_the_web_extra_starting_says_what_to_install() -> None:
    spec = web(BuiltinSettings(), find_spec=lambda name: None if name == "starlette" else object())
    assert spec.not_installed is not None and "starlette" in spec.not_installed.message
    assert spec.not_installed.hint == "pip install 'voicemode[web]'"

"""The supervised livekit-server's generated config and spec: loopback bind, its own RTC ports, the key
file instead of a key on the command line, Redis only when asked, never ``--dev``; and where the binary
is looked for, in order."""

from __future__ import annotations

import json
import stat
from dataclasses import replace
from pathlib import Path

import pytest
import yaml

from voicemoded.api.paths import Paths
from voicemoded.config import Settings
from voicemoded.livekit.binary import find_server, pinned_binary
from voicemoded.livekit.config import ServerConfig, write_config
from voicemoded.livekit.credentials import keys_file
from voicemoded.supervisor.spec import HttpProbe
from voicemoded.wiring import livekit_config, service_specs


def program(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("#!/bin/sh\nexec sleep 600\n")
    path.chmod(0o755)
    return path


def paths(tmp_path: Path) -> Paths:
    return Paths(base=tmp_path / "base", socket=tmp_path / "s.sock")


def test_loopback_config_keeps_signalling_and_media_on_loopback(tmp_path: Path) -> None:
    doc = ServerConfig(port=7880, key_file=tmp_path / "keys.yaml", rtc_ports=(50000, 50100)).document()
    assert doc["port"] == 7880 and doc["bind_addresses"] == ["127.0.0.1"]
    assert doc["rtc"] == {
        "port_range_start": 50000,
        "port_range_end": 50100,
        "use_external_ip": False,
        "tcp_port": 0,  # livekit-server's TCP fallback would listen on every address
        "node_ip": "127.0.0.1",
        "enable_loopback_candidate": True,
        "ips": {"includes": ["127.0.0.1/32"]},
    }
    assert doc["key_file"] == str(tmp_path / "keys.yaml")
    assert "keys" not in doc and "redis" not in doc and "development" not in doc


def test_a_wider_bind_offers_the_tcp_fallback_and_redis_only_when_set(tmp_path: Path) -> None:
    config = ServerConfig(port=7990, key_file=tmp_path / "k", host="0.0.0.0", redis="127.0.0.1:6379")
    doc = config.document()
    assert doc["bind_addresses"] == ["0.0.0.0"]
    rtc = doc["rtc"]
    assert isinstance(rtc, dict) and rtc["tcp_port"] == 7991 and "node_ip" not in rtc
    assert doc["redis"] == {"address": "127.0.0.1:6379"}
    lan = ServerConfig(port=7880, key_file=tmp_path / "k", host="192.168.7.5").document()["rtc"]
    assert isinstance(lan, dict) and lan["node_ip"] == "192.168.7.5"
    assert lan["ips"] == {"includes": ["192.168.7.5/32"]} and "enable_loopback_candidate" not in lan
    six = ServerConfig(port=7880, key_file=tmp_path / "k", host="[::1]").document()
    six_rtc = six["rtc"]
    assert six["bind_addresses"] == ["::1"] and isinstance(six_rtc, dict)
    assert six_rtc["ips"] == {"includes": ["::1/128"]} and six_rtc["node_ip"] == "::1"
    assert six_rtc["enable_loopback_candidate"] and six_rtc["tcp_port"] == 0


def test_the_config_text_is_yaml_written_0600(tmp_path: Path) -> None:
    config = ServerConfig(port=7880, key_file=tmp_path / "keys.yaml")
    path = tmp_path / "lk" / "livekit.yaml"
    write_config(path, config)
    assert yaml.safe_load(path.read_text()) == config.document() == json.loads(path.read_text())
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_settings_reach_the_config(tmp_path: Path) -> None:
    settings = replace(
        Settings(), livekit_port=7990, livekit_rtc_ports="51000-51010", livekit_redis="127.0.0.1:6390"
    )
    config = livekit_config(settings, paths(tmp_path))
    assert config == ServerConfig(
        port=7990,
        key_file=keys_file(paths(tmp_path)),
        rtc_ports=(51000, 51010),
        redis="127.0.0.1:6390",
    )


def test_the_daemon_spec_runs_the_generated_config_never_dev(tmp_path: Path) -> None:
    binary = program(tmp_path / "bin" / "livekit-server")
    settings = replace(Settings(), livekit_server_path=str(binary))
    [spec] = [s for s in service_specs(settings, paths(tmp_path), {}) if s.name == "livekit"]
    config = paths(tmp_path).base / "livekit" / "livekit.yaml"
    assert spec.not_installed is None
    assert spec.command == (str(binary), "--config", str(config))
    assert "--dev" not in spec.command
    assert spec.probe == HttpProbe("/") and (spec.host, spec.port) == ("127.0.0.1", 7880)
    written = yaml.safe_load(config.read_text())
    key_file = Path(written["key_file"])
    assert key_file == keys_file(paths(tmp_path)) and stat.S_IMODE(key_file.stat().st_mode) == 0o600
    secret = key_file.read_text().split('"')[3]
    assert secret not in config.read_text() and all(secret not in arg for arg in spec.command)


def test_a_base_folder_that_refuses_the_config_leaves_the_service_listed_not_startable(
    tmp_path: Path,
) -> None:
    binary = program(tmp_path / "bin" / "livekit-server")
    base = tmp_path / "base"
    base.mkdir()
    (base / "livekit").write_text("a file where the folder should be")
    settings = replace(Settings(), livekit_server_path=str(binary))
    [spec] = [s for s in service_specs(settings, paths(tmp_path), {}) if s.name == "livekit"]
    assert spec.not_installed is not None and "livekit" in spec.not_installed.message


def test_discovery_order_configured_path_then_path_then_the_pinned_build(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    on_path = tmp_path / "bin"
    assert find_server("", cache, str(on_path)) is None
    built = program(pinned_binary(cache).parent / "server")  # the name `go install` gives it
    assert find_server("", cache, str(on_path)) == built
    renamed = program(pinned_binary(cache))
    assert find_server("", cache, str(on_path)) == renamed
    assert find_server("", None, str(on_path)) is None  # no cache given: PATH only
    found = program(on_path / "livekit-server")
    assert find_server("", cache, str(on_path)) == found
    configured = program(tmp_path / "mine" / "lk")
    assert find_server(str(configured), cache, str(on_path)) == configured
    assert find_server(str(tmp_path / "missing"), cache, str(on_path)) is None  # no silent fallback


def test_the_cache_setting_moves_the_pinned_build(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    built = program(pinned_binary(tmp_path / "elsewhere"))
    settings = replace(Settings(), livekit_cache=str(tmp_path / "elsewhere"))
    [spec] = [s for s in service_specs(settings, paths(tmp_path), {}) if s.name == "livekit"]
    assert spec.not_installed is None and spec.command[0] == str(built)


def test_a_spec_built_without_its_config_cannot_start(tmp_path: Path) -> None:
    from voicemoded.supervisor.builtin import BuiltinSettings, builtin_specs

    program(tmp_path / "bin" / "livekit-server")
    [spec] = [
        s for s in builtin_specs(BuiltinSettings(), search_path=str(tmp_path / "bin")) if s.name == "livekit"
    ]
    assert spec.not_installed is not None and "config" in spec.not_installed.message
    assert not spec.autostart

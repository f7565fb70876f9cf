"""The LiveKit settings: no development key by default, an empty URL meaning the supervised server, and
the RTC port range and Redis read from the user's file."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicemoded.api.errors import InvalidArgument
from voicemoded.api.paths import Paths
from voicemoded.config import Settings
from voicemoded.config.layers import Caller
from voicemoded.config.manager import ConfigManager
from voicemoded.config.schema import ENDPOINT_KEYS, parse_port_range


def manager(base: Path, text: str) -> ConfigManager:
    base.mkdir(parents=True, exist_ok=True)
    (base / "voicemode.env").write_text(text)
    config = ConfigManager(Paths(base=base, socket=base / "s"), {})
    config.load()
    return config


def test_defaults_name_no_deployment_and_no_well_known_key() -> None:
    settings = Settings()
    assert (settings.livekit_url, settings.livekit_api_key, settings.livekit_api_secret) == ("", "", "")
    assert settings.livekit_rtc_ports == "50000-50100" and settings.livekit_redis == ""


def test_the_user_file_sets_the_ports_redis_and_an_empty_url(tmp_path: Path) -> None:
    text = "LIVEKIT_URL=\nVOICEMODE_LIVEKIT_RTC_PORTS=51000 - 51020\nVOICEMODE_LIVEKIT_REDIS=127.0.0.1:6390\n"
    settings = manager(tmp_path, text).settings
    assert settings.livekit_url == ""
    assert settings.livekit_rtc_ports == "51000-51020"
    assert settings.livekit_redis == "127.0.0.1:6390"


@pytest.mark.parametrize("text", ["50000", "50100-50000", "80-90", "50000-70000", "a-b", "50000-50000"])
def test_a_bad_port_range_says_what_is_expected(text: str) -> None:
    with pytest.raises(ValueError, match=r"port range|ascending"):
        parse_port_range(text)


def test_a_bad_range_in_the_callers_environment_names_the_key(tmp_path: Path) -> None:
    config = manager(tmp_path, "")
    with pytest.raises(InvalidArgument) as info:
        config.resolve(Caller(cwd="/", env={"VOICEMODE_LIVEKIT_RTC_PORTS": "7"}))
    assert info.value.fields["key"] == "VOICEMODE_LIVEKIT_RTC_PORTS"


def test_where_media_goes_is_guarded_like_other_endpoints() -> None:
    assert {
        "LIVEKIT_URL",
        "LIVEKIT_API_KEY",
        "LIVEKIT_API_SECRET",
        "VOICEMODE_LIVEKIT_REDIS",
    } <= ENDPOINT_KEYS
    assert "VOICEMODE_LIVEKIT_CACHE" in ENDPOINT_KEYS  # it decides which program the daemon runs

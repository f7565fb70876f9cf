"""A plugin's service can be named in VOICEMODE_AUTOSTART_SERVICES; a name nothing provides is said."""

from __future__ import annotations

import pytest

from voicemoded.config.parsers import parse_services
from voicemoded.config.schema import Settings
from voicemoded.supervisor.spec import ServiceSpec
from voicemoded.wiring import plugin_specs, unprovided_autostart


def test_a_plugins_service_name_is_accepted_and_a_path_is_not() -> None:
    assert parse_services("whisper, Example-TTS") == ("whisper", "example-tts")
    with pytest.raises(ValueError, match=r"unknown service '\.\./x'"):
        parse_services("whisper,../x")


def test_a_plugin_service_named_in_the_list_starts_with_the_daemon() -> None:
    settings = Settings(autostart_services=("whisper", "example"))
    specs = [ServiceSpec(name="example", command=("true",)), ServiceSpec(name="other", command=("true",))]
    assert [(s.name, s.autostart) for s in plugin_specs(settings, specs)] == [("example", True), ("other", False)]


def test_names_no_service_provides_are_found_once_plugins_are_known() -> None:
    settings = Settings(autostart_services=("whisper", "example", "wisper"))
    assert unprovided_autostart(settings, ["example"]) == ["wisper"]
    assert unprovided_autostart(settings, []) == ["example", "wisper"]

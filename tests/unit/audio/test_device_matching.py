"""Which sound-server device a name or part of one picks: exact before partial, microphones before monitors."""

from __future__ import annotations

from voicemoded.audio.devices import DeviceInfo, Route, _match_server


def source(name: str, description: str) -> DeviceInfo:
    return DeviceInfo(-1, name, 2, 0, 48_000, "PulseAudio", description=description, server_device=True)


MONITOR = source("alsa_output.usb-Headset.analog-stereo.monitor", "Monitor of USB Headset Analog Stereo")
HEADSET = source("alsa_input.usb-Headset.mono-fallback", "USB Headset Mono")
BUILTIN = source("alsa_input.pci-0000_00_1f.3.analog-stereo", "Built-in Audio Analog Stereo")
SOURCES = [MONITOR, HEADSET, BUILTIN]


def test_part_of_a_description_prefers_a_microphone_to_a_sinks_monitor() -> None:
    assert _match_server(SOURCES, "usb headset") == HEADSET
    assert _match_server(SOURCES, "built-in") == BUILTIN


def test_an_exact_name_or_description_wins_over_a_partial_match() -> None:
    assert _match_server(SOURCES, MONITOR.name.lower()) == MONITOR
    assert _match_server(SOURCES, "monitor of usb headset analog stereo") == MONITOR


def test_nothing_matching_is_none() -> None:
    assert _match_server(SOURCES, "bluetooth") is None


def test_a_route_to_a_server_device_names_it_for_libpulse() -> None:
    pulse = DeviceInfo(3, "pulse", 32, 32, 44_100, "ALSA")
    assert Route("input", pulse, HEADSET).env == {"PULSE_SOURCE": HEADSET.name}
    assert Route("output", pulse).env == {} and Route("output", pulse).name == "pulse"

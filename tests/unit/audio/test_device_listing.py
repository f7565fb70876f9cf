"""What ``voicemodectl devices`` is sent for each device: selection by the settings, and what is open now."""

from __future__ import annotations

from voicemoded.app.devices import DeviceList
from voicemoded.audio.devices import DeviceInfo
from voicemoded.rpc import convert

DEFAULT = DeviceInfo(1, "default", 32, 32, 44_100, "ALSA", is_default_input=True, is_default_output=True)
HEADSET = DeviceInfo(
    -1, "usb_headset", 0, 2, 48_000, "PulseAudio", description="USB Headset", server_device=True
)
MIC = DeviceInfo(-1, "usb_headset.monitor", 2, 0, 48_000, "PulseAudio", server_device=True)
BUILTIN = DeviceInfo(-1, "builtin", 0, 2, 48_000, "PulseAudio", is_default_output=True, server_device=True)


def listing(*, input_target: str = "", output_target: str = "", open_input: str = "") -> DeviceList:
    return DeviceList(
        (HEADSET, MIC, BUILTIN, DEFAULT), 1, 1,
        input_target=input_target, output_target=output_target, open_input=open_input,
    )  # fmt: skip


def test_a_sound_server_device_is_selected_by_its_name_and_portaudios_by_index() -> None:
    found = listing(output_target="usb_headset", input_target="usb_headset.monitor")
    sent = {d.name: convert.device(d, found) for d in found.devices}
    assert sent["usb_headset"].selected_output and not sent["usb_headset"].selected_input
    assert sent["usb_headset.monitor"].selected_input
    assert not sent["builtin"].selected_output
    assert not sent["default"].selected_input, "marked where the stream goes, not where it opens"
    unrouted = {d.name: convert.device(d, listing()) for d in found.devices}
    assert unrouted["default"].selected_input and unrouted["default"].selected_output
    assert not any(unrouted[name].selected_output for name in ("usb_headset", "builtin"))
    assert sent["usb_headset"].description == "USB Headset" and sent["usb_headset"].index == -1


def test_in_use_marks_the_devices_with_a_stream_open_now() -> None:
    found = listing(open_input="usb_headset.monitor")
    sent = {d.name: convert.device(d, found) for d in found.devices}
    assert sent["usb_headset.monitor"].in_use
    assert not any(sent[name].in_use for name in ("usb_headset", "builtin", "default"))
    assert not any(convert.device(d, listing()).in_use for d in found.devices), "nothing open, nothing in use"

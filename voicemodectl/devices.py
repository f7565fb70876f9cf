"""voicemodectl devices: the audio devices the daemon sees and which ones it uses.

The sound server's sinks and sources (PulseAudio, PipeWire) come first, by their own names and
descriptions, with no PortAudio index (``-``): choose one by name or part of its description with
VOICEMODE_INPUT_DEVICE / VOICEMODE_OUTPUT_DEVICE. PortAudio's own devices follow.
"""

from __future__ import annotations

import argparse

from voicemodectl import output
from voicemoded.api.client import Client
from voicemoded.api.v1 import conversation_pb2


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("devices", help="audio input and output devices")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, client: Client) -> int:
    response = client.list_devices()
    failed = output.UNAVAILABLE if (response.input_error or response.output_error) else output.OK
    if args.json:
        output.print_json(response)
        return failed

    def mark(d: conversation_pb2.Device) -> str:
        marks = []
        if d.selected_input:
            marks.append("mic")
        if d.selected_output:
            marks.append("speaker")
        if d.default_input or d.default_output:
            marks.append("default")
        if d.in_use:
            marks.append("open")
        return ",".join(marks)

    described = any(d.description for d in response.devices)
    rows = [
        (
            d.index if d.index >= 0 else "-",
            d.name,
            *((d.description,) if described else ()),
            d.max_input_channels,
            d.max_output_channels,
            f"{d.default_sample_rate:.0f}",
            d.host_api,
            mark(d),
        )
        for d in response.devices
    ]
    headers = ["INDEX", "NAME", *(["DESCRIPTION"] if described else []), "IN", "OUT", "RATE", "HOST API"]
    print(output.table(rows, [*headers, "USED"]))
    for problem in (response.input_error, response.output_error):
        if problem:
            print(f"\n{problem}")
    return failed

"""voicemodectl devices: the audio devices the daemon sees and which ones it uses."""

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
        return ",".join(marks)

    rows = [
        (
            d.index,
            d.name,
            d.max_input_channels,
            d.max_output_channels,
            f"{d.default_sample_rate:.0f}",
            d.host_api,
            mark(d),
        )
        for d in response.devices
    ]
    print(output.table(rows, ["INDEX", "NAME", "IN", "OUT", "RATE", "HOST API", "USED"]))
    for problem in (response.input_error, response.output_error):
        if problem:
            print(f"\n{problem}")
    return failed

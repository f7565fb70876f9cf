"""A spoken turn through a LiveKit room against the same turn on the local (virtual) devices.

One voicemoded with its embedded Whisper tiny.en and Piper engines, one private PulseAudio rig, one real
livekit-server on loopback. In the room a Python participant (the LiveKit rtc SDK) is the person: it hears
the assistant's track and answers into its own. On the local devices the person is the rig: the message
is heard on the speaker's monitor and the answer played into the virtual microphone. Both transports ask
the same question and hear the same answer (one Piper rendering, spoken the moment the daemon reports
``listening``); rounds alternate between them so machine noise falls on both.

The figures, each timed from the person's side with the same definition for both transports:

- time to first audio: the call to the first sounding sample the person hears (room: the first
  non-silent frame the participant receives; local: the first played sample on the speaker's monitor);
- last voiced sample -> result returned: from the last loud sample of the answer as it left the person
  (room: out of the participant's audio source; local: played into the microphone) to the result;
- whole turn minus the audio's own length: call to result, less the heard message and the answer.

Each figure also has the daemon's own account beside it (``TurnTimings.ttfa``, ``endpoint_delay``).
Median and p90 of N rounds per transport, and the room's median over the local one.

Then N messages through the room from a second daemon whose speech is a chirp (its only TTS endpoint): the
first and last 30 ms the person heard, found in the chirp by cross-correlation, say how much of the
message's start and end never reached them.

Run: .venv/bin/python benchmarks/livekit_turn.py [--rounds 5] [--verbose]
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from conversation_turn import ANSWER, KIND, LISTEN_MAX, LOUD, QUESTION, Bench, Ear, Sound, Turn, ours

from voicemoded.api.client import Client, ClientError, TurnOptions
from voicemoded.audio.format import AudioFormat
from voicemoded.testing.demo import ENGINES, start_daemon, synthesize
from voicemoded.testing.livekit import (
    ChirpEndpoint,
    LiveKitServer,
    Person,
    absent_reason,
    running_livekit,
    server_binary,
    where_in_chirp,
)
from voicemoded.testing.rig import VirtualAudioRig
from voicemoded.testing.services import engine_env, start_services

ROOM = "bench-room"
FLOOR = 16
"""A received frame whose peak is above this is sounding (the decoder's silence reaches a few units)."""
MAX_GAP = 0.3
"""Quiet inside the message shorter than this is part of it, as for the ears of conversation_turn.py."""
HUSH_AFTER = 20.0
"""The participant stops sending silence after this long if the turn never ends."""
CHIRP_S = 1.0
"""The chirp spoken into the room to find which part of a message the person misses."""


@dataclass(frozen=True)
class Answer:
    """The person's answer: Piper's PCM, spoken into the local microphone and into the room alike."""

    pcm: bytes
    format: AudioFormat
    tail: float
    """Seconds after its last loud sample."""
    seconds: float
    """The answer's own length: first to last non-zero sample, as an ear would widen it."""

    @classmethod
    def of(cls, pcm: bytes, rate: int) -> Answer:
        samples = np.frombuffer(pcm, dtype="<i2")
        loud = np.flatnonzero(np.abs(samples.astype(np.int32)) > LOUD)
        tail = (len(samples) - int(loud[-1]) - 1) / rate
        nonzero = np.flatnonzero(samples)
        seconds = (int(nonzero[-1]) - int(nonzero[0]) + 1) / rate
        return cls(pcm, AudioFormat(rate, 2, 1), tail, seconds)


def heard_message(person: Person, since: float, until: float) -> Sound | None:
    """The message as the person heard it: the first loud stretch after ``since`` (quiet under
    ``MAX_GAP`` inside), widened through the sounding frames around it.

    Its start is when the first sounding frame began (its arrival less its length); its length is
    counted in samples, so jitter in the frames' arrival does not stretch or shrink it.
    """
    frames = person.frames(since, until)
    first_loud = next((f for f in frames if f.peak > LOUD), None)
    if first_loud is None:
        return None
    frames = [f for f in frames if f.track == first_loud.track]
    loud = [i for i, f in enumerate(frames) if f.peak > LOUD]
    first = last = loud[0]
    for i in loud[1:]:
        if frames[i].at - frames[last].at > MAX_GAP:
            break
        last = i
    begin, end = first, last
    while begin > 0 and frames[begin - 1].peak > FLOOR:
        begin -= 1
    while end + 1 < len(frames) and frames[end + 1].peak > FLOOR:
        end += 1

    def length(a: int, b: int) -> float:
        return sum(f.seconds for f in frames[a:b])

    start = frames[begin].at - frames[begin].seconds
    return Sound(start, start + length(begin, first), start + length(begin, last + 1),
                 start + length(begin, end + 1))  # fmt: skip


def room_turn(
    client: Client, person: Person, loop: asyncio.AbstractEventLoop, answer: Answer, verbose: bool
) -> Turn:
    """One turn through the room, timed by the participant; run in a thread beside the room's loop."""
    turn, result = Turn(), None
    hush = threading.Event()
    answering: concurrent.futures.Future[float] | None = None
    options = TurnOptions(listen_duration_max=LISTEN_MAX, transport="livekit", room=ROOM)
    called = time.monotonic()
    try:
        for event in client.converse(QUESTION, options):
            kind = KIND.get(event.kind, "?")
            if kind == "listening" and answering is None:
                speech = person.say(answer.pcm, answer.format.rate, silence_s=HUSH_AFTER, hush=hush.is_set)
                answering = asyncio.run_coroutine_threadsafe(speech, loop)
            elif kind == "done":
                result = event.result
    except ClientError as exc:
        turn.notes.append(f"error: {exc}")
    returned = time.monotonic()
    hush.set()
    voice_end = answering.result(HUSH_AFTER + 30) - answer.tail if answering is not None else None
    if result is None:
        turn.notes.append("no result")
        return turn
    turn.text = result.text
    t = result.timings
    turn.self_ttfa, turn.self_endpoint = t.ttfa, t.endpoint_delay
    message = heard_message(person, called, returned)
    if message is None:
        turn.notes.append("the participant heard no message")
        return turn
    turn.ttfa = message.start - called
    if voice_end is None:
        turn.notes.append("the daemon never listened")
        return turn
    turn.endpoint = returned - voice_end
    turn.overhead = (returned - called) - message.seconds - answer.seconds
    if verbose:
        turn.notes.append(
            f"message heard {message.seconds:.3f} s (loud {message.loud_end - message.loud_start:.3f}) "
            f"of {t.playback:.3f} s played, stt {t.stt:.3f} s, end {result.end_reason}"
        )
    return turn


def local_turn(client: Client, bench: Bench) -> Turn:
    """The same turn on the local devices: conversation_turn.py's turn, timed by its two ears."""
    try:
        return ours(client, bench)
    except ClientError as exc:
        return Turn(notes=[f"error: {exc}"])


def chirp_turn(chirper: Client, person: Person) -> tuple[float, float] | str:
    """One message of the chirp daemon in the room: how much of its start and of its end the person did
    not hear (or why nothing could be told)."""
    try:
        for _ in chirper.speak("a chirp", TurnOptions(transport="livekit", room=ROOM)):
            pass
    except ClientError as exc:
        return f"error: {exc}"
    time.sleep(0.3)  # whatever is still on its way
    try:
        start, end = where_in_chirp(person.last_track(), CHIRP_S)
    except AssertionError as exc:
        return str(exc)
    return start, CHIRP_S - end


async def rounds(
    client: Client,
    bench: Bench,
    server: LiveKitServer,
    answer: Answer,
    chirper: Client,
    args: argparse.Namespace,
) -> tuple[list[Turn], list[Turn], list[tuple[float, float] | str]]:
    """One uncounted warm-up turn per transport, then ``count`` rounds, local and room in turn; then
    ``count`` chirps of the chirp daemon through the room."""
    loop = asyncio.get_running_loop()
    local: list[Turn] = []
    room: list[Turn] = []
    async with Person.joining(server, ROOM) as person:
        await asyncio.to_thread(local_turn, client, bench)
        await asyncio.to_thread(room_turn, client, person, loop, answer, args.verbose)
        for _ in range(args.rounds):
            local.append(await asyncio.to_thread(local_turn, client, bench))
            room.append(await asyncio.to_thread(room_turn, client, person, loop, answer, args.verbose))
        clips = [await asyncio.to_thread(chirp_turn, chirper, person) for _ in range(args.rounds)]
    return local, room, clips


def stats(values: list[float | None]) -> tuple[float, float] | None:
    got = [v for v in values if v is not None]
    if not got:
        return None
    return float(np.median(got)), float(np.percentile(got, 90))


def ms(value: float | None) -> str:
    return f"{value * 1000:7.0f}" if value is not None else "      -"


def report_clips(clips: list[tuple[float, float] | str]) -> None:
    """How much of a message the person missed in the room, from the chirps."""
    got = [c for c in clips if not isinstance(c, str)]
    print(f"\n{len(clips)} chirps of {CHIRP_S:g} s through the room; ms the person did not hear")
    for label, values in (("start", [c[0] for c in got]), ("end", [c[1] for c in got])):
        if values:
            each = " ".join(f"{v * 1000:.0f}" for v in values)
            print(f"  missing at the {label:5s}  median {np.median(values) * 1000:5.0f}  max {max(values) * 1000:5.0f}"
                  f"  ({each})")  # fmt: skip
    for problem in (c for c in clips if isinstance(c, str)):
        print(f"  {problem}")


def report(local: list[Turn], room: list[Turn]) -> None:
    figures: list[tuple[str, Callable[[Turn], float | None], Callable[[Turn], float | None]]] = [
        ("time to first audio heard", lambda t: t.ttfa, lambda t: t.self_ttfa),
        ("last voiced sample -> result returned", lambda t: t.endpoint, lambda t: t.self_endpoint),
        ("whole turn minus the audio's own length", lambda t: t.overhead, lambda _t: None),
    ]
    print(f"\n{len(local)} rounds; ms; heard: timed by the person; own: the daemon's TurnTimings (median)")
    print(f"  {'':40s} {'local (virtual devices)':>25s}   {'room (LiveKit)':>25s}   {'room/local':>10s}")
    print(f"  {'':40s} {'median':>7s} {'p90':>7s} {'own':>7s}   {'median':>7s} {'p90':>7s} {'own':>7s}")
    for label, heard, own in figures:
        cells, medians = [], []
        for turns in (local, room):
            got = stats([heard(t) for t in turns])
            mine = stats([own(t) for t in turns])
            medians.append(got[0] if got else None)
            cells.append(f"{ms(got[0] if got else None)} {ms(got[1] if got else None)} "
                         f"{ms(mine[0] if mine else None)}")  # fmt: skip
        low, high = medians
        ratio = f"{high / low:9.2f}x" if low and high is not None else "         -"
        print(f"  {label:40s} {cells[0]}   {cells[1]}   {ratio}")
    for name, turns in (("local", local), ("room", room)):
        for i, t in enumerate(turns, 1):
            extra = f"  [{'; '.join(t.notes)}]" if t.notes else ""
            print(f"  {name} {i}: {t.text!r}{extra}")


def run(args: argparse.Namespace) -> int:
    if server_binary() is None:
        print(f"no room figures: {absent_reason()}", file=sys.stderr)
        return 1
    root = Path(tempfile.mkdtemp(prefix="vm-lk-bench-"))
    (root / "home").mkdir()
    rig = VirtualAudioRig(root / "audio").start()
    chirp = ChirpEndpoint(tone_seconds=CHIRP_S)
    procs: list[subprocess.Popen[bytes]] = []
    ears: list[Ear] = []
    try:
        with running_livekit(root / "livekit") as server:
            env = {k: v for k, v in os.environ.items() if not k.startswith(("VOICEMODE_", "LIVEKIT_"))}
            env.update(
                HOME=str(root / "home"), VOICEMODE_BASE_DIR=str(root / "state"),
                VOICEMODE_CONFIG_WATCH="false", **engine_env(ENGINES),
                LIVEKIT_URL=server.url, LIVEKIT_API_KEY=server.api_key, LIVEKIT_API_SECRET=server.api_secret,
                **rig.env,
            )  # fmt: skip
            proc, client = start_daemon(root, env, "livekit-bench")
            procs.append(proc)
            # A second daemon, whose only speech endpoint is the chirp, in the same room.
            (root / "chirp").mkdir()
            chirps = {
                **env,
                "VOICEMODE_BASE_DIR": str(root / "chirp" / "state"),
                **engine_env(),
                **chirp.env(),
            }
            chirp_proc, chirper = start_daemon(root / "chirp", chirps, "livekit-bench-chirp")
            procs.append(chirp_proc)
            start_services(client, ENGINES)
            client.create_room(ROOM)
            pcm, rate = synthesize(client, ANSWER)
            answer = Answer.of(pcm, rate)
            ears = [Ear(rig, "speaker"), Ear(rig, "mic")]
            bench = Bench(rig, ears[0], ears[1], pcm, answer.format, args.verbose)
            print(
                f"livekit-server {server.url}; answer {answer.seconds:.2f} s; {args.rounds} rounds per transport"
            )
            local, room, clips = asyncio.run(rounds(client, bench, server, answer, chirper, args))
            report(local, room)
            report_clips(clips)
            client.close()
            chirper.close()
        return 0
    finally:
        for ear in ears:
            ear.close()
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
                proc.wait(20)
        rig.stop()
        chirp.close()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5, help="counted turns per transport (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (daemon and server logs)")
    parser.add_argument("--verbose", action="store_true", help="print each turn's details")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

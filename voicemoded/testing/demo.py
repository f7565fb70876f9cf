"""One spoken turn from a fresh machine: the README's first command runs this.

It starts voicemoded with the embedded engines (Whisper tiny.en for STT, Piper for TTS), speaks a
question, and prints what the person answered with the turn's timings. With no sound card it brings up
virtual devices and plays a scripted answer into the virtual microphone the moment the daemon starts
listening: an answer spoken by the embedded Piper engine, or a WAV you give with ``--answer``. With a
sound card (or ``--real``) you answer into your microphone instead.

The demo daemon is private (its own socket, state folder and ports) and stops when the demo ends, so it
never disturbs a voicemoded you already run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import wave
from pathlib import Path
from typing import TYPE_CHECKING

from voicemoded.api.client import Client
from voicemoded.api.v1 import conversation_pb2, providers_pb2
from voicemoded.testing.services import engine_env, start_services

if TYPE_CHECKING:
    from voicemoded.testing.rig import VirtualAudioRig

QUESTION = "Hello! I am your voice assistant. What would you like to work on today?"
ANSWER = "Let's write the release notes for version two, and then fix the failing login test."
ENGINES = ("whisper", "piper")
"""Whisper tiny.en hears, Piper speaks."""
KIND = {v.number: v.name.lower() for v in conversation_pb2.ConverseEvent.Kind.DESCRIPTOR.values}


def read_wav(path: Path) -> tuple[bytes, int, int, int]:
    with wave.open(str(path), "rb") as w:
        return w.readframes(w.getnframes()), w.getframerate(), w.getsampwidth(), w.getnchannels()


def synthesize(client: Client, text: str) -> tuple[bytes, int]:
    request = providers_pb2.SynthesizeRequest(caller=client.caller(), text=text, provider="piper")
    rate, chunks = 24000, []
    for chunk in client.stream(client.providers.Synthesize, request, timeout=120):
        if chunk.HasField("info"):
            rate = chunk.info.audio_format.rate or rate
        else:
            chunks.append(chunk.audio)
    return b"".join(chunks), rate


def start_daemon(
    root: Path, env: dict[str, str], client_name: str = "voicemode-demo"
) -> tuple[subprocess.Popen[bytes], Client]:
    """A private voicemoded under ``root``; on failure it is stopped and its log printed."""
    sock = root / "run" / "voicemoded.sock"
    log_path = root / "voicemoded.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "voicemoded", "--socket", str(sock), "--log-format", "json"],
            env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    client = Client(sock, client_name=client_name)
    try:
        client.wait_until_ready(30, alive=lambda: proc.poll() is None)
    except BaseException:
        proc.terminate()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(20)
        print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
        raise
    return proc, client


def run(args: argparse.Namespace) -> int:
    from voicemoded.testing.rig import VirtualAudioRig, has_sound_card

    virtual = args.virtual or (not args.real and not has_sound_card())
    root = Path(tempfile.mkdtemp(prefix="voicemode-demo-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEMODE_")}
    env.update(
        VOICEMODE_BASE_DIR=str(root / "state"),
        VOICEMODE_CONFIG_WATCH="false",
        **engine_env(ENGINES),
    )
    rig = VirtualAudioRig(root / "audio") if virtual else None
    proc: subprocess.Popen[bytes] | None = None
    try:
        if rig is not None:
            print("no sound card: using virtual devices (a speaker and a microphone on a private PulseAudio)")
            rig.start()
            env.update(rig.env)
        print("starting voicemoded with the embedded Whisper and Piper engines …", flush=True)
        t0 = time.monotonic()
        proc, client = start_daemon(root, env)
        for name, info in start_services(client, ENGINES).items():
            print(f"  {name}: ready on {info.url} (pid {info.pid})")
        print(f"  ready in {time.monotonic() - t0:.1f} s\n")

        answer: tuple[bytes, int, int, int] | None = None
        if rig is not None:
            if args.answer:
                answer = read_wav(args.answer)
            else:
                pcm, rate = synthesize(client, args.answer_text)
                answer = (pcm, rate, 2, 1)
        return converse(client, rig, answer, args.question)
    finally:
        if proc is not None and proc.poll() is None:
            proc.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(20)
        if rig is not None:
            rig.stop()


def converse(
    client: Client, rig: VirtualAudioRig | None, answer: tuple[bytes, int, int, int] | None, question: str
) -> int:
    from voicemoded.audio.format import AudioFormat

    request = conversation_pb2.ConverseRequest(
        caller=client.caller(), message=question, listen_duration_max=30
    )
    speaker_thread: threading.Thread | None = None
    print(f"assistant: {question}")
    result = None
    for event in client.stream(client.conversation.Converse, request, timeout=120):
        kind = KIND.get(event.kind, "?")
        print(f"  [{event.t:6.2f} s] {kind}{' ' + event.detail if event.detail else ''}", flush=True)
        if kind == "listening":
            if answer is None or rig is None:
                print("  (speak now)")
            else:
                pcm, rate, width, channels = answer
                fmt = AudioFormat(rate, width, channels)
                scripted = rig.play_into_mic(pcm, fmt)
                speaker_thread = threading.Thread(target=asyncio.run, args=(scripted,), daemon=True)
                speaker_thread.start()
        if kind == "done":
            result = event.result
    if speaker_thread is not None:
        speaker_thread.join(30)
    if result is None:
        print("the turn ended without a result")
        return 1
    t = result.timings
    print(f"\nperson:    {result.text or '(nothing heard)'}   [{result.end_reason}]")
    print(
        f"\ntimings: time to first audio {t.ttfa * 1000:.0f} ms · speech {t.playback:.2f} s · "
        f"end of playback → microphone open {t.mic_gap * 1000:.0f} ms · listened {t.record:.2f} s · "
        f"last voiced sample → transcript {t.endpoint_delay * 1000:.0f} ms · STT {t.stt * 1000:.0f} ms · "
        f"whole turn {t.total:.2f} s"
    )
    print(f"voices: {result.tts_provider} ({result.voice}) → {result.stt_provider}")
    return 0 if result.text else 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m voicemoded.testing.demo", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--question", default=QUESTION, help="what the assistant says")
    parser.add_argument(
        "--answer-text", default=ANSWER, help="what the scripted person says (spoken by Piper)"
    )
    parser.add_argument("--answer", type=Path, help="a WAV file the scripted person plays instead")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--virtual", action="store_true", help="use virtual devices even with a sound card")
    mode.add_argument("--real", action="store_true", help="use the sound card: you answer")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

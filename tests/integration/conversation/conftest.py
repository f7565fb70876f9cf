"""A real daemon with the embedded Whisper and Piper engines on virtual audio devices.

One rig and one daemon serve the whole folder (starting the engines is the slow part); each test gets
a fresh view of them. The scripted person's answers are spoken by the same Piper voice the daemon's
engine uses, in-process and without Piper's random variation, so every run hears the same answers.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import grpc
import pytest

from voicemoded.api.client import Client
from voicemoded.api.v1 import conversation_pb2
from voicemoded.audio.format import AudioFormat
from voicemoded.audio.resample import resample
from voicemoded.testing.daemon import DaemonHandle, engines_daemon
from voicemoded.testing.person import Voice
from voicemoded.testing.rig import VirtualAudioRig

KIND = {v.number: v.name.lower() for v in conversation_pb2.ConverseEvent.Kind.DESCRIPTOR.values}
TTS_FORMAT = AudioFormat(24000, 2, 1)


@dataclass
class Turn:
    events: list[tuple[str, float]] = field(default_factory=list)
    details: dict[str, str] = field(default_factory=dict)
    result: conversation_pb2.TurnResult | None = None
    error: grpc.RpcError | None = None

    def kinds(self) -> list[str]:
        return [k for k, _ in self.events]

    def at(self, kind: str) -> float:
        return next(t for k, t in self.events if k == kind)


@dataclass
class Rig:
    daemon: DaemonHandle
    audio: VirtualAudioRig
    client: Client
    voice: Voice

    def say(self, text: str) -> bytes:
        """Piper's voice for the scripted person (24 kHz mono s16le), the same audio in every run: one
        draw of Piper's randomness could decide a test (benchmarks/turn_taking.py measures over a
        corpus)."""
        speech = self.voice.say(text)
        return resample(speech.pcm, speech.format, TTS_FORMAT)

    def play(self, pcm: bytes, fmt: AudioFormat = TTS_FORMAT) -> threading.Thread:
        thread = threading.Thread(target=lambda: asyncio.run(self.audio.play_into_mic(pcm, fmt)), daemon=True)
        thread.start()
        return thread

    def converse(
        self,
        request: conversation_pb2.ConverseRequest,
        *,
        method: str = "Converse",
        on_event: Callable[[str, Turn], None] | None = None,
    ) -> Turn:
        turn = Turn()
        call = getattr(self.client.conversation, method)(request, timeout=120)
        try:
            for event in call:
                kind = KIND[event.kind]
                turn.events.append((kind, event.t))
                turn.details[kind] = event.detail
                if on_event is not None:
                    on_event(kind, turn)
                if kind == "done":
                    turn.result = event.result
        except grpc.RpcError as exc:
            turn.error = exc
        return turn


@pytest.fixture(scope="package")
def rig(voice: Voice) -> Iterator[Rig]:
    for handle, audio, client in engines_daemon(("whisper", "piper")):
        yield Rig(handle, audio, client, voice)

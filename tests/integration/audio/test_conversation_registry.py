"""A turn keeps the provider registry it started with; the next turn takes the current one.

The converse loop on the virtual devices, speaking through two loopback endpoints: a settings change
that swaps the registry mid-turn must not move the turn's synthesis to the new one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from voicemoded.audio.devices import AudioBackend
from voicemoded.audio.microphone import Microphone
from voicemoded.audio.owner import AudioOwner
from voicemoded.audio.playback import Speaker
from voicemoded.audio.recorder import Listener
from voicemoded.config.schema import Settings
from voicemoded.conversation.journal import Journal, read_journal
from voicemoded.conversation.loop import Conversation, TurnEvent
from voicemoded.conversation.params import resolve
from voicemoded.providers.failover import Speech
from voicemoded.providers.settings import ProviderSettings
from voicemoded.testing.endpoint import SpeechEndpoint

pytestmark = pytest.mark.audio


@pytest.fixture
async def registries() -> AsyncIterator[list[tuple[SpeechEndpoint, Speech]]]:
    out = []
    for _ in range(2):
        endpoint = SpeechEndpoint(tone_seconds=0.2)
        out.append((endpoint, Speech(ProviderSettings(tts_base_urls=(endpoint.url,)))))
    yield out
    for endpoint, speech in out:
        await speech.aclose()
        endpoint.close()


def synthesis_requests(endpoint: SpeechEndpoint) -> int:
    return sum(r.startswith("POST") and r.endswith("/audio/speech") for r in endpoint.requests)


async def test_a_registry_swapped_mid_turn_serves_the_next_turn(
    backend: AudioBackend, mic: Microphone, registries: list[tuple[SpeechEndpoint, Speech]], tmp_path: Path
) -> None:
    (old_endpoint, old), (new_endpoint, new) = registries
    current = [old]
    asked: list[str] = []

    def registry() -> Speech:
        asked.append("old" if current[0] is old else "new")
        return current[0]

    conversation = Conversation(
        owner=AudioOwner(),
        speaker=Speaker(backend),
        microphone=mic,
        listener=Listener(mic),
        speech=registry,
        journal=Journal(tmp_path / "conversations"),
        audio_dir=tmp_path / "audio",
    )
    params = resolve(Settings(), {"message": "hello there", "wait_for_response": False})
    assert conversation.speech is old

    def swap_before_synthesis(event: TurnEvent) -> None:
        if event.kind == "tts_start":  # emitted just before the synthesis request goes out
            current[0] = new

    first = await conversation.turn(params, swap_before_synthesis, mode="speak")
    assert first.end_reason == "spoken"
    assert first.tts_provider == old_endpoint.url, "the turn kept the registry it started with"
    assert (synthesis_requests(old_endpoint), synthesis_requests(new_endpoint)) == (1, 0)

    assert conversation.speech is new
    second = await conversation.turn(params, lambda _e: None, mode="speak")
    assert second.tts_provider == new_endpoint.url
    assert (synthesis_requests(old_endpoint), synthesis_requests(new_endpoint)) == (1, 1)
    assert asked == ["old", "old", "new", "new"]  # once per turn (and once per `speech` read above)

    (day,) = (tmp_path / "conversations").glob("*.jsonl")
    assert [e["tts_provider"] for e in read_journal(day)] == [old_endpoint.url, new_endpoint.url]
    await conversation.speaker.settled()

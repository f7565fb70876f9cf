"""The audio devices and the converse loop, built on the first request that needs them.

PortAudio, numpy and the VAD cost start-up time and memory a daemon that only supervises servers or
answers ``status`` never needs; they load here, once, on first use.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from voicemoded.audio.devices import AudioBackend
    from voicemoded.conversation.loop import Conversation

BuildAudio = Callable[[], "tuple[AudioBackend, Conversation]"]


class AudioStack:
    def __init__(self, build: BuildAudio) -> None:
        self._build = build
        self._built: tuple[AudioBackend, Conversation] | None = None

    def _stack(self) -> tuple[AudioBackend, Conversation]:
        if self._built is None:
            self._built = self._build()
        return self._built

    @property
    def backend(self) -> AudioBackend:
        return self._stack()[0]

    @property
    def conversation(self) -> Conversation:
        return self._stack()[1]

    async def aclose(self) -> None:
        """Stop recording, let playback settle and release PortAudio; nothing to do if never built."""
        if self._built is None:
            return
        backend, conversation = self._built
        with contextlib.suppress(Exception):
            await conversation.microphone.aclose()
        with contextlib.suppress(Exception):
            await conversation.speaker.settled()
        backend.close()

"""Spoken turns: converse, speak, listen, with the caller's parameters resolved and checked once.

``speak`` never waits for an answer and ``listen`` never speaks, whatever else the request says. An
unset parameter takes the caller's configured value; a value that cannot be honoured is refused here,
before any audio moves.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping
from typing import TYPE_CHECKING, Any, Literal

from voicemoded.app.doors import Door
from voicemoded.config import Caller, ConfigManager
from voicemoded.conversation.params import resolve

if TYPE_CHECKING:
    # The converse loop pulls in the audio stack; it is imported on the first turn, not at start-up.
    from voicemoded.conversation.loop import Turns
    from voicemoded.conversation.results import TurnEvent

Mode = Literal["converse", "speak", "listen"]


def mode_rules(mode: Mode, given: Mapping[str, Any]) -> dict[str, Any]:
    """What the mode fixes, over whatever the caller gave."""
    out = dict(given)
    if mode == "speak":
        out["wait_for_response"] = False
    elif mode == "listen":
        out["skip_tts"] = True
        out["wait_for_response"] = True
    return out


class Conversations:
    def __init__(self, config: ConfigManager, turns: Callable[[], Turns]) -> None:
        """``turns`` gives the converse loop (built with the audio stack on first use)."""
        self._config = config
        self._turns = turns

    async def turn(
        self, given: Mapping[str, Any], caller: Caller, door: Door, mode: Mode = "converse"
    ) -> AsyncGenerator[TurnEvent, None]:
        """One turn as its events, ending with ``done`` (which carries the result); its error is raised
        after them. Closing the stream early cancels the turn and returns once the devices are free."""
        from voicemoded.conversation.loop import turn_events

        params = resolve(self._config.resolve(caller).settings, mode_rules(mode, given))
        events = turn_events(
            self._turns(), params, mode=mode, client=caller.client or door.name, cwd=caller.cwd
        )
        async with contextlib.aclosing(events):
            async for event in events:
                yield event

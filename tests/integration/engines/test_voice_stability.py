"""With Kokoro and Piper both up, a caller who names no voice hears the same voice on every call."""

from __future__ import annotations

from collections import Counter

import pytest

from voicemoded.providers import ProviderSettings, Speech, SpeechInfo
from voicemoded.testing.engines import EngineProcess

pytestmark = [pytest.mark.engines, pytest.mark.slow]

CALLS = 20


async def first_info(sp: Speech, text: str) -> SpeechInfo:
    info = None
    async for item in sp.synthesize(text):
        if isinstance(item, SpeechInfo):
            info = item
    assert info is not None
    return info


async def test_twenty_calls_one_voice(kokoro: EngineProcess, piper: EngineProcess) -> None:
    async with Speech(ProviderSettings()) as sp:
        sp.set_local_endpoints("tts", {"kokoro": f"{kokoro.url}/v1", "piper": f"{piper.url}/v1"})
        heard = Counter()
        for _ in range(CALLS):
            info = await first_info(sp, "Hi.")
            heard[(info.endpoint.name, info.voice)] += 1
            assert not info.warnings
        assert heard == Counter({("kokoro", "jf_alpha"): CALLS}), heard
        names = {s.name for s in sp.list("tts")}
        assert names == {"kokoro", "piper"}, "both engines were in the rotation"

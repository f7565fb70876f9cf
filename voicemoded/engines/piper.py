"""Text to speech server with Piper: the Joe voice (en_US-joe-medium, CC0) and any Piper voice of the
catalog downloaded from the hub (`voicemodectl models install en_GB-alan-medium`).

Run as ``python -m voicemoded.engines.piper [--port 8881]``. Piper is the fast local voice (real-time
factor ~0.05 on two cores), so it is the default TTS child.
"""

from __future__ import annotations

import functools
import sys
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from voicemoded.audio.format import AudioFormat
from voicemoded.audio.resample import resample
from voicemoded.engines import models
from voicemoded.engines.server import ApiError, argument_parser, configure_logging, serve
from voicemoded.engines.tts import OPENAI_MODELS, Voice, build_tts_app

log = structlog.get_logger(__name__)

DEFAULT_PORT = 8881
JOE = Voice(id=models.JOE_VOICE, name="joe", language="en-us", gender="male")
MAX_LOADED_VOICES = 4
"""Voices kept loaded at once (about 100 MB each); the least recently used other than Joe goes first."""


@functools.cache
def hub_voices() -> tuple[Voice, ...]:
    """The catalog's Piper voices that come from the hub only, as the server would offer them."""
    from voicemoded.engines.catalog import default_catalog

    return tuple(
        Voice(id=spec.name, name=spec.name.split("-")[1], language=spec.language, gender=spec.gender)
        for spec in default_catalog().models.values()
        if spec.engine == "piper" and spec.name != models.JOE_VOICE
    )


class PiperSynthesizer:
    name = "piper"
    default_voice = JOE.id
    speed_range = (0.25, 4.0)

    def __init__(self, models_dir: Path | None = None) -> None:
        self.models_dir = models_dir
        """Where voices downloaded from the hub are (Joe: the registry package's when not there)."""
        self._loaded: OrderedDict[str, Any] = OrderedDict()
        self.sample_rate = 22_050
        """Joe's own rate once loaded; a voice of another rate is resampled to it."""

    @property
    def voices(self) -> tuple[Voice, ...]:
        """Joe, and every hub voice downloaded into the models folder. Looked for at each request, so a
        voice installed while the server runs is offered without a restart."""
        if self.models_dir is None:
            return (JOE,)
        found = [
            voice
            for voice in hub_voices()
            if models.downloaded(self.models_dir, voice.id, models.piper_voice_files(voice.id)) is not None
        ]
        return (JOE, *found)

    def model_ids(self) -> list[str]:
        return ["piper", *OPENAI_MODELS]

    def load(self) -> None:
        self.sample_rate = int(self._voice(JOE.id).config.sample_rate)
        self.synthesize("Ready.", JOE.id, 1.0)

    def _voice(self, voice: str) -> Any:
        """The loaded ``PiperVoice`` for ``voice``, loaded now when it was not."""
        from piper import PiperVoice

        if voice in self._loaded:
            self._loaded.move_to_end(voice)
            return self._loaded[voice]
        model, config = models.piper_voice_paths(self.models_dir, voice)
        try:
            loaded = PiperVoice.load(model, config)
        except Exception as exc:  # a damaged download: say which voice and how to mend it
            log.error("piper.voice_unloadable", voice=voice, error=f"{type(exc).__name__}: {exc}")
            raise ApiError(
                500,
                f"the Piper voice {voice} could not be loaded ({type(exc).__name__}: {exc}); download it "
                f"again: `voicemodectl models remove {voice}`, then `voicemodectl models install {voice}`",
                type="server_error",
                param="voice",
            ) from None
        self._loaded[voice] = loaded
        log.info("piper.voice_loaded", voice=voice, rate=int(loaded.config.sample_rate))
        while len(self._loaded) > MAX_LOADED_VOICES:
            oldest = next(v for v in self._loaded if v != JOE.id)
            del self._loaded[oldest]
        return loaded

    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        from piper import SynthesisConfig

        piper_voice = self._voice(voice)
        config = SynthesisConfig(length_scale=1.0 / speed)
        parts = [chunk.audio_int16_array for chunk in piper_voice.synthesize(text, config)]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        audio = np.concatenate(parts).astype(np.int16)
        rate = int(piper_voice.config.sample_rate)
        if rate == self.sample_rate:
            return audio
        pcm = resample(audio.tobytes(), AudioFormat(rate=rate), AudioFormat(rate=self.sample_rate))
        return np.frombuffer(pcm, dtype=np.int16)


def main(argv: list[str] | None = None) -> int:
    args = argument_parser("piper", DEFAULT_PORT).parse_args(argv)
    configure_logging(args.log_level)
    synth = PiperSynthesizer(args.models_dir)
    return serve(
        lambda stop: build_tts_app(synth, stop),
        host=args.host,
        port=args.port,
        engine="piper",
        token_file=args.token_file,
    )


if __name__ == "__main__":
    sys.exit(main())

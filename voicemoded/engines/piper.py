"""Text to speech server with Piper and the Joe voice (en_US-joe-medium, CC0).

Run as ``python -m voicemoded.engines.piper [--port 8881]``. Piper is the fast local voice (real-time
factor ~0.05 on two cores), so it is the default TTS child.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np

from voicemoded.engines import models
from voicemoded.engines.server import argument_parser, configure_logging, serve
from voicemoded.engines.tts import OPENAI_MODELS, Voice, build_tts_app

DEFAULT_PORT = 8881
JOE = Voice(id="en_US-joe-medium", name="joe", language="en-us", gender="male")


class PiperSynthesizer:
    name = "piper"
    voices: tuple[Voice, ...] = (JOE,)
    default_voice = JOE.id
    speed_range = (0.25, 4.0)

    def __init__(self, models_dir: Path | None = None) -> None:
        self.models_dir = models_dir
        """Where a voice downloaded from the hub is looked for first (the registry package's otherwise)."""
        self._voice: Any = None
        self.sample_rate = 22_050
        """Replaced by the voice's own rate once loaded."""

    def model_ids(self) -> list[str]:
        return ["piper", *OPENAI_MODELS]

    def load(self) -> None:
        from piper import PiperVoice

        model, config = models.piper_voice_paths(self.models_dir)
        self._voice = PiperVoice.load(model, config)
        self.sample_rate = int(self._voice.config.sample_rate)
        self.synthesize("Ready.", JOE.id, 1.0)

    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        from piper import SynthesisConfig

        config = SynthesisConfig(length_scale=1.0 / speed)
        parts = [chunk.audio_int16_array for chunk in self._voice.synthesize(text, config)]
        if not parts:
            return np.zeros(0, dtype=np.int16)
        return np.concatenate(parts).astype(np.int16)


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

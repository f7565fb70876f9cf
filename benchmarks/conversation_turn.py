"""A whole spoken turn, ours against VoiceMode 9.0.1, on the same virtual devices and the same engines.

One private PulseAudio rig, one voicemoded with its embedded Whisper tiny.en and Piper engines; VoiceMode
(its own venv, see ``anchor.py``) is pointed at those same two URLs. Each system runs the same question
and hears the same scripted answer, spoken by Piper into the virtual microphone the moment the system
opens it (ours: the ``listening`` event; VoiceMode: a new PulseAudio recording stream). Turns alternate
between the two systems so machine noise falls on both.

Every figure is measured from outside by two "ears" (``parec`` on the speaker's and the microphone's
monitors, each sample timed by its arrival), so both systems are judged by the same clock; the systems'
own numbers are printed beside them. Medians of N turns:

- end of playback -> microphone open: last audible sample of the question on the speaker to the mic
  opening (VoiceMode: 0.75 s; target <= 50 ms);
- time to first audio: call to the first audible sample on the speaker (target <= the engine's own
  first-chunk time, measured by a streaming POST to Piper's /v1/audio/speech, + 30 ms);
- last voiced sample of the answer (as the microphone heard it) -> result returned (VoiceMode ~1.45 s;
  target <= 0.8 s);
- whole turn minus the audio's own length: call to result, less the audible spans of the question and of
  the answer (VoiceMode: 2.3 s; target <= 0.9 s).

Run: .venv/bin/python benchmarks/conversation_turn.py [--turns 5] [--no-anchor]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anchor

from voicemoded.api.client import Client
from voicemoded.api.v1 import conversation_pb2
from voicemoded.audio.format import AudioFormat
from voicemoded.testing.demo import ENGINES, start_daemon, synthesize
from voicemoded.testing.rig import VirtualAudioRig
from voicemoded.testing.services import engine_env, start_services

# One sentence each, no commas: Piper puts no pause inside, so the audible spans are the speech itself.
QUESTION = "What would you like to work on today?"
ANSWER = "Let's write the release notes for version two and then fix the failing login test."
KIND = {v.number: v.name.lower() for v in conversation_pb2.ConverseEvent.Kind.DESCRIPTOR.values}
LISTEN_MAX = 30.0


EAR_RATE = 16000
LOUD = 300  # int16 peak; the null sinks carry exact zeros when nothing plays
ZERO_GAP = 0.03  # a run of zeros this long is the end of the played audio, not a quiet sample


@dataclass(frozen=True)
class Sound:
    """Wall times of a sound heard by an ear: the played audio's edges and its loud (voiced) part."""

    start: float
    loud_start: float
    loud_end: float
    end: float

    @property
    def seconds(self) -> float:
        return self.end - self.start


def _widen(nonzero: np.ndarray, first: int, last: int, max_zeros: int) -> tuple[int, int]:
    """Extend [first, last] through non-zero samples, bridging zero runs shorter than ``max_zeros``."""
    idx = np.flatnonzero(nonzero)
    before = idx[idx <= first][::-1]
    begin = first
    for i in before:
        if begin - i > max_zeros:
            break
        begin = int(i)
    after = idx[idx >= last]
    finish = last
    for i in after:
        if i - finish > max_zeros:
            break
        finish = int(i)
    return begin, finish


class Ear:
    """Records a sink's monitor and maps every sample to wall time.

    A block's arrival time bounds when its last sample was played from above, so the earliest
    ``arrival - samples_so_far / rate`` over all blocks is the wall time of sample 0 (the null sink runs
    on the system clock, so one offset holds for the whole run).
    """

    def __init__(self, rig: VirtualAudioRig, sink: str) -> None:
        env = {**os.environ, **rig.env, "HOME": str(rig.home)}
        self._proc = subprocess.Popen(
            ["parec", "--raw", "--latency-msec=20", f"--rate={EAR_RATE}", "--channels=1", "--format=s16le",
             "-d", f"{sink}.monitor"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._buf = bytearray()
        self._t0 = float("inf")
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name=f"ear-{sink}", daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while block := os.read(self._proc.stdout.fileno(), 4096):
            now = time.time()
            with self._lock:
                self._buf += block
                self._t0 = min(self._t0, now - len(self._buf) // 2 / EAR_RATE)

    def first_run(self, since: float, until: float, max_gap: float = 0.3) -> Sound | None:
        """The first sound after ``since``: the first loud stretch (silences under ``max_gap`` inside).

        Its edges are then widened through the quiet but non-zero samples around it (Piper's soft
        onset and ~0.16 s fade), up to the exact zeros a null sink carries when nothing plays, so a
        sound lasts as long as the audio that was played, whether or not a chime sits in its tail.
        """
        with self._lock:
            samples = np.frombuffer(bytes(self._buf), dtype="<i2").astype(np.int32)
            t0 = self._t0
        lo = max(0, int((since - t0) * EAR_RATE))
        hi = min(len(samples), int((until - t0) * EAR_RATE))
        window = np.abs(samples[lo:hi])
        loud = np.flatnonzero(window > LOUD)
        if not len(loud):
            return None
        gaps = np.flatnonzero(np.diff(loud) > max_gap * EAR_RATE)
        first, last = int(loud[0]), int(loud[gaps[0]] if len(gaps) else loud[-1])
        begin, finish = _widen(window != 0, first, last, int(ZERO_GAP * EAR_RATE))

        def at(i: int) -> float:
            return t0 + (lo + i) / EAR_RATE

        return Sound(at(begin), at(first), at(last + 1), at(finish + 1))

    def close(self) -> None:
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


class PulseWatch:
    """``pactl subscribe``: the moment any client opens a recording stream (VoiceMode opening its mic)."""

    def __init__(self, rig: VirtualAudioRig) -> None:
        env = {**os.environ, **rig.env, "HOME": str(rig.home)}
        self._proc = subprocess.Popen(
            ["pactl", "subscribe"], env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True
        )
        self._opened: list[float] = []
        self._seen = 0
        self._cond = threading.Condition()
        threading.Thread(target=self._read, name="pulse-watch", daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            if "'new' on source-output" in line:
                with self._cond:
                    self._opened.append(time.time())
                    self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._seen = len(self._opened)

    def wait_new_recording(self, timeout: float) -> float | None:
        with self._cond:
            if not self._cond.wait_for(lambda: len(self._opened) > self._seen, timeout):
                return None
            self._seen += 1
            return self._opened[self._seen - 1]

    def close(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=5)


def engine_first_chunk(url: str, voice: str, text: str, runs: int, warm: bool = False) -> list[float]:
    """Piper's own time to first byte of streamed PCM: the floor any client's first audio sits on."""
    times = []
    body = {"model": "tts-1", "input": text, "voice": voice, "response_format": "pcm"}
    with httpx.Client(timeout=30) as http:
        for i in range(int(warm), runs + 1):
            started = time.perf_counter()
            with http.stream("POST", f"{url.rstrip('/')}/audio/speech", json=body) as response:
                response.raise_for_status()
                body_chunks = response.iter_raw()
                for chunk in body_chunks:
                    if chunk:
                        if i:  # the first request warms the connection and the model
                            times.append(time.perf_counter() - started)
                        break
                for _ in body_chunks:
                    pass
    return times


def engine_transcription(url: str, pcm: bytes, rate: int, runs: int, warm: bool = False) -> list[float]:
    """Whisper's own time for the whole answer: one STT pass, the floor under any endpoint delay."""
    buf = io.BytesIO()
    with wave.open(buf, "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(pcm)
    times = []
    with httpx.Client(timeout=60) as http:
        for i in range(int(warm), runs + 1):
            started = time.perf_counter()
            response = http.post(
                f"{url.rstrip('/')}/audio/transcriptions",
                files={"file": ("answer.wav", buf.getvalue(), "audio/wav")},
                data={"model": "whisper-1", "language": "en"},
            )
            response.raise_for_status()
            if i:
                times.append(time.perf_counter() - started)
    return times


def engine_voice(url: str) -> str:
    with httpx.Client(timeout=10) as http:
        data = http.get(f"{url.rstrip('/')}/audio/voices").json()
    voices = data.get("voices", data) if isinstance(data, dict) else data
    first = voices[0]
    return str(first.get("id") or first.get("name")) if isinstance(first, dict) else str(first)


@dataclass
class Turn:
    """One turn's figures in seconds; ``self_*`` are the system's own account of the same interval."""

    text: str = ""
    gap: float | None = None
    ttfa: float | None = None
    endpoint: float | None = None
    overhead: float | None = None
    self_gap: float | None = None
    self_ttfa: float | None = None
    self_endpoint: float | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class Bench:
    rig: VirtualAudioRig
    speaker_ear: Ear
    mic_ear: Ear
    answer: bytes
    answer_format: AudioFormat
    verbose: bool = False

    def say_answer(self) -> threading.Thread:
        thread = threading.Thread(
            target=lambda: asyncio.run(self.rig.play_into_mic(self.answer, self.answer_format)), daemon=True
        )
        thread.start()
        return thread

    def measure(
        self, turn: Turn, called: float, mic_open: float | None, returned: float, answered: float
    ) -> Sound | None:
        """Fill the externally heard figures from the two ears once the turn is over."""
        question = self.speaker_ear.first_run(called, mic_open if mic_open is not None else returned)
        spoken = self.mic_ear.first_run(answered, returned + 1.0, max_gap=0.6)
        if question is None:
            turn.notes.append("question not heard on the speaker")
            return None
        turn.ttfa = question.start - called
        if mic_open is not None:
            turn.gap = mic_open - question.end
        if spoken is None:
            turn.notes.append("answer not heard on the microphone")
            return question
        turn.endpoint = returned - spoken.loud_end
        turn.overhead = (returned - called) - question.seconds - spoken.seconds
        if self.verbose:
            turn.notes.append(
                f"question {question.seconds:.3f} s (loud {question.loud_end - question.loud_start:.3f}), "
                f"answer {spoken.seconds:.3f} s, answer tail {spoken.end - spoken.loud_end:.3f} s"
            )
        return question


def ours(client: Client, bench: Bench) -> Turn:
    request = conversation_pb2.ConverseRequest(
        caller=client.caller(), message=QUESTION, listen_duration_max=LISTEN_MAX
    )
    turn, mic_open, answered, speaking, playback_end = Turn(), None, 0.0, None, None
    called = time.time()
    result = None
    timeline = []
    for event in client.stream(client.conversation.Converse, request, timeout=120):
        kind = KIND.get(event.kind, "?")
        timeline.append(f"{kind} {event.t:.3f}")
        if kind == "playback_end":
            playback_end = event.time.ToNanoseconds() / 1e9
        if kind == "listening" and speaking is None:
            answered = time.time()
            speaking = bench.say_answer()
            mic_open = event.time.ToNanoseconds() / 1e9
        elif kind == "done":
            result = event.result
    returned = time.time()
    if speaking is not None:
        speaking.join(30)
    if result is None:
        turn.notes.append("no result")
        return turn
    turn.text = result.text
    t = result.timings
    turn.self_gap, turn.self_ttfa, turn.self_endpoint = t.mic_gap, t.ttfa, t.endpoint_delay
    if bench.verbose:
        turn.notes.append(
            f"stt {t.stt:.3f} record {t.record:.3f} end {result.end_reason}; " + ", ".join(timeline)
        )
    question = bench.measure(turn, called, mic_open, returned, answered)
    if bench.verbose and question is not None and playback_end is not None:
        turn.notes.append(
            f"daemon's playback_end - heard end of playback {playback_end - question.end:+.3f} s"
        )
    return turn


def voicemode(driver: anchor.AnchorDriver, watch: PulseWatch, bench: Bench) -> Turn:
    turn = Turn()
    watch.clear()
    driver.call({"message": QUESTION, "listen_duration_max": LISTEN_MAX})
    mic_open = watch.wait_new_recording(timeout=60)
    speaking = None
    answered = time.time()
    if mic_open is not None:
        speaking = bench.say_answer()
    reply = driver.reply(timeout=120)
    if speaking is not None:
        speaking.join(30)
    if reply.get("error"):
        turn.notes.append(reply["error"])
        return turn
    turn.text = str(reply["result"]).split(" | Timing")[0].removeprefix("Voice response: ")
    called, returned = float(reply["called"]), float(reply["returned"])
    events = driver.events(called, returned)
    if "TTS_FIRST_AUDIO" in events:
        turn.self_ttfa = events["TTS_FIRST_AUDIO"] - called
    if "TTS_PLAYBACK_END" in events and "RECORDING_START" in events:
        turn.self_gap = events["RECORDING_START"] - events["TTS_PLAYBACK_END"]
    question = bench.measure(turn, called, mic_open, returned, answered)
    if bench.verbose:
        timeline = sorted(events.items(), key=lambda kv: kv[1])
        turn.notes.append(", ".join(f"{k} {v - called:.3f}" for k, v in timeline))
        if mic_open is not None:
            turn.notes.append(f"recording stream opened {mic_open - called:.3f}")
        if question is not None and "TTS_PLAYBACK_END" in events:
            turn.notes.append(
                f"TTS_PLAYBACK_END - heard end {events['TTS_PLAYBACK_END'] - question.end:+.3f} s"
            )
    if turn.endpoint is not None and "RECORDING_END" in events:
        # VoiceMode logs no such figure; its silence bound ends the recording, then chime, STT and return.
        turn.notes.append(f"recording ended {returned - events['RECORDING_END']:.2f} s before the result")
    return turn


def median(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    return f"{statistics.median(got) * 1000:7.0f} ms" if got else "      -   "


def report(name: str, turns: list[Turn], first_chunk: float) -> None:
    print(f"\n{name} ({len(turns)} turns)")
    rows: list[tuple[str, Callable[[Turn], float | None], Callable[[Turn], float | None], str]] = [
        ("end of playback -> microphone open", lambda t: t.gap, lambda t: t.self_gap,
         "VoiceMode 0.75 s; target <= 50 ms"),
        ("time to first audio", lambda t: t.ttfa, lambda t: t.self_ttfa,
         f"target <= engine first chunk + 30 ms = {(first_chunk + 0.03) * 1000:.0f} ms"),
        ("last voiced sample -> result returned", lambda t: t.endpoint, lambda t: t.self_endpoint,
         "VoiceMode ~1.45 s; target <= 0.8 s"),
        ("whole turn minus the audio's own length", lambda t: t.overhead, lambda _t: None,
         "VoiceMode 2.3 s; target <= 0.9 s"),
    ]  # fmt: skip
    print(f"  {'':42s} {'heard':>10s} {'own':>10s}")
    for label, heard, own, note in rows:
        print(
            f"  {label:42s} {median([heard(t) for t in turns])} {median([own(t) for t in turns])}   ({note})"
        )
    for i, t in enumerate(turns, 1):
        extra = f"  [{'; '.join(t.notes)}]" if t.notes else ""
        print(f"  turn {i}: {t.text!r}{extra}")


def run(args: argparse.Namespace) -> int:
    root = Path(tempfile.mkdtemp(prefix="vm-turn-bench-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEMODE_")}
    (root / "home").mkdir()
    env.update(
        HOME=str(root / "home"), VOICEMODE_BASE_DIR=str(root / "state"),
        VOICEMODE_CONFIG_WATCH="false", **engine_env(ENGINES),
    )  # fmt: skip
    rig = VirtualAudioRig(root / "audio").start()
    env.update(rig.env)
    proc = None
    ears: list[Ear] = []
    watch: PulseWatch | None = None
    driver: anchor.AnchorDriver | None = None
    try:
        proc, client = start_daemon(root, env, "conversation-bench")
        urls = {name: info.url for name, info in start_services(client, ENGINES).items()}
        print(f"engines: whisper {urls['whisper']}  piper {urls['piper']}")
        pcm, rate = synthesize(client, ANSWER)
        ears = [Ear(rig, "speaker"), Ear(rig, "mic")]
        bench = Bench(rig, ears[0], ears[1], pcm, AudioFormat(rate, 2, 1), args.verbose)
        watch = PulseWatch(rig)

        voice = engine_voice(urls["piper"])
        # The engines' own figures are taken between the turns, so they see the same machine load.
        first_chunks = engine_first_chunk(urls["piper"], voice, QUESTION, runs=0)
        stt_times = engine_transcription(urls["whisper"], pcm, rate, runs=0)

        missing = ""
        if args.no_anchor:
            missing = "skipped (--no-anchor)"
        else:
            try:
                python = anchor.install()
                driver = anchor.AnchorDriver(
                    python, root / "voicemode-home", rig.env, urls["piper"], urls["whisper"], voice
                )
            except (anchor.AnchorUnavailable, OSError, TimeoutError) as exc:
                missing = str(exc)

        # One warm-up turn each (devices opened, first-call initialisation), not counted.
        ours(client, bench)
        if driver is not None:
            try:
                voicemode(driver, watch, bench)
            except (anchor.AnchorUnavailable, TimeoutError) as exc:
                missing, driver = f"its converse could not be driven: {exc}", None

        mine: list[Turn] = []
        theirs: list[Turn] = []
        for _ in range(args.turns):
            first_chunks += engine_first_chunk(urls["piper"], voice, QUESTION, runs=1, warm=True)
            stt_times += engine_transcription(urls["whisper"], pcm, rate, runs=1, warm=True)
            mine.append(ours(client, bench))
            if driver is not None:
                theirs.append(voicemode(driver, watch, bench))

        first_chunk = statistics.median(first_chunks)
        print(f"\nPiper's own first chunk (streaming POST, pcm): median {first_chunk * 1000:.0f} ms "
              f"(min {min(first_chunks) * 1000:.0f}, max {max(first_chunks) * 1000:.0f})")  # fmt: skip
        print(f"Whisper's own time for the {len(pcm) / 2 / rate:.1f} s answer (POST wav): median "
              f"{statistics.median(stt_times) * 1000:.0f} ms (min {min(stt_times) * 1000:.0f}, "
              f"max {max(stt_times) * 1000:.0f})")  # fmt: skip
        print(
            "heard: timed by the ears on the speaker and microphone monitors; own: the system's own "
            "account (ours: TurnTimings; VoiceMode: its events log)"
        )

        report("voicemoded", mine, first_chunk)
        if driver is not None:
            report(f"VoiceMode {anchor.VERSION}", theirs, first_chunk)
        else:
            print(f"\nVoiceMode {anchor.VERSION}: no figures: {missing}")
        client.close()
        return 0
    finally:
        if driver is not None:
            driver.close()
        if watch is not None:
            watch.close()
        for ear in ears:
            ear.close()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            proc.wait(20)
        rig.stop()
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--turns", type=int, default=5, help="counted turns per system (default 5)")
    parser.add_argument("--keep", action="store_true", help="keep the temp folder (logs of both systems)")
    parser.add_argument("--verbose", action="store_true", help="print each turn's event timeline")
    parser.add_argument("--no-anchor", action="store_true", help="measure voicemoded alone")
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())

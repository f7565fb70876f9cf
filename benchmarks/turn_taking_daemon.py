"""The turn-taking corpus through the real daemon: is a thinking pause taken for the end of the answer?

One private PulseAudio rig and one voicemoded with its default settings (embedded Whisper tiny.en, the
Smart Turn end-of-turn model from ``pipecat-ai``). For each clip of a seeded sample of the corpus's
test half (``turn_corpus.py``), stratified over quiet / noisy and the clip's longest pause, it opens a
listen-only turn (``Listen``: no question, no chime) and, the moment the daemon reports ``listening``,
plays the clip into the virtual microphone. The clip carries its own 0.3 s lead and 2.5 s tail with the
noise running through them; the next turn starts only once the clip has finished playing.

An "ear" (``parec`` on the microphone's monitor, every sample timed by its arrival) hears the clip, and
the clip is found in what it heard by cross-correlation, so "the last voiced sample" is the wall time
the microphone heard ``clip.last_voiced_s``. The daemon's event times are on the same clock. Per turn:

- cut off: the daemon stopped listening (``listening`` + the turn's record time) before that sample;
- latency from it to the turn over (the daemon stopped listening), to the ``transcript`` event, and to
  the result at the caller (the ``done`` event received);
- the transcript's word error rate against the clip's words (numbers, "dot py" and fillers normalised);
- the rule that ended the turn (the ``transcript`` event's detail, else the end reason).

The daemon remembers the person's recent pauses (it waits out pauses as long as theirs), so clips are
played in a seeded shuffled order, as one person who sometimes pauses; one tune-half clip warms it up.
With ``--anchor`` VoiceMode 9.0.1 (``anchor.py``) hears each clip too, turn about with the daemon: its
converse with ``skip_tts``, the clip started when it opens a recording stream, its turn over being its
own RECORDING_END and its transcript STT_COMPLETE (its events log).

Run: .venv/bin/python benchmarks/turn_taking_daemon.py [--clips 60] [--seed 1] [--json OUT] [--anchor]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import anchor
from conversation_turn import PulseWatch, engine_voice
from turn_corpus import Clip, default_out, generate, load_corpus
from turn_score import edits, words

from voicemoded.api.client import Client, ClientError
from voicemoded.api.v1 import conversation_pb2
from voicemoded.audio.format import AudioFormat
from voicemoded.testing.demo import ENGINES, start_daemon
from voicemoded.testing.rig import VirtualAudioRig
from voicemoded.testing.services import engine_env, start_services

KIND = {v.number: v.name.lower() for v in conversation_pb2.ConverseEvent.Kind.DESCRIPTOR.values}
RATE = 16_000
BUCKETS = ("none", "<=0.5", "0.5-0.8", "0.8-1.0", "1.0-1.2", ">1.2")
CONDITIONS = ("quiet", "noise")
SETTLE_S = 0.4
"""Quiet between the end of one clip and the next turn."""
MATCH_MIN = 0.5
"""Normalised correlation below which the clip is not taken as found in what the microphone heard."""


def longest_pause(clip: Clip) -> float:
    return max((p.seconds for p in clip.pauses), default=0.0)


def bucket(clip: Clip) -> str:
    """The clip's longest internal pause as a report bucket (a small epsilon absorbs rounding)."""
    if not clip.pauses:
        return "none"
    s = longest_pause(clip) - 1e-6
    bounds = ((0.5, "<=0.5"), (0.8, "0.5-0.8"), (1.0, "0.8-1.0"), (1.2, "1.0-1.2"))
    return next((name for bound, name in bounds if s <= bound), ">1.2")


def condition(clip: Clip) -> str:
    return "quiet" if clip.noise == "quiet" else "noise"


def sample(clips: Iterable[Clip], n: int, seed: int) -> list[Clip]:
    """``n`` test-half clips, dealt round-robin over (quiet/noise, pause bucket) cells, in play order.

    Within a noisy cell the picks rotate over the noise kinds, so white, pink, babble and hum each get
    their share; a cell that runs dry leaves its turn to the others.
    """
    rng = random.Random(seed)
    cells: dict[tuple[str, str], list[Clip]] = {}
    for clip in sorted((c for c in clips if c.half == "test"), key=lambda c: c.id):
        cells.setdefault((condition(clip), bucket(clip)), []).append(clip)
    # The deal goes bucket by bucket in a seeded order, quiet then noise in each, so a small sample
    # still holds both conditions and a spread of pause lengths.
    buckets = list(BUCKETS)
    rng.shuffle(buckets)
    queues: list[list[Clip]] = []
    for key in [(c, b) for b in buckets for c in CONDITIONS if (c, b) in cells]:
        by_kind: dict[str, list[Clip]] = {}
        for clip in cells[key]:
            by_kind.setdefault(clip.noise, []).append(clip)
        kinds = sorted(by_kind)
        rng.shuffle(kinds)
        for members in by_kind.values():
            rng.shuffle(members)
        longest = max(len(m) for m in by_kind.values())
        queues.append([by_kind[k][i] for i in range(longest) for k in kinds if i < len(by_kind[k])])
    picked: list[Clip] = []
    while len(picked) < n and any(queues):
        for queue in queues:
            if queue and len(picked) < n:
                picked.append(queue.pop(0))
    rng.shuffle(picked)
    return picked


# --- the ear ---------------------------------------------------------------------------------------


class Ear:
    """Records the microphone's monitor, each block stamped with its arrival.

    A block's arrival bounds from above when its last sample was heard, so over a short stretch the
    earliest ``arrival - samples_so_far / rate`` is the wall time of sample 0; the offset is taken per
    turn, near the clip, so a stall the ear caught up on earlier does not shift it.
    """

    def __init__(self, rig: VirtualAudioRig, sink: str = "mic") -> None:
        env = {**os.environ, **rig.env, "HOME": str(rig.home)}
        self._proc = subprocess.Popen(
            ["parec", "--raw", "--latency-msec=20", f"--rate={RATE}", "--channels=1", "--format=s16le",
             "-d", f"{sink}.monitor"],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._buf = bytearray()
        self._blocks: list[tuple[float, int]] = []  # (arrival, samples received so far)
        self._lock = threading.Lock()
        threading.Thread(target=self._read, name=f"ear-{sink}", daemon=True).start()

    def _read(self) -> None:
        assert self._proc.stdout is not None
        while block := os.read(self._proc.stdout.fileno(), 4096):
            now = time.time()
            with self._lock:
                self._buf += block
                self._blocks.append((now, len(self._buf) // 2))

    def heard_until(self) -> float:
        with self._lock:
            return self._blocks[-1][0] if self._blocks else 0.0

    def find(self, pcm: bytes, since: float, until: float) -> tuple[float, float] | None:
        """Wall time at which the microphone heard ``pcm``'s first sample, and the match's correlation."""
        with self._lock:
            near = [(t, n) for t, n in self._blocks if since - 1.0 <= t <= until + 1.0]
            if not near:
                return None
            t0 = min(t - n / RATE for t, n in near)
            lo = max(0, int((since - t0) * RATE))
            hi = min(len(self._buf) // 2, int((until - t0) * RATE))
            heard = np.frombuffer(bytes(self._buf[2 * lo : 2 * hi]), dtype="<i2").astype(np.float64)
        clip = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
        if len(heard) < len(clip):
            return None
        size = 1 << int(np.ceil(np.log2(len(heard) + len(clip))))
        corr = np.fft.irfft(np.fft.rfft(heard, size) * np.conj(np.fft.rfft(clip, size)), size)
        lags = len(heard) - len(clip) + 1
        lag = int(np.argmax(corr[:lags]))
        energy = np.sqrt(np.sum(heard[lag : lag + len(clip)] ** 2) * np.sum(clip**2))
        return t0 + (lo + lag) / RATE, float(corr[lag] / energy) if energy else 0.0

    def close(self) -> None:
        self._proc.send_signal(signal.SIGINT)
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()


# --- one turn --------------------------------------------------------------------------------------


@dataclass
class Heard:
    """What a system reported for one turn, as wall times; ``played`` is when the clip was started."""

    played: float | None = None
    mic_open: float | None = None
    turn_over: float | None = None
    transcript_at: float | None = None
    returned: float | None = None
    speech_end: float | None = None
    text: str = ""
    end_reason: str = ""
    rule: str = ""
    own_endpoint_delay: float | None = None
    error: str = ""
    events: list[tuple[str, float, str]] = field(default_factory=list)


@dataclass
class Run:
    """One clip through one system; times in seconds, ``latency_*`` from the clip's last voiced sample."""

    id: str
    noise: str
    snr_db: float | None
    voice: str
    bucket: str
    pauses: list[float]
    reference: str
    transcript: str = ""
    ref_words: int = 0
    word_edits: int = 0
    end_reason: str = ""
    rule: str = ""
    cut_off: bool | None = None
    cut_in_pause: float | None = None
    """The length of the pause the turn ended in, when it was cut off."""
    turn_over_at: float | None = None
    """When the system stopped listening, in clip seconds."""
    latency_turn_over: float | None = None
    latency_transcript: float | None = None
    latency_result: float | None = None
    own_endpoint_delay: float | None = None
    speech_end_offset: float | None = None
    """The daemon's ``speech_end`` (its last voiced sample) minus the clip's, as heard."""
    mic_lead: float | None = None
    """Microphone open to the clip's first sample heard: the player's start-up."""
    match: float | None = None
    error: str = ""
    timeline: list[str] = field(default_factory=list)

    @property
    def wer(self) -> float | None:
        return self.word_edits / self.ref_words if self.ref_words and not self.error else None


def say(rig: VirtualAudioRig, pcm: bytes) -> tuple[threading.Thread, float]:
    """Start playing ``pcm`` into the microphone; the player thread and when it was started."""
    play = rig.play_into_mic(pcm, AudioFormat(RATE, 2, 1))
    player = threading.Thread(target=asyncio.run, args=(play,), daemon=True)
    started = time.time()
    player.start()
    return player, started


def _wall(event: conversation_pb2.ConverseEvent) -> float:
    return float(event.time.ToNanoseconds()) / 1e9


def ours(client: Client, rig: VirtualAudioRig, clip: Clip, pcm: bytes, timeout: float) -> Heard:
    """A listen-only turn (no question, no chime); the clip starts when the daemon reports listening."""
    heard = Heard()
    request = conversation_pb2.ConverseRequest(caller=client.caller(), listen_duration_max=timeout)
    player: threading.Thread | None = None
    try:
        for event in client.stream(client.conversation.Listen, request, timeout=timeout + 30):
            kind = KIND.get(event.kind, "?")
            heard.events.append((kind, _wall(event), event.detail))
            if kind == "listening" and player is None:
                heard.mic_open = _wall(event)
                player, heard.played = say(rig, pcm)
            elif kind == "speech_end":
                heard.speech_end = _wall(event)
            elif kind == "transcript":
                heard.transcript_at = _wall(event)
                heard.rule = event.detail.removeprefix("turn ended: ")
            elif kind == "done":
                heard.returned = time.time()
                result = event.result
                heard.text, heard.end_reason = result.text, result.end_reason
                heard.rule = heard.rule or result.end_reason
                # The daemon stopped listening ``record`` seconds after its first sample (``listening``).
                if heard.mic_open is not None:
                    heard.turn_over = heard.mic_open + result.timings.record
                heard.own_endpoint_delay = result.timings.endpoint_delay or None
    except ClientError as exc:
        heard.error = f"{exc.code}: {exc.message}"
    if player is not None:
        player.join(clip.duration_s + 10)
    if heard.returned is None:
        heard.error = heard.error or "no result"
    return heard


def theirs(
    driver: anchor.AnchorDriver,
    watch: PulseWatch,
    rig: VirtualAudioRig,
    clip: Clip,
    pcm: bytes,
    timeout: float,
) -> Heard:
    """VoiceMode's converse with ``skip_tts``: it only listens; the clip starts when it opens the mic."""
    heard = Heard()
    watch.clear()
    driver.call({"message": "Go on.", "skip_tts": True, "listen_duration_max": timeout})
    heard.mic_open = watch.wait_new_recording(timeout=60)
    player = None
    if heard.mic_open is not None:
        player, heard.played = say(rig, pcm)
    try:
        reply = driver.reply(timeout=timeout + 60)
    except (TimeoutError, anchor.AnchorUnavailable) as exc:
        heard.error = str(exc)
        return heard
    finally:
        if player is not None:
            player.join(clip.duration_s + 10)
    if reply.get("error"):
        heard.error = str(reply["error"])
        return heard
    heard.returned = float(reply["returned"])
    text = str(reply["result"]).split(" | Timing")[0].removeprefix("Voice response: ")
    heard.text = re.sub(r"\s*\(STT: [^)]*\)\s*$", "", text)  # it names the STT provider after the words
    events = driver.events(float(reply["called"]), heard.returned)
    heard.events = sorted(((k, t, "") for k, t in events.items()), key=lambda e: e[1])
    heard.turn_over = events.get("RECORDING_END")
    heard.transcript_at = events.get("STT_COMPLETE")
    recorded = (heard.turn_over or 0.0) - events.get("RECORDING_START", heard.turn_over or 0.0)
    heard.end_reason = "max_duration" if recorded >= timeout - 0.5 else "silence"
    heard.rule = heard.end_reason if "STT_NO_SPEECH" not in events else "no speech"
    return heard


def score(clip: Clip, pcm: bytes, heard: Heard, ear: Ear) -> Run:
    """The turn judged against when the microphone heard the clip, and its words against the clip's."""
    run = Run(clip.id, clip.noise, clip.snr_db, clip.voice, bucket(clip), [p.seconds for p in clip.pauses], clip.text)  # fmt: skip
    run.error, run.transcript, run.end_reason, run.rule = (
        heard.error,
        heard.text,
        heard.end_reason,
        heard.rule,
    )
    run.own_endpoint_delay = heard.own_endpoint_delay
    if heard.played is None or heard.mic_open is None:
        run.error = run.error or "the microphone was never opened"
        return run
    until = heard.played + clip.duration_s + 2.0
    while ear.heard_until() < until + 0.2 and time.time() < until + 5:
        time.sleep(0.05)
    found = ear.find(pcm, heard.played - 0.3, until)
    run.match = found[1] if found else None
    if found is None or found[1] < MATCH_MIN:
        run.error = run.error or "the clip was not found in what the microphone heard"
        return run
    start = found[0]
    last = start + clip.last_voiced_s
    run.mic_lead = start - heard.mic_open
    run.timeline = [f"{k} {t - start:+.3f}{' ' + d if d else ''}" for k, t, d in heard.events]
    if run.error or heard.turn_over is None:
        run.error = run.error or "no end of recording reported"
        return run
    ref, hyp = words(clip.text), words(heard.text)
    run.ref_words, run.word_edits = len(ref), edits(ref, hyp)
    run.turn_over_at = heard.turn_over - start
    run.cut_off = heard.turn_over < last
    if run.cut_off:
        inside = [p.seconds for p in clip.pauses if p.start_s <= run.turn_over_at <= p.end_s + 0.05]
        run.cut_in_pause = inside[0] if inside else None
    run.latency_turn_over = heard.turn_over - last
    run.latency_transcript = heard.transcript_at - last if heard.transcript_at is not None else None
    run.latency_result = heard.returned - last if heard.returned is not None else None
    run.speech_end_offset = heard.speech_end - last if heard.speech_end is not None else None
    return run


# --- the report ------------------------------------------------------------------------------------


def _spread(values: list[float]) -> dict[str, float] | None:
    if not values:
        return None
    ordered = sorted(values)
    p90 = ordered[min(len(ordered) - 1, int(np.ceil(0.9 * len(ordered))) - 1)]
    return {"n": len(values), "median": statistics.median(values), "p90": p90, "worst": ordered[-1]}


def summarise(runs: list[Run]) -> dict[str, Any]:
    done = [r for r in runs if r.cut_off is not None]
    cut: dict[str, dict[str, list[int]]] = {b: {c: [0, 0] for c in CONDITIONS} for b in BUCKETS}
    for r in done:
        cell = cut[r.bucket]["quiet" if r.noise == "quiet" else "noise"]
        cell[0] += bool(r.cut_off)
        cell[1] += 1
    whole = [r for r in done if not r.cut_off]
    latency = {
        name: {
            cond: _spread([v for r in whole if (v := getattr(r, f"latency_{name}")) is not None
                           and (cond == "all" or (r.noise == "quiet") == (cond == "quiet"))])
            for cond in ("all", *CONDITIONS)
        }
        for name in ("turn_over", "transcript", "result")
    }  # fmt: skip
    wer: dict[str, float | None] = {}
    for cond in ("all", *CONDITIONS):
        scored = [r for r in done if cond == "all" or (r.noise == "quiet") == (cond == "quiet")]
        total = sum(r.ref_words for r in scored)
        wer[cond] = sum(r.word_edits for r in scored) / total if total else None
    return {
        "turns": len(runs),
        "measured": len(done),
        "errors": Counter(r.error for r in runs if r.error),
        "cut_offs": cut,
        "latency": latency,
        "wer": wer,
        "wer_not_cut_off": _wer(whole),
        "rules": Counter(r.rule or "-" for r in done),
        "end_reasons": Counter(r.end_reason for r in done),
    }


def _wer(runs: list[Run]) -> float | None:
    total = sum(r.ref_words for r in runs)
    return sum(r.word_edits for r in runs) / total if total else None


def _ms(spread: dict[str, float] | None) -> str:
    if spread is None:
        return f"{'-':>28s}"
    return f"{spread['median'] * 1000:6.0f} {spread['p90'] * 1000:6.0f} {spread['worst'] * 1000:6.0f} ms (n={spread['n']})"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f}%"


def report(name: str, summary: dict[str, Any], runs: list[Run], verbose: bool) -> None:
    print(f"\n{name}: {summary['measured']} of {summary['turns']} turns measured")
    for error, count in summary["errors"].items():
        print(f"  {count} x {error}")
    print(f"\ncut off (turn ended inside a pause)   {'quiet':>8s} {'noise':>8s} {'all':>8s}")
    for b in BUCKETS:
        q, n = summary["cut_offs"][b]["quiet"], summary["cut_offs"][b]["noise"]
        cells = [f"{c}/{t}" if t else "-" for c, t in (q, n, (q[0] + n[0], q[1] + n[1]))]
        label = "no pause" if b == "none" else f"longest pause {b} s"
        print(f"  {label:35s} {cells[0]:>8s} {cells[1]:>8s} {cells[2]:>8s}")
    print("\nlast voiced sample -> ... (answers not cut off)   median    p90  worst")
    names = {"turn_over": "turn over (stopped listening)", "transcript": "transcript event",
             "result": "result at the caller"}  # fmt: skip
    for name, label in names.items():
        for cond in ("all", *CONDITIONS):
            print(
                f"  {label + ('' if cond == 'all' else f', {cond}'):46s} {_ms(summary['latency'][name][cond])}"
            )
    wer = summary["wer"]
    print(
        f"\nword error rate: quiet {_pct(wer['quiet'])}, noise {_pct(wer['noise'])}, all {_pct(wer['all'])}"
        f" (answers not cut off: {_pct(summary['wer_not_cut_off'])})"
    )
    print("turn ended by: " + ", ".join(f"{k} {v}" for k, v in summary["rules"].most_common()))
    print("end reasons: " + ", ".join(f"{k} {v}" for k, v in summary["end_reasons"].most_common()))
    for r in runs:
        flag = "CUT" if r.cut_off else ("ERR" if r.error else "ok ")
        if not verbose and flag == "ok " and (r.wer or 0) < 0.3:
            continue
        lat = f"{r.latency_turn_over * 1000:6.0f} ms" if r.latency_turn_over is not None else "     -   "
        print(
            f"  {flag} {r.id:28s} {r.noise:6s} {r.bucket:8s} {lat} wer {_pct(r.wer):>6s} [{r.rule}] {r.transcript!r}"
        )
        if r.error:
            print(f"      {r.error}")
        if verbose:
            print(f"      ref {r.reference!r}; pauses {r.pauses}; " + ", ".join(r.timeline))


# --- the run ---------------------------------------------------------------------------------------


def warm_clip(clips: list[Clip]) -> Clip | None:
    """A quiet tune-half answer without a pause: it warms the engines and adds no pause to remember."""
    fits = [c for c in clips if c.half == "tune" and c.noise == "quiet" and not c.pauses and not c.short]
    return min(fits, key=lambda c: c.id) if fits else None


def _daemon_log_problems(path: Path) -> Counter[str]:
    problems: Counter[str] = Counter()
    for line in path.read_text(errors="replace").splitlines() if path.exists() else []:
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if entry.get("level") in ("error", "critical", "warning"):
            problems[f"{entry.get('level')}: {entry.get('event')}"] += 1
    return problems


def _open_anchor(rig: VirtualAudioRig, root: Path, client: Client) -> tuple[anchor.AnchorDriver | None, str]:
    """VoiceMode pointed at the daemon's own Whisper and Piper engines, or why it could not be."""
    urls = {name: info.url for name, info in start_services(client, ENGINES).items()}
    try:
        python = anchor.install()
        voice = engine_voice(urls["piper"])
        return anchor.AnchorDriver(
            python, root / "voicemode-home", rig.env, urls["piper"], urls["whisper"], voice
        ), ""
    except (anchor.AnchorUnavailable, OSError, TimeoutError) as exc:
        return None, str(exc)


def code_version() -> dict[str, str]:
    """The commit and a digest of uncommitted changes to the daemon: what these figures are of."""
    top = Path(__file__).resolve().parent.parent

    def git(*args: str) -> str:
        done = subprocess.run(["git", *args], cwd=top, capture_output=True, text=True, check=False)
        return done.stdout.strip() if done.returncode == 0 else ""

    diff = git("diff", "HEAD", "--", "voicemoded")
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "voicemoded_diff_sha256": sha256(diff.encode()).hexdigest()[:12] if diff else "",
    }


def _progress(i: int, n: int, who: str, clip: Clip, one: Run, verbose: bool) -> None:
    if verbose or one.cut_off or one.error:
        state = "cut off" if one.cut_off else one.error or "ok"
        print(f"  [{i}/{n}] {who} {clip.id} {clip.noise} {bucket(clip)}: {state}", flush=True)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Play the sample through a private daemon (and VoiceMode with ``--anchor``); every run's record."""
    folder = Path(args.corpus).expanduser() if args.corpus else default_out()
    if not (folder / "manifest.jsonl").exists():
        if not args.generate:
            raise SystemExit(
                f"no corpus in {folder}: build it with `python benchmarks/turn_corpus.py` (or pass --generate)"
            )
        generate(folder, log=print)
    clips = load_corpus(folder)
    chosen = sample(clips, args.clips, args.seed)
    if not chosen:
        raise SystemExit(f"the corpus in {folder} has no test-half clips")
    print(f"{len(chosen)} test clips of {len(clips)} in {folder}: "
          + ", ".join(f"{k} {v}" for k, v in sorted(Counter(bucket(c) for c in chosen).items())))  # fmt: skip

    code = code_version()  # now, before the daemon starts: the tree may change during the run
    root = Path(tempfile.mkdtemp(prefix="vm-turn-taking-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("VOICEMODE_")}
    (root / "home").mkdir()
    env.update(
        HOME=str(root / "home"), VOICEMODE_BASE_DIR=str(root / "state"),
        VOICEMODE_CONFIG_WATCH="false", **engine_env(ENGINES),
    )  # fmt: skip
    rig = VirtualAudioRig(root / "audio").start()
    env.update(rig.env)
    proc = None
    ear: Ear | None = None
    watch: PulseWatch | None = None
    driver: anchor.AnchorDriver | None = None
    started = time.monotonic()
    try:
        proc, client = start_daemon(root, env, "turn-taking-bench")
        start_services(client, ENGINES)
        ear = Ear(rig)
        missing = "not asked for (--anchor)"
        if args.anchor:
            watch = PulseWatch(rig)
            driver, missing = _open_anchor(rig, root, client)
        warm = warm_clip(clips)
        if warm is not None:  # not counted: first-call initialisation on both sides
            ours(client, rig, warm, warm.load(), args.turn_timeout)
            if driver is not None and watch is not None:
                theirs(driver, watch, rig, warm, warm.load(), args.turn_timeout)
            time.sleep(SETTLE_S)
        mine: list[Run] = []
        anchors: list[Run] = []
        for i, clip in enumerate(chosen, 1):
            pcm = clip.load()
            mine.append(score(clip, pcm, ours(client, rig, clip, pcm, args.turn_timeout), ear))
            _progress(i, len(chosen), "voicemoded", clip, mine[-1], args.verbose)
            if proc.poll() is not None:
                raise RuntimeError(f"voicemoded exited ({proc.returncode}); its log is in {root}")
            time.sleep(SETTLE_S)
            if driver is not None and watch is not None:  # alternate, so machine load falls on both
                anchors.append(
                    score(clip, pcm, theirs(driver, watch, rig, clip, pcm, args.turn_timeout), ear)
                )
                _progress(i, len(chosen), "VoiceMode", clip, anchors[-1], args.verbose)
                time.sleep(SETTLE_S)
        client.close()
        elapsed = time.monotonic() - started
        summary = summarise(mine)
        summary["seconds"] = elapsed
        summary["daemon_log"] = _daemon_log_problems(root / "voicemoded.log")
        report("voicemoded", summary, mine, args.verbose)
        out: dict[str, Any] = {"summary": summary, "runs": [{**asdict(r), "wer": r.wer} for r in mine],
                               "seed": args.seed, "corpus": str(folder), "code": code}  # fmt: skip
        if driver is not None:
            out["anchor"] = {
                "summary": summarise(anchors),
                "runs": [{**asdict(r), "wer": r.wer} for r in anchors],
            }
            report(f"VoiceMode {anchor.VERSION}", out["anchor"]["summary"], anchors, args.verbose)
        elif args.anchor:
            print(f"\nVoiceMode {anchor.VERSION}: no figures: {missing}")
        print(f"\n{len(chosen)} clips in {elapsed:.0f} s (daemon start and warm-up included)")
        if summary["daemon_log"]:
            print("daemon log: " + ", ".join(f"{k} x{v}" for k, v in summary["daemon_log"].most_common(8)))
        if args.json:
            Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
        return out
    finally:
        if driver is not None:
            driver.close()
        if watch is not None:
            watch.close()
        if ear is not None:
            ear.close()
        if proc is not None and proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
        rig.stop()
        if args.keep:
            print(f"kept {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--clips", type=int, default=60, help="test-half clips to play (default 60)")
    p.add_argument("--seed", type=int, default=1, help="seed of the sample and its order (default 1)")
    p.add_argument("--corpus", default=None, help=f"corpus folder (default {default_out()})")
    p.add_argument("--generate", action="store_true", help="build the corpus first when it is missing")
    p.add_argument("--turn-timeout", type=float, default=30.0, help="longest listen per turn, s (default 30)")
    p.add_argument("--json", default=None, metavar="OUT", help="write the summary and every run's record")
    p.add_argument("--anchor", action="store_true", help=f"also run VoiceMode {anchor.VERSION} on each clip")
    p.add_argument("--keep", action="store_true", help="keep the temp folder (the daemon's log)")
    p.add_argument("--verbose", action="store_true", help="print every turn with its event timeline")
    return p


def main(argv: list[str] | None = None) -> int:
    run(parser().parse_args(argv))
    return 0


if __name__ == "__main__":
    sys.exit(main())

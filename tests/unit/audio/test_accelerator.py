"""VOICEMODE_DEVICE's policy: which device each runtime gets, and the reason it is given."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from voicemoded import accelerator
from voicemoded.accelerator import Placement, decide


def test_cpu_is_the_cpu_whatever_is_found() -> None:
    assert decide("ctranslate2", "cpu", "") == Placement("ctranslate2", "cpu", "cpu", "VOICEMODE_DEVICE=cpu")


def test_auto_and_cuda_take_cuda_when_it_is_usable() -> None:
    for requested in ("auto", "cuda"):
        placement = decide("onnxruntime", requested, "")
        assert placement.device == "cuda" and not placement.fell_back


def test_cuda_without_cuda_falls_back_to_the_cpu_with_the_reason() -> None:
    placement = decide("ctranslate2", "cuda", "no CUDA device on this machine")
    assert placement.device == "cpu" and placement.fell_back
    assert placement.reason == "no CUDA device on this machine"
    # auto on a machine without CUDA is the CPU too, with the reason, but it is no fallback.
    auto = decide("ctranslate2", "auto", "no CUDA device on this machine")
    assert auto.device == "cpu" and not auto.fell_back and auto.reason


def test_an_unknown_device_is_refused() -> None:
    with pytest.raises(ValueError, match="auto, cpu, cuda"):
        decide("onnxruntime", "gpu", "")


def test_the_engines_device_option_defaults_to_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    import argparse

    for env, expected in (("cuda", "cuda"), ("CPU", "cpu"), ("", "auto"), ("nonsense", "auto")):
        monkeypatch.setenv("VOICEMODE_DEVICE", env)
        parser = argparse.ArgumentParser()
        accelerator.add_argument(parser)
        assert parser.parse_args([]).device == expected
    assert parser.parse_args(["--device", "cpu"]).device == "cpu"


def test_cuda_hidden_from_the_runtimes_falls_back_with_the_reason() -> None:
    """The runtimes themselves, with every GPU hidden: the CPU path this machine (and any other) takes."""
    env = {"CUDA_VISIBLE_DEVICES": "", "PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [sys.executable, "-m", "voicemoded.accelerator", "--device", "cuda", "--json"],
        env=env, capture_output=True, text=True, timeout=60, check=True,
    )  # fmt: skip
    found = {p["runtime"]: p for p in json.loads(done.stdout)}
    assert set(found) == {"ctranslate2", "onnxruntime"}
    ct2 = found["ctranslate2"]
    assert ct2["device"] == "cpu" and ct2["fell_back"] and "no CUDA device" in ct2["reason"]
    if accelerator.onnx_cuda_problem():  # a CPU build of onnxruntime says so; a GPU build finds no device
        assert found["onnxruntime"]["fell_back"] and "onnxruntime-gpu" in found["onnxruntime"]["reason"]

"""Where the models run: the CPU, or a CUDA GPU when there is one.

One setting, ``VOICEMODE_DEVICE`` (``auto``, ``cpu`` or ``cuda``), decides for every model: faster-whisper
on CTranslate2, and the ONNX Runtime models (the end-of-turn model, Kokoro). ``auto`` uses CUDA when the
runtime finds it; ``cuda`` asks for it and, where there is none, falls back to the CPU and says why, so a
configuration copied from a GPU machine never stops speech on a laptop. Each load logs one line naming
the device and the reason.

Run as ``python -m voicemoded.accelerator [--device cuda] [--json]`` it prints what each runtime finds
(``voicemodectl doctor`` asks it that way, so the front door never imports a runtime).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from dataclasses import dataclass
from typing import Any, Literal

import structlog

log = structlog.get_logger(__name__)

Requested = Literal["auto", "cpu", "cuda"]
CHOICES: tuple[Requested, ...] = ("auto", "cpu", "cuda")
CUDA_PROVIDER = "CUDAExecutionProvider"
CPU_PROVIDER = "CPUExecutionProvider"
NO_CUDA_DEVICE = "no CUDA device on this machine"


@dataclass(frozen=True, slots=True)
class Placement:
    """The device one runtime runs its models on, and why."""

    runtime: str
    """``ctranslate2`` (faster-whisper) or ``onnxruntime`` (end-of-turn model, Kokoro)."""
    requested: str
    device: Literal["cpu", "cuda"]
    reason: str

    @property
    def fell_back(self) -> bool:
        """CUDA was asked for and the CPU is used instead."""
        return self.requested == "cuda" and self.device == "cpu"

    def on_cpu(self, reason: str) -> Placement:
        return dataclasses.replace(self, device="cpu", reason=reason)

    def log(self, model: str) -> None:
        event = "accelerator.fallback" if self.fell_back else "accelerator.chosen"
        (log.warning if self.fell_back else log.info)(
            event, model=model, runtime=self.runtime, requested=self.requested, device=self.device,
            reason=self.reason,
        )  # fmt: skip


def decide(runtime: str, requested: str, cuda_problem: str) -> Placement:
    """The policy, apart from any probing: ``cuda_problem`` is empty when CUDA is usable, else why not."""
    if requested not in CHOICES:
        raise ValueError(f"VOICEMODE_DEVICE must be one of {', '.join(CHOICES)}, not {requested!r}")
    if requested == "cpu":
        return Placement(runtime, requested, "cpu", "VOICEMODE_DEVICE=cpu")
    if not cuda_problem:
        return Placement(runtime, requested, "cuda", f"{runtime} finds a CUDA device")
    return Placement(runtime, requested, "cpu", cuda_problem)


def ctranslate2_cuda_problem() -> str:
    """Why CTranslate2 cannot use CUDA here ("" when it can)."""
    try:
        import ctranslate2
    except ImportError:
        return "ctranslate2 is not installed"
    try:
        count = int(ctranslate2.get_cuda_device_count())
    except Exception as exc:  # a broken CUDA runtime raises from the driver query
        return f"CTranslate2 cannot query CUDA: {exc}"
    return "" if count > 0 else f"{NO_CUDA_DEVICE} (CTranslate2 finds none)"


def onnx_cuda_problem() -> str:
    """Why ONNX Runtime cannot use CUDA here ("" when its build has the CUDA provider)."""
    try:
        import onnxruntime
    except ImportError:
        return "onnxruntime is not installed"
    providers = list(onnxruntime.get_available_providers())
    if CUDA_PROVIDER in providers:
        return ""
    return (
        f"this onnxruntime build has no {CUDA_PROVIDER} (it has {', '.join(providers)}); "
        "onnxruntime-gpu brings it"
    )


def for_ctranslate2(requested: str) -> Placement:
    return decide("ctranslate2", requested, "" if requested == "cpu" else ctranslate2_cuda_problem())


def for_onnx(requested: str) -> Placement:
    return decide("onnxruntime", requested, "" if requested == "cpu" else onnx_cuda_problem())


def whisper_compute_type(device: str) -> str:
    """int8 on the CPU (what the models ship as); on CUDA the fastest type the GPU supports."""
    if device != "cuda":
        return "int8"
    import ctranslate2

    supported = set(ctranslate2.get_supported_compute_types("cuda"))
    return next((t for t in ("int8_float16", "float16", "int8") if t in supported), "float32")


def onnx_session(path: str, requested: str, model: str, options: Any = None) -> tuple[Any, Placement]:
    """An ONNX Runtime session on the chosen device; a CUDA provider that fails to start falls back.

    ONNX Runtime itself drops a CUDA provider it cannot start (missing cuDNN, no driver) and runs on the
    CPU: the session's providers tell, and the placement says so instead of claiming the GPU.
    """
    import onnxruntime as ort

    placement = for_onnx(requested)
    providers = [CUDA_PROVIDER, CPU_PROVIDER] if placement.device == "cuda" else [CPU_PROVIDER]
    session = ort.InferenceSession(path, options, providers=providers)
    if placement.device == "cuda" and CUDA_PROVIDER not in session.get_providers():
        placement = placement.on_cpu("onnxruntime could not start its CUDA provider (see its log)")
    placement.log(model)
    return session, placement


def requested_from_env() -> str:
    value = os.environ.get("VOICEMODE_DEVICE", "").strip().lower()
    return value if value in CHOICES else "auto"


def add_argument(parser: argparse.ArgumentParser) -> None:
    """``--device`` for an engine server; its default is VOICEMODE_DEVICE from the environment."""
    parser.add_argument(
        "--device",
        choices=CHOICES,
        default=requested_from_env(),
        help="where models run: auto (CUDA when present), cpu, or cuda (falls back to the CPU, saying why)",
    )


def report(requested: str) -> list[Placement]:
    """What every runtime would do with ``requested``: the doctor's view."""
    return [for_ctranslate2(requested), for_onnx(requested)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m voicemoded.accelerator", description=__doc__)
    add_argument(parser)
    parser.add_argument("--json", action="store_true", help="one JSON object per runtime, as a list")
    args = parser.parse_args(argv)
    placements = report(args.device)
    if args.json:
        print(json.dumps([dataclasses.asdict(p) | {"fell_back": p.fell_back} for p in placements]))
    else:
        for p in placements:
            print(f"{p.runtime}: {p.device} ({p.reason})")
    return 0


if __name__ == "__main__":
    sys.exit(main())

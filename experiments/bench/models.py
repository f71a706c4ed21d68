"""What the benchmark measures and how: settings, the models (steps and references), devices."""

from __future__ import annotations

import contextlib
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import nn

from roadmap.endpoints import ENDPOINTS, Endpoint
from roadmap.model import build_model
from roadmap.select import select_steps
from roadmap.spec import ArchSpec

# Dense (no sparsity) bf16 tensor-core peak, TFLOP/s, from the vendors' data sheets. Matched
# against `torch.cuda.get_device_name()` in order, first hit wins (more specific names first).
PEAK_BF16_TFLOPS: tuple[tuple[str, float], ...] = (
    ("H100 PCIe", 756.0),
    ("H100 NVL", 835.0),
    ("GH200", 989.0),
    ("H200", 989.0),
    ("H100", 989.0),  # SXM5 ("NVIDIA H100 80GB HBM3")
    ("A100", 312.0),
    ("L40S", 362.0),
    ("L4", 121.0),
    ("A10G", 70.0),
    ("A10", 125.0),
)


@dataclass(frozen=True)
class BenchConfig:
    """How to measure: device, batch, precision, layout, compile and the timing schedule."""

    device: str = "cpu"
    batch: int = 32
    image_size: int = 224
    amp: str | None = None  # None (fp32) or "bf16" (autocast)
    channels_last: bool = False
    compile: bool = False
    warmup: int = 2  # untimed iterations per model and mode before the repeats
    iters: int = 2  # iterations per timed repeat
    repeats: int = 5  # timed repeats per model and mode; the median is reported
    num_classes: int = 1000
    memory: bool = True  # measure the peak memory of one training step
    peak_tflops: float | None = None  # overrides the device table for MFU
    timer: str = "wall"  # "wall" clock, or "cpu": this process's CPU seconds (CPU only)
    seed: int = 0


@dataclass(frozen=True)
class Entry:
    """One model to benchmark: a roadmap step or a reference implementation."""

    model: str  # timm name of a step ("resnet50_kernel_7") or "<lib>.<name>" of a reference
    track: str
    step: str | None  # None for a reference
    reference: str | None  # the reference this step is compared with, if any
    build: Callable[[], nn.Module] = field(repr=False, compare=False)


def plan(
    track: str,
    steps: str | Sequence[str] = "all",
    references: bool = True,
    num_classes: int = 1000,
) -> list[list[Entry]]:
    """Groups of models to measure: each endpoint with its reference, other steps alone.

    `steps` is what `--steps` takes (roadmap.select): all, on-path, endpoints or step names.
    """
    endpoints = {e.step: e for e in ENDPOINTS if e.track == track}
    groups = []
    for step in select_steps(steps, track):
        endpoint = endpoints.get(step.name) if references else None
        ours = Entry(
            step.model_name,
            track,
            step.name,
            endpoint.reference if endpoint else None,
            _step_builder(step.spec, num_classes),
        )
        group = [ours]
        if endpoint is not None:
            build = _reference_builder(endpoint, num_classes)
            group.append(Entry(endpoint.reference, track, None, None, build))
        groups.append(group)
    return groups


def _step_builder(spec: ArchSpec, num_classes: int) -> Callable[[], nn.Module]:
    """A function that builds the step's model."""
    return lambda: build_model(spec, num_classes=num_classes)


def _reference_builder(endpoint: Endpoint, num_classes: int) -> Callable[[], nn.Module]:
    """A function that builds the endpoint's reference model."""
    return lambda: endpoint.build_reference(num_classes=num_classes)


def peak_bf16_tflops(device_name: str) -> float | None:
    """Dense bf16 peak of a known CUDA device (by `get_device_name`), else None."""
    for key, tflops in PEAK_BF16_TFLOPS:
        if key.lower() in device_name.lower():
            return tflops
    return None


def device_name(device: torch.device) -> str:
    """A human-readable name of the device the benchmark runs on."""
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu} ({torch.get_num_threads()} threads)"

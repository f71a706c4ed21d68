"""Training and inference throughput of roadmap steps against their reference implementations.

Every number here is measured: a model is built, warmed up, then timed over several repeats of a
few iterations each, and the median repeat is reported with its spread. A roadmap endpoint and its
reference (torchvision / timm) form a *group*: their repeats are interleaved (A B A B ..., order
rotated each round), so that a noisy, shared machine slows both alike and their ratio stays
meaningful. Groups run one after another, so at most two models are resident at a time.

- Training throughput: forward + cross-entropy + backward + AdamW step + zero_grad, images/s.
- Inference throughput: eval mode, no grad, images/s.
- Peak memory (MB = 2**20 bytes) of one training step. CUDA: `torch.cuda.max_memory_allocated`
  over the step (parameters, gradients, optimizer state, activations, workspaces). CPU: the bytes
  of parameters, buffers and AdamW state alive before the step, plus the peak of tensor bytes
  allocated *during* the step (activations, gradients, workspaces) as reported by PyTorch's CPU
  allocator to the profiler. Memory that bypasses that allocator (e.g. oneDNN's own scratchpads)
  is not included; the CPU number is therefore a lower bound of the process's extra footprint.
- GFLOPs: multiply-adds of one forward pass at the benchmark's image size (`count_gflops`).
- MFU: achieved training FLOP/s (3 x forward, 2 FLOPs per multiply-add) over the device's dense
  bf16 peak, on CUDA from `PEAK_BF16_TFLOPS` by device name or from `--peak-tflops`.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from experiments.bench.models import BenchConfig, Entry, device_name, peak_bf16_tflops
from experiments.bench.profiler import cpu_step_peak_bytes
from experiments.train import cuda
from roadmap.complexity import count_gflops, count_params
from roadmap.errors import UserError


class _Runner:
    """A model on the device with its optimizer, a fixed batch and timed train/infer loops."""

    def __init__(self, entry: Entry, cfg: BenchConfig, device: torch.device) -> None:
        torch.manual_seed(cfg.seed)
        model = entry.build()
        self.params = count_params(model)
        self.gflops = count_gflops(model, cfg.image_size)
        fmt = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.model = model.to(device, memory_format=fmt).train()
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(),
            lr=1e-4,
            weight_decay=0.05,
            **cuda.optimizer_options("adamw", device),  # the trainer's (experiments/train/cuda.py)
        )
        self.forward: nn.Module = (
            torch.compile(self.model) if cfg.compile else self.model  # type: ignore[assignment]
        )
        gen = torch.Generator().manual_seed(cfg.seed)
        size = (cfg.batch, 3, cfg.image_size, cfg.image_size)
        self.x = torch.randn(size, generator=gen).to(device, memory_format=fmt)
        self.y = torch.randint(0, cfg.num_classes, (cfg.batch,), generator=gen).to(device)
        self.cfg, self.device = cfg, device
        self.train_s: list[float] = []
        self.infer_s: list[float] = []

    def _autocast(self) -> contextlib.AbstractContextManager:
        if self.cfg.amp == "bf16":
            return torch.autocast(self.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_iter(self) -> None:
        """One optimisation step on the fixed batch."""
        with self._autocast():
            loss = F.cross_entropy(self.forward(self.x), self.y)
        loss.backward()
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    @torch.no_grad()
    def infer_iter(self) -> None:
        """One forward pass in eval mode."""
        with self._autocast():
            self.forward(self.x)

    def warmup(self) -> None:
        """Untimed iterations of both modes (compilation, allocator and oneDNN caches)."""
        self.model.train()
        for _ in range(self.cfg.warmup):
            self.train_iter()
        self.model.eval()
        for _ in range(self.cfg.warmup):
            self.infer_iter()
        self.model.train()

    def time(self, mode: str) -> None:
        """One timed repeat of `cfg.iters` iterations of `mode` ("train" or "infer")."""
        train = mode == "train"
        self.model.train(train)
        step = self.train_iter if train else self.infer_iter
        seconds = _timed(step, self.cfg.iters, self.device, self.cfg.timer)
        (self.train_s if train else self.infer_s).append(seconds)
        self.model.train()

    def peak_memory_mb(self) -> float | None:
        """Peak memory of one training step (see the module doc for what it counts)."""
        self.model.train()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
            self.train_iter()
            torch.cuda.synchronize(self.device)
            return torch.cuda.max_memory_allocated(self.device) / 2**20
        if self.device.type != "cpu":
            return None
        resident = _state_bytes(self.model, self.optimizer)
        peak = cpu_step_peak_bytes(self.train_iter)
        return None if peak is None else (resident + peak) / 2**20

    def close(self) -> None:
        """Drop the model, optimizer and batch."""
        del self.model, self.optimizer, self.forward, self.x, self.y


def _timed(fn: Callable[[], None], iters: int, device: torch.device, timer: str = "wall") -> float:
    """Seconds for `iters` calls of `fn`; on CUDA between events after a synchronise.

    `timer="cpu"` counts this process's CPU seconds instead of wall-clock ones (CPU device only).
    """
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        start = torch.cuda.Event(enable_timing=True)
        end = torch.cuda.Event(enable_timing=True)
        start.record()
        for _ in range(iters):
            fn()
        end.record()
        end.synchronize()
        return start.elapsed_time(end) / 1e3
    clock = time.process_time if timer == "cpu" else time.perf_counter
    t0 = clock()
    for _ in range(iters):
        fn()
    return clock() - t0


def _state_bytes(model: nn.Module, optimizer: torch.optim.Optimizer) -> int:
    """Bytes of parameters, buffers, existing gradients and optimizer state tensors."""
    seen: set[int] = set()
    total = 0

    def add(t: torch.Tensor | None) -> None:
        nonlocal total
        if isinstance(t, torch.Tensor) and t.data_ptr() not in seen:
            seen.add(t.data_ptr())
            total += t.untyped_storage().nbytes()

    for p in model.parameters():
        add(p)
        add(p.grad)
    for b in model.buffers():
        add(b)
    for state in optimizer.state.values():
        for t in state.values():
            add(t)
    return total


def _spread(seconds: list[float], images: int) -> tuple[float, float, float]:
    """Median, min and max images/s over repeats."""
    rates = [images / s for s in seconds]
    return statistics.median(rates), min(rates), max(rates)


def _rotations(n: int, rounds: int) -> Iterator[list[int]]:
    """Orders of `n` models for each round, rotated so that no model always runs first."""
    for r in range(rounds):
        yield [(i + r) % n for i in range(n)]


def measure_group(
    group: Sequence[Entry], cfg: BenchConfig, device: torch.device | None = None
) -> list[dict[str, Any]]:
    """Measure the models of one group with interleaved repeats; one row per model."""
    device = device or torch.device(cfg.device)
    runners = [_Runner(e, cfg, device) for e in group]
    try:
        for r in runners:
            r.warmup()
        for mode in ("train", "infer"):
            for order in _rotations(len(runners), cfg.repeats):
                for i in order:
                    runners[i].time(mode)
        memory = [r.peak_memory_mb() if cfg.memory else None for r in runners]
        peak = cfg.peak_tflops
        if peak is None and device.type == "cuda":
            peak = peak_bf16_tflops(torch.cuda.get_device_name(device))
        by_model = {e.model: r for e, r in zip(group, runners, strict=True)}
        return [
            _row(entry, runner, by_model.get(entry.reference or ""), mem, peak, cfg)
            for entry, runner, mem in zip(group, runners, memory, strict=True)
        ]
    finally:
        for r in runners:
            r.close()
        del runners
        gc.collect()
        if device.type == "cuda":
            torch.cuda.empty_cache()


def _row(
    entry: Entry,
    runner: _Runner,
    ref: _Runner | None,
    memory_mb: float | None,
    peak_tflops: float | None,
    cfg: BenchConfig,
) -> dict[str, Any]:
    """One model's measured row: throughput with its spread, memory, MFU, ratios."""
    images = cfg.batch * cfg.iters
    train, train_min, train_max = _spread(runner.train_s, images)
    infer, infer_min, infer_max = _spread(runner.infer_s, images)
    mfu = None
    if peak_tflops:
        mfu = train * 3 * 2 * runner.gflops * 1e9 / (peak_tflops * 1e12)
    return {
        "model": entry.model,
        "track": entry.track,
        "step": entry.step,
        "reference": entry.reference,
        "params": runner.params,
        "gflops": runner.gflops,
        "train_img_s": train,
        "train_img_s_min": train_min,
        "train_img_s_max": train_max,
        "infer_img_s": infer,
        "infer_img_s_min": infer_min,
        "infer_img_s_max": infer_max,
        "peak_mem_mb": memory_mb,
        "mfu": mfu,
        "train_ratio_to_reference": (_paired_ratio(runner.train_s, ref.train_s) if ref else None),
        "infer_ratio_to_reference": (_paired_ratio(runner.infer_s, ref.infer_s) if ref else None),
    }


def _paired_ratio(ours: list[float], ref: list[float]) -> float:
    """Median over rounds of the reference's seconds over ours (images/s ratio).

    Each round times ours and the reference back to back, so a round's ratio cancels the load
    that a shared machine had at that moment; the median drops disturbed rounds.
    """
    return statistics.median(r / o for o, r in zip(ours, ref, strict=True))


def run(
    groups: Sequence[Sequence[Entry]],
    cfg: BenchConfig,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Measure every group in turn; rows carry the run's settings too."""
    device = torch.device(cfg.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: CUDA is not available on this machine")
    if cfg.timer not in ("wall", "cpu") or (cfg.timer == "cpu" and device.type != "cpu"):
        raise UserError(f"--timer {cfg.timer}: wall, or cpu on the CPU device only")
    if cfg.amp not in (None, "bf16"):
        raise UserError(f"--amp must be bf16 (or omitted), got {cfg.amp!r}")
    if device.type == "cuda":
        # CUDA events record on the current device's stream: it must be the measured one.
        if device.index is not None:
            torch.cuda.set_device(device)
    cuda.configure(device)  # the trainer's CUDA settings (cudnn.benchmark, TF32)
    settings = {
        "device": device.type,
        "device_name": device_name(device),
        "threads": torch.get_num_threads(),
        "batch": cfg.batch,
        "image_size": cfg.image_size,
        "amp": cfg.amp or "fp32",
        "channels_last": cfg.channels_last,
        "compile": cfg.compile,
        "repeats": cfg.repeats,
        "iters": cfg.iters,
        "timer": cfg.timer,
        "torch": torch.__version__,
    }
    rows = []
    for group in groups:
        if progress:
            progress("measuring " + " vs ".join(e.model for e in group))
        rows += [{**row, **settings} for row in measure_group(group, cfg, device)]
    return rows

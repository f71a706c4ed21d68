"""The GPU path's settings, tested on the CPU with fakes (the real ones: tests/test_gpu.py).

One module (experiments/train/cuda.py) sets a step's CUDA flags and optimizer implementation
for the trainer and the benchmark alike; local GPU slots are numbered as the machine numbers
its GPUs, through the sweep's own CUDA_VISIBLE_DEVICES.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import train_fixtures as fx
from torch import nn

from experiments.bench import measure
from experiments.bench.models import BenchConfig, Entry
from experiments.recipe import resolve_recipe
from experiments.sweep import local
from experiments.train import Trainer, cuda
from experiments.train.distributed import RankContext


def test_configure_sets_the_flags_on_cuda_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    precision = torch.get_float32_matmul_precision()
    try:
        torch.set_float32_matmul_precision("highest")
        cuda.configure(torch.device("cpu"))
        assert not torch.backends.cudnn.benchmark and not torch.backends.cuda.matmul.allow_tf32
        cuda.configure(torch.device("cuda", 0))
        assert torch.backends.cudnn.benchmark and torch.backends.cudnn.allow_tf32
        # The float32 presets' matmuls may take TF32, as torch 1.8's (the official code's) did.
        assert torch.get_float32_matmul_precision() == "high"
        assert torch.backends.cuda.matmul.allow_tf32
    finally:
        torch.set_float32_matmul_precision(precision)
    assert cuda.optimizer_options("adamw", torch.device("cuda", 1)) == {"fused": True}
    assert cuda.optimizer_options("sgd", torch.device("cuda", 1)) == {}
    assert cuda.optimizer_options("adamw", torch.device("cpu")) == {"fused": True}
    assert cuda.optimizer_options("sgd", torch.device("cpu")) == {}


def _tiny_entry() -> Entry:
    def build() -> nn.Module:
        return nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                             nn.Linear(4, 10))  # fmt: skip

    return Entry("tiny", "resnet50", None, None, build)


def test_trainer_and_bench_take_the_same_optimizer_options(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_overrides
) -> None:
    asked = []

    def options(opt: str, device: torch.device) -> dict:
        asked.append(opt)
        return {"foreach": False}  # a mark that the optimizer was built with these

    monkeypatch.setattr(cuda, "optimizer_options", options)
    trainer = Trainer(fx.tiny_run(tmp_path / "r", "depthwise_conv", tiny_overrides))
    cfg = BenchConfig(batch=2, image_size=16, warmup=0, iters=1, repeats=1, num_classes=10)
    runner = measure._Runner(_tiny_entry(), cfg, torch.device("cpu"))
    assert asked == ["adamw", "adamw"]
    for optimizer in (trainer.optimizer, runner.optimizer):
        assert isinstance(optimizer, torch.optim.AdamW) and optimizer.defaults["foreach"] is False


def test_a_cuda_rank_and_the_bench_configure_the_same_way(monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[torch.device] = []
    monkeypatch.setattr(cuda, "configure", seen.append)
    cfg = BenchConfig(batch=2, image_size=16, warmup=0, iters=1, repeats=1, num_classes=10,
                      memory=False)  # fmt: skip
    measure.run([[_tiny_entry()]], cfg)
    # A rank on a (faked) GPU: the same call with its device.
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a: True)
    ctx = RankContext.start(resolve_recipe("smoke"))
    assert ctx.device == torch.device("cuda", 0)
    assert seen == [torch.device("cpu"), torch.device("cuda", 0)]


def test_local_gpu_slots_follow_the_parents_visible_devices(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(local, "_gpu_count", lambda: 2)
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "2,3")
    assert [s.gpus for s in local.local_slots()] == [(2,), (3,)]
    assert [s.gpus for s in local.local_slots(1)] == [(2,)]
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES")
    assert [s.gpus for s in local.local_slots()] == [(0,), (1,)]
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "GPU-5e1f2a3b,GPU-77aa")
    with pytest.raises(ValueError, match="CUDA_VISIBLE_DEVICES=GPU-5e1f2a3b,GPU-77aa"):
        local.local_slots()


def test_a_cpu_run_uses_fused_adamw_and_it_follows_the_loop_implementation(
    tmp_path: Path, tiny_overrides
) -> None:
    trainer = Trainer(fx.tiny_run(tmp_path / "r", "depthwise_conv", tiny_overrides))
    assert trainer.optimizer.defaults["fused"] is True
    # The fused CPU kernel computes torch's loop formula: 20 steps agree to float32 rounding.
    torch.manual_seed(0)
    start = [torch.randn(64, 32), torch.randn(32)]
    grads = [[torch.randn_like(p) for p in start] for _ in range(20)]
    finals = []
    for fused in (False, True):
        params = [p.clone().requires_grad_() for p in start]
        opt = torch.optim.AdamW(params, lr=1e-2, weight_decay=0.05, fused=fused)
        for step in grads:
            for p, g in zip(params, step, strict=True):
                p.grad = g.clone()
            opt.step()
        finals.append(params)
    for a, b in zip(*finals, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # float32: a few ulps over 20 steps
        assert not torch.equal(a, start[0] if a.dim() == 2 else start[1])

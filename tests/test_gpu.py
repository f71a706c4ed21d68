"""The CUDA path: fp32+TF32, bf16 + channels_last, accumulation, fp16, resume, compile, bench.

Marked `gpu` and skipped, with the reason, where torch sees no CUDA device; `make gpu-check`
runs them with the GPU benchmark (experiments/bench/gpu_check.py). Each is a short run of a
real roadmap step on the built-in data. Tolerances: the accumulation comparison runs in float32
with TF32 off and deterministic cuDNN, so the CPU's derivation holds (tests/test_train_scale.py:
weights within 0.5% of AdamW's longest path, 5e-3 x T x lr); bf16 runs (u = 2**-8) are compared
with eager or with themselves only where their rounding is the same on both sides.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import train_fixtures as fx

from experiments.runs import records
from experiments.train import Trainer, cuda
from experiments.train import checkpoint as ckpt
from experiments.train.distributed import RankContext
from roadmap.cli import main
from roadmap.select import select_steps

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(
        not torch.cuda.is_available(),
        reason="no CUDA device here: the GPU suite runs where torch sees one (make gpu-check)",
    ),
]

ENDPOINTS = [s.name for s in select_steps("endpoints", "resnet50")]
SETS = (
    "recipe.builtin_train_per_class=8",  # 80 images: 5 steps of 16
    "recipe.builtin_val_per_class=5",
    "recipe.batch_size=16",
    "recipe.base_batch=16",
    "recipe.epochs=2",
    "recipe.warmup_epochs=0.5",
    "recipe.workers=2",
    "recipe.keep_final_checkpoint=true",
    "recipe.eval_every=1",  # evaluate every epoch (smoke: the last only)
)
BF16 = ("recipe.amp_dtype=bfloat16", "recipe.channels_last=true")


@pytest.mark.parametrize("step", ENDPOINTS)
def test_each_endpoint_trains_in_bf16_channels_last(tmp_path: Path, step: str) -> None:
    trainer = Trainer(fx.tiny_run(tmp_path / step, step, (*SETS, *BF16)))
    assert trainer.device.type == "cuda"
    conv = next(m for m in trainer.model.modules() if isinstance(m, torch.nn.Conv2d))
    assert conv.weight.is_contiguous(memory_format=torch.channels_last)
    dtypes = []
    conv.register_forward_hook(lambda m, i, out: dtypes.append(out.dtype))
    result = trainer.fit()
    assert result["status"] == "done" and result["device"].startswith("cuda")
    assert result["iterations"] == 10 and result["top1"] is not None
    assert set(dtypes) == {torch.bfloat16}  # training and evaluation ran under autocast
    losses = [loss for (loss,) in fx.epochs(trainer.run_dir, "train_loss")]
    assert all(torch.isfinite(torch.tensor(losses)))


def test_the_presets_float32_trains_and_evaluates_without_autocast_under_tf32(
    tmp_path: Path,
) -> None:
    trainer = Trainer(fx.tiny_run(tmp_path / "fp32", ENDPOINTS[-1], SETS))  # the preset's dtype
    assert trainer.recipe.amp_dtype == "float32" and trainer.rank_context.amp_dtype == torch.float32
    assert torch.backends.cuda.matmul.allow_tf32 and torch.backends.cudnn.allow_tf32
    dtypes = set()
    for layer in (torch.nn.Conv2d, torch.nn.Linear):
        module = next(m for m in trainer.model.modules() if isinstance(m, layer))
        module.register_forward_hook(lambda m, i, out: dtypes.add(out.dtype))
    result = trainer.fit()
    assert result["status"] == "done" and result["top1"] is not None
    assert dtypes == {torch.float32}  # no autocast in training or evaluation


def test_accumulation_matches_the_large_batch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.backends.cuda.matmul, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", False)
    monkeypatch.setattr(torch.backends.cudnn, "deterministic", True)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", False)
    monkeypatch.setattr(cuda, "configure", lambda device: None)  # keep the flags above
    step, fp32 = fx.norm_free_step(), ("recipe.amp_dtype=float32",)
    layouts = {"large": (), "accum": ("recipe.batch_size=8", "recipe.accum_steps=2")}
    runs = {}
    for name, layout in layouts.items():
        runs[name] = fx.tiny_run(tmp_path / name, step, (*SETS, *fp32, *layout), fx.TINY_MODEL)
        Trainer(runs[name]).fit()
    result = records.read_json(runs["accum"] / records.RESULT)
    assert (result["accum_steps"], result["effective_batch"]) == (2, 16)
    assert fx.epochs(runs["large"], "top1") == fx.epochs(runs["accum"], "top1")
    for (a,), (b,) in zip(*(fx.epochs(d, "train_loss") for d in runs.values()), strict=True):
        assert b == pytest.approx(a, rel=2 * 32 * fx.U32)
    tolerance = 5e-3 * result["iterations"] * result["lr"]
    assert fx.max_abs_diff(*(fx.final_weights(d) for d in runs.values())) <= tolerance


def test_fp16_with_its_scaler_clips_the_unscaled_gradient(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    clip = 0.05
    sets = (*SETS, "recipe.amp_dtype=float16", f"recipe.clip_grad={clip}")
    trainer = Trainer(fx.tiny_run(tmp_path / "fp16", fx.norm_free_step(), sets, fx.TINY_MODEL))
    assert trainer.scaler.is_enabled()
    norms = fx.record_grad_norms(trainer, monkeypatch)
    result = trainer.fit()
    assert result["status"] == "done"
    assert norms and max(norms) <= clip * (1 + 1e-3)  # unscaled before clipping
    newest = records.list_checkpoints(trainer.ckpt_dir)[0]
    scaler = torch.load(newest, map_location="cpu", weights_only=True)["scaler"]
    assert scaler["scale"] > 0


def test_a_usr2_checkpoints_and_the_same_command_resumes(tmp_path: Path) -> None:
    sets = [a for o in (*SETS, *BF16, "recipe.log_every=1") for a in ("--set", o)]
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "roadmap.cli", "train", "--step", ENDPOINTS[-1],
           "--out", str(out), *sets]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for line in proc.stdout:
        if "epoch 1/2 step 2/5" in line:
            proc.send_signal(signal.SIGUSR2)
            break
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, rest + err
    meta = records.read_json(sorted((out / records.CHECKPOINT_DIR).glob("*.json"))[-1])
    assert 2 <= meta["step"] < 10
    fx.rerun_resumes(cmd, out, meta)


def test_compile_on_one_model_follows_eager(tmp_path: Path) -> None:
    step = ENDPOINTS[-1]
    losses = {}
    for name, extra in (("eager", ()), ("compiled", ("recipe.compile=true",))):
        run_dir = fx.tiny_run(tmp_path / name, step, (*SETS, *BF16, *extra))
        assert Trainer(run_dir).fit()["status"] == "done"
        losses[name] = [loss for (loss,) in fx.epochs(run_dir, "train_loss")]
    # bf16 (u = 2**-8) rounded at other places by inductor's fusions: 5% over 10 steps.
    assert losses["compiled"] == pytest.approx(losses["eager"], rel=5e-2)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs (NCCL DDP)")
def test_two_gpus_train_one_run_with_nccl(tmp_path: Path) -> None:
    out = tmp_path / "ddp"
    fx.torchrun_train(out, fx.norm_free_step(), (*SETS, *BF16, "recipe.batch_size=8"))
    result = records.read_json(out / records.RESULT)
    assert result["world_size"] == 2 and result["effective_batch"] == 16
    assert result["device"] == "cuda:0"


def test_bench_both_endpoints_in_bf16_channels_last(tmp_path: Path) -> None:
    table = tmp_path / "bench.csv"
    args = ["bench", "--device", "cuda", "--amp", "bf16", "--channels-last", "--steps",
            "endpoints", "--batch", "64", "--out", str(table)]  # fmt: skip
    assert main(args) == 0
    with open(table, newline="") as f:
        rows = list(csv.DictReader(f))
    ours = [r for r in rows if r["step"] in ENDPOINTS]
    assert sorted(r["step"] for r in ours) == sorted(ENDPOINTS)
    for row in ours:
        assert float(row["train_img_s"]) > 0 and float(row["infer_img_s"]) > 0
        assert float(row["train_ratio_to_reference"]) > 0
        assert (row["amp"], row["channels_last"]) == ("bf16", "True")


def test_the_trainer_steps_with_the_benchmarks_cuda_settings(tmp_path: Path) -> None:
    trainer = Trainer(fx.tiny_run(tmp_path / "r", ENDPOINTS[-1], (*SETS, *BF16)))
    assert torch.backends.cudnn.benchmark and torch.backends.cudnn.allow_tf32
    assert torch.get_float32_matmul_precision() == "high"
    assert trainer.optimizer.defaults["fused"] is True  # fused AdamW, as the bench's


def test_cuda_rng_states_of_more_gpus_than_visible_restore() -> None:
    state = ckpt.rng_state()
    assert "cuda" not in state  # reseeded before each step: none saved
    state["cuda"] = [torch.cuda.get_rng_state()] * (torch.cuda.device_count() + 1)
    ckpt.set_rng_state(state)  # a checkpoint of an older version, from a bigger machine


def test_local_slots_name_the_gpus_the_sweep_was_given() -> None:
    last = str(torch.cuda.device_count() - 1)
    code = "from experiments.sweep.local import local_slots; print(local_slots()[0].gpus)"
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": last}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         check=True).stdout  # fmt: skip
    assert out.strip() == f"({last},)"


def _agree(rank: int, folder: str, store: str) -> None:
    """One of 2 NCCL ranks: the checkpoint rank 0 chose, loaded on every rank."""
    import torch.distributed as dist

    torch.cuda.set_device(rank)
    dist.init_process_group("nccl", init_method=f"file://{store}", rank=rank, world_size=2)
    ctx = RankContext(rank, 2, torch.device("cuda", rank), torch.bfloat16, False, True)
    _, path = ckpt.load_agreed(folder, ctx.main, ctx.from_main, log=lambda m: None)
    assert path.name == "ckpt_000000002.pt"
    ctx.close()


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs (NCCL)")
def test_rank_0_chooses_the_checkpoint_for_nccl_ranks(tmp_path: Path) -> None:
    for step in (1, 2):
        ckpt.save(tmp_path / "c", step, {"state": {"global_step": step}}, {})
    torch.multiprocessing.spawn(_agree, args=(str(tmp_path / "c"), str(tmp_path / "s")), nprocs=2)


def test_pointwise_convs_take_cudnns_conv_on_the_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    # PointwiseConv2d's GEMM is for tiny CPU maps only: on CUDA the conv runs, as nn.Conv2d's.
    from roadmap import layers

    def no_gemm(*args: object) -> None:
        raise AssertionError("the GEMM ran on CUDA")

    monkeypatch.setattr(layers, "pointwise_gemm", no_gemm)
    fast = layers.PointwiseConv2d(64, 96, 1).cuda()
    conv = torch.nn.Conv2d(64, 96, 1).cuda()
    conv.load_state_dict(fast.state_dict())
    x = torch.randn(8, 64, 1, 1, device="cuda").to(memory_format=torch.channels_last)
    torch.testing.assert_close(fast(x), conv(x), rtol=1e-6, atol=1e-6)

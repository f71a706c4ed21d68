"""`roadmap bench` runs end to end at tiny size and writes its columns (no timing thresholds)."""

from __future__ import annotations

import csv
import os
import re
import sys
from pathlib import Path

import pytest
import torch

from experiments.bench import data as bench_data
from experiments.bench import gpu_check, measure, models, profiler
from experiments.bench import measure as bench_measure  # the CLI imports its run at use
from experiments.bench import results as bench_results
from experiments.bench.models import BenchConfig, plan
from experiments.bench.results import CSV_COLUMNS, load_measured_throughput
from roadmap.cli import main
from roadmap.errors import UserError
from roadmap.steps import steps

REQUIRED = (
    "model",
    "params",
    "gflops",
    "train_img_s",
    "infer_img_s",
    "peak_mem_mb",
    "reference",
    "train_ratio_to_reference",
)
TINY = ["--image-size", "32", "--batch", "2", "--warmup", "1", "--iters", "1"]
TINY += ["--threads", "1"]  # OpenMP barriers crawl on an oversubscribed shared machine


def _image_folder(root: Path, per_class: int = 3) -> Path:
    from PIL import Image

    for cls in ("a", "b"):
        (root / "train" / cls).mkdir(parents=True)
        for i in range(per_class):
            Image.new("RGB", (40, 30), (i * 40, 0, 0)).save(root / "train" / cls / f"{i}.png")
    return root


def test_bench_command_writes_columns(tmp_path: Path, capsys) -> None:
    out = tmp_path / "bench.csv"
    data = _image_folder(tmp_path / "data")
    argv = ["bench", "--steps", "resnet50_modern_recipe", *TINY, "--repeats", "2"]
    argv += ["--data", str(data), "--workers", "0", "--data-batches", "2"]
    assert main([*argv, "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "resnet50_resnet50_modern_recipe" in printed
    assert "torchvision.resnet50" in printed
    assert "training is" in printed and "-bound" in printed
    with out.open() as f:
        reader = csv.DictReader(f)
        rows = list(reader)
    assert set(REQUIRED) <= set(reader.fieldnames or [])
    assert [r["model"] for r in rows] == [
        "resnet50_resnet50_modern_recipe",
        "torchvision.resnet50",
    ]
    ours, ref = rows
    assert ours["reference"] == "torchvision.resnet50" and ref["reference"] == ""
    # the step as trained: torchvision's ResNet-50 and one layer-scale gamma per block
    gammas = 256 * 3 + 512 * 4 + 1024 * 6 + 2048 * 3
    assert int(ours["params"]) - gammas == int(ref["params"]) == 25_557_032
    for row in rows:
        for key in ("gflops", "train_img_s", "infer_img_s", "peak_mem_mb"):
            assert float(row[key]) > 0, key
    ratio = float(ours["train_ratio_to_reference"])  # median of per-round ratios
    lo = float(ours["train_img_s_min"]) / float(ref["train_img_s_max"])
    hi = float(ours["train_img_s_max"]) / float(ref["train_img_s_min"])
    assert lo * 0.999 <= ratio <= hi * 1.001
    assert ref["train_ratio_to_reference"] == ""
    assert ours["device"] == "cpu" and ours["mfu"] == ""  # no peak known on CPU
    assert float(ours["data_img_s"]) > 0 and ours["bound"] in ("data", "model")

    measured = load_measured_throughput(out)
    assert measured[("resnet50", "resnet50_modern_recipe")] == pytest.approx(
        float(ours["train_img_s"])
    )
    assert (
        measured["resnet50_resnet50_modern_recipe"]
        == measured[("resnet50", "resnet50_modern_recipe")]
    )
    assert "torchvision.resnet50" in measured
    assert load_measured_throughput(out, device="cuda") == {}


def test_bench_intermediate_step_has_no_reference_and_mfu_with_peak(
    tmp_path: Path,
) -> None:
    cfg = BenchConfig(
        batch=2,
        image_size=32,
        warmup=0,
        iters=1,
        repeats=1,
        memory=False,
        peak_tflops=1.0,
        timer="cpu",
        num_classes=10,
    )
    groups = plan("resnet50", ["kernel_7"], num_classes=10)
    assert [[e.model for e in g] for g in groups] == [["resnet50_kernel_7"]]
    rows = measure.run(groups, cfg)
    (row,) = rows
    assert row["reference"] is None and row["train_ratio_to_reference"] is None
    assert row["timer"] == "cpu"
    assert row["peak_mem_mb"] is None
    expected = row["train_img_s"] * 6 * row["gflops"] * 1e9 / 1e12
    assert row["mfu"] == pytest.approx(expected)
    bench_results.write_csv(rows, tmp_path / "b.csv")
    with (tmp_path / "b.csv").open() as f:
        assert tuple(csv.DictReader(f).fieldnames or ()) == CSV_COLUMNS


def test_plan_selections() -> None:
    names = [[e.model for e in g] for g in plan("resnet50", ["endpoints"])]
    assert names == [
        ["resnet50_resnet50_modern_recipe", "torchvision.resnet50"],
        ["resnet50_separate_downsampling", "timm.convnext_tiny"],
    ]
    r200 = [[e.model for e in g] for g in plan("resnet200", ["endpoints"])]
    assert r200 == [
        ["resnet200_resnet200_modern_recipe", "timm.resnet200"],
        ["resnet200_separate_downsampling", "timm.convnext_base"],
    ]
    assert len(plan("resnet50")) == len(steps("resnet50"))
    on_path = plan("resnet50", ["on-path"], references=False)
    assert all(len(g) == 1 for g in on_path)
    assert len(on_path) == sum(s.on_path for s in steps("resnet50"))
    with pytest.raises(ValueError, match="kernel_77"):
        plan("resnet50", ["kernel_77"])


def test_peak_table() -> None:
    assert models.peak_bf16_tflops("NVIDIA H100 80GB HBM3") == 989.0
    assert models.peak_bf16_tflops("NVIDIA H100 PCIe") == 756.0
    assert models.peak_bf16_tflops("NVIDIA A100-SXM4-80GB") == 312.0
    assert models.peak_bf16_tflops("NVIDIA L4") == 121.0
    assert models.peak_bf16_tflops("Some Future GPU") is None


def test_cuda_unavailable_is_an_error() -> None:
    if torch.cuda.is_available():
        pytest.skip("CUDA is available here")
    assert main(["bench", "--device", "cuda", *TINY, "--repeats", "1"]) == 2


def test_paired_ratio() -> None:
    # ours 1 s, 1 s, 9 s (disturbed); reference 2 s, 2 s, 2 s: ours is twice as fast
    assert measure._paired_ratio([1.0, 1.0, 9.0], [2.0, 2.0, 2.0]) == 2.0


def test_data_pipeline(tmp_path: Path) -> None:
    data = bench_data.measure_data(
        _image_folder(tmp_path),
        image_size=32,
        batch=2,
        workers=0,
        batches=4,
        warmup_batches=1,
    )
    assert data["images_in_folder"] == 6 and data["data_img_s"] > 0
    rows = [{"train_img_s": data["data_img_s"] * 2}, {"train_img_s": 1e-9}]
    bench_data.add_data_bound(rows, data["data_img_s"])
    assert [r["bound"] for r in rows] == ["data", "model"]


def test_profiler_noise_is_held_back_and_other_stderr_kept(
    capfd: pytest.CaptureFixture,
) -> None:
    noise = (
        "USDT:2026-11-21 12:57:20 28088:28088 SyncActivityProfilerHandler.cpp:39] "
        "profiler_start\n"
        "ERROR:2026-11-21 13:46:48 30204:30204 DeviceProperties.cpp:56] gpuGetDeviceCount "
        "failed with code 35\n"
    )
    with profiler.without_profiler_noise():
        os.write(2, noise.encode())  # as native code writes: to the descriptor
        os.write(2, b"a real native warning\n")
        print("python stderr", file=sys.stderr)
    os.write(2, b"after\n")
    err = capfd.readouterr().err.splitlines()
    # (pytest's capture of sys.stderr does not go through descriptor 2: order not compared)
    assert sorted(err) == ["a real native warning", "after", "python stderr"]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda root: root / "missing", "no such directory"),
        (
            lambda root: (root / "train" / "a").mkdir(parents=True) or root,
            "not an ImageFolder",
        ),
    ],
)
def test_bad_data_fails_before_any_model_is_timed(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch, make, message
) -> None:
    def not_reached(*args, **kwargs):
        raise AssertionError("models were timed before --data was checked")

    monkeypatch.setattr(bench_measure, "run", not_reached)
    argv = [
        "bench",
        "--steps",
        "resnet50_modern_recipe",
        *TINY,
        "--data",
        str(make(tmp_path)),
    ]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    argv[-2:] = ["--data", str(_image_folder(tmp_path / "ok")), "--data-preset", "papr"]
    assert main(argv) == 2
    assert "unknown preset 'papr'. Did you mean 'paper'?" in capsys.readouterr().err


@pytest.mark.parametrize(
    "steps",
    [
        ["resnet50_modern_recipe,separate_downsampling"],
        ["resnet50_modern_recipe", "separate_downsampling"],
        ["resnet50_modern_recipe,", "separate_downsampling"],
    ],
)
def test_steps_take_commas_or_spaces(monkeypatch, steps: list[str]) -> None:
    seen = []

    def planned(groups, cfg, progress=None):
        seen.append([[e.model for e in g] for g in groups])
        raise UserError("planned, not timed")  # stops the command: one line, exit 2

    monkeypatch.setattr(bench_measure, "run", planned)
    assert main(["bench", "--steps", *steps, *TINY]) == 2
    assert seen == [
        [
            ["resnet50_resnet50_modern_recipe", "torchvision.resnet50"],
            ["resnet50_separate_downsampling", "timm.convnext_tiny"],
        ]
    ]


@pytest.mark.skipif(torch.cuda.is_available(), reason="with CUDA, gpu-check runs the real suite")
def test_gpu_check_without_cuda_skips_the_suite_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "gpu-check"
    assert gpu_check.main(["--out", str(out)]) == 77  # automake's "skipped": nothing checked
    printed = capsys.readouterr().out
    assert "skipped" in printed and "no CUDA device" in printed
    assert " passed" not in printed  # nothing counted as passing
    counted = re.search(r"gpu-check: (\d+) GPU test\(s\) ran, (\d+) skipped", printed)
    assert counted and counted[1] == "0"
    summary = re.search(r" (\d+) skipped, \d+ deselected in ", printed)  # pytest's own
    assert summary and int(counted[2]) == int(summary[1]) > 0
    assert not out.exists()

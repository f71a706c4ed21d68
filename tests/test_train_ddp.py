"""DistributedDataParallel on the CPU (gloo): `roadmap train` under torchrun with two ranks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from experiments import records


@pytest.mark.slow
def test_two_ranks_train_one_run(tmp_path: Path, tiny_overrides) -> None:
    out = tmp_path / "r"
    sets = [a for o in tiny_overrides for a in ("--set", o)]
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
        "--master_port", str(29500 + os.getpid() % 1000), "-m", "roadmap.cli", "train",
        "--step", "depthwise_conv", "--out", str(out), *sets,
        "--set", "recipe.builtin_train_per_class=8",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    result = records.read_json(out / records.RESULT)
    assert result["status"] == "done" and result["world_size"] == 2
    assert (
        result["effective_batch"] == 16 and result["iterations"] == 10
    )  # 80 / 16 x 2 epochs
    assert [row["epoch"] for row in records.read_log(out)] == [1, 2]
    assert proc.stdout.count("epoch 2/2: train loss") == 1  # rank 0 alone reports

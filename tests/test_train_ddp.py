"""DistributedDataParallel on the CPU (gloo): `roadmap train` under torchrun with two ranks.

A signal that reaches one rank stops both after the same optimizer step: rank 0 checkpoints it,
both exit 75, and the same command resumes to weights bit-identical to an uninterrupted run.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import TINY_OVERRIDES
from train_fixtures import final_weights, torchrun_train

from experiments.runs import records
from experiments.runs.predictions import accuracy, read_predictions

STEP = "depthwise_conv"


def _sets(tiny_overrides: tuple[str, ...]) -> tuple[str, ...]:
    return (*tiny_overrides, "recipe.builtin_train_per_class=8", "recipe.log_every=1",
            "recipe.keep_final_checkpoint=true")  # fmt: skip


def _rank_pid(launcher: subprocess.Popen, rank: int) -> int:
    """The pid of torchrun's worker process of `rank`."""
    children = Path(f"/proc/{launcher.pid}/task/{launcher.pid}/children")
    for pid in children.read_text().split():
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        if f"RANK={rank}".encode() in environ:
            return int(pid)
    raise AssertionError(f"no worker of rank {rank} under torchrun {launcher.pid}")


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An uninterrupted two-rank run."""
    out = tmp_path_factory.mktemp("ddp") / "whole"
    proc = torchrun_train(out, STEP, _sets(TINY_OVERRIDES))
    assert proc.stdout.count("epoch 2/2: train loss") == 1  # rank 0 alone reports
    return out


@pytest.mark.slow
def test_two_ranks_train_one_run(whole: Path) -> None:
    result = records.read_json(whole / records.RESULT)
    assert result["status"] == "done" and result["world_size"] == 2
    assert result["effective_batch"] == 16 and result["iterations"] == 10  # 80 / 16 x 2
    assert len(result["hosts"]) == 2
    assert [row["epoch"] for row in records.read_log(whole)] == [1, 2]
    found = read_predictions(whole)  # rank 0 wrote both ranks' images, each once
    assert found is not None and len(found["label"]) == result["dataset"]["val_images"]
    assert (accuracy(found), found["epoch"]) == (result["top1"], 2)


@pytest.mark.slow
@pytest.mark.parametrize("signalled", [0, 1])
def test_a_signal_to_one_rank_stops_both_and_the_run_resumes_bit_exactly(
    tmp_path: Path, whole: Path, signalled: int
) -> None:
    sets = _sets(TINY_OVERRIDES)
    cut = tmp_path / "cut"
    args = [a for o in sets for a in ("--set", o)]
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone",
           "--nproc_per_node", "2", "-m", "roadmap.cli", "train", "--step", STEP,
           "--out", str(cut), *args]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    launcher = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True, env=env)  # fmt: skip
    seen = []
    for line in launcher.stdout:
        seen.append(line)
        if "epoch 1/2 step 2/5" in line:
            os.kill(_rank_pid(launcher, signalled), signal.SIGUSR2)
            break
    rest, err = launcher.communicate(timeout=300)
    assert launcher.returncode != 0, "".join(seen) + rest  # the ranks stopped early
    assert err.count("run the same command to resume") == 2, err[-3000:]
    assert not (cut / records.RESULT).exists()
    meta = records.read_json(sorted((cut / records.CHECKPOINT_DIR).glob("*.json"))[-1])
    assert meta["world_size"] == 2 and 2 <= meta["step"] < 10, meta
    assert f"all 2 ranks stop after optimizer step {meta['step']}" in err

    again = torchrun_train(cut, STEP, sets)
    assert f"resuming ckpt_{meta['step']:09d}.pt" in again.stdout
    a, b = final_weights(whole), final_weights(cut)
    assert all(torch.equal(a[k], b[k]) for k in a), "weights differ from the whole run"
    drop = {"time", "seconds", "img_s"}
    logs = [[{k: v for k, v in r.items() if k not in drop} for r in records.read_log(d)]
            for d in (whole, cut)]  # fmt: skip
    assert logs[0] == logs[1]

"""`roadmap train` in its own process: SIGUSR2 mid-epoch checkpoints and exits 75; rerun resumes."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from train_fixtures import rerun_resumes

from experiments.runs import records
from experiments.runs.records import CHECKPOINT_DIR


def test_signal_checkpoints_exits_75_and_the_same_command_resumes(
    tmp_path: Path, tiny_overrides
) -> None:
    sets = [a for o in (*tiny_overrides, "recipe.log_every=1") for a in ("--set", o)]
    out = tmp_path / "r"
    cmd = [sys.executable, "-m", "roadmap.cli", "train", "--step", "depthwise_conv"]
    cmd += ["--out", str(out), *sets]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen = []
    for line in proc.stdout:  # plain progress lines: stdout is not a terminal
        seen.append(line)
        if "epoch 2/2 step 1/5" in line:
            proc.send_signal(signal.SIGUSR2)
            break
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, "".join(seen) + rest + err
    assert "stopped by SIGUSR2; run the same command to resume" in err
    assert not (out / records.RESULT).exists()
    meta = records.read_json(sorted((out / CHECKPOINT_DIR).glob("*.json"))[-1])
    assert meta["reason"] == "signal SIGUSR2" and meta["epoch"] == 1
    assert 1 <= meta["step_in_epoch"] <= 5  # where the step under way when it came ended

    rerun_resumes(cmd, out, meta)

"""`roadmap design plan` (experiments/sweep/design_plan.py): runs, device-hours and MDE per design.

Oracles: the run cost from the paper recipe's epochs and the stated A100 throughput by hand, and
the MDE from `analysis.power.mde` (scipy's noncentral t, written independently of statsmodels).
"""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

import pytest

from analysis.power import mde
from experiments.sweep.design_plan import mde_paired, paper_sigma
from roadmap.cli import main
from roadmap.paper import paper_rows
from roadmap.steps import steps

REPO = Path(__file__).resolve().parent.parent
PROFILE = str(REPO / "slurm" / "example-gpu-cluster.toml")
RUN_HOURS = 300 * 1_281_167 / 650 / 3600  # paper epochs x ImageNet-1K / A100 img/s, in hours


def _plan(capsys: pytest.CaptureFixture, *argv: str) -> dict[str, dict[str, str]]:
    code = main(["design", "plan", "--profile", PROFILE, *argv, "--format", "csv"])
    assert code == 0
    return {r["design"]: r for r in csv.DictReader(io.StringIO(capsys.readouterr().out))}


def test_the_plan_prints_every_design_with_runs_hours_and_mde(capsys) -> None:
    assert main(["design", "plan", "--budget", "1000", "--profile", PROFILE]) == 0
    out = capsys.readouterr().out
    for word in ("path", "leave-one-out", "add-one-in", "2^5 full", "2^(5-1) res 5", "GPU-h"):
        assert word in out
    assert "MDE Holm" in out and "aliases: A = BCDE" in out


def test_runs_and_hours_follow_the_points_and_the_budget(capsys) -> None:
    rows = _plan(capsys, "--budget", "100000", "--seeds", "3")
    path, n = rows["path"], len(steps("resnet50"))
    assert int(path["points"]) == n and int(path["runs"]) == 3 * n
    assert float(path["gpu_hours"]) == pytest.approx(3 * n * RUN_HOURS)
    for row in rows.values():
        per_seed = int(row["points"]) * RUN_HOURS
        assert int(row["max_seeds"]) == min(100, math.floor(100000 / per_seed))
        assert (row["fits"] == "True") == (3 * per_seed <= 100000)
    assert rows["leave-one-out"]["lost"] == "2" and rows["2^(5-1) res 5"]["points"] == "16"


def test_mdes_match_the_noncentral_t_at_holms_first_and_last_alpha(capsys) -> None:
    sigma = 0.2
    rows = _plan(capsys, "--budget", "1000", "--sigma", str(sigma), "--seeds", "4")
    path, n, terms = rows["path"], 4, len(steps("resnet50")) - 1
    se, df = sigma * math.sqrt(2 / n), terms * (n - 1)  # the pooled model of step and seed
    assert float(path["mde_alpha"]) == pytest.approx(mde(se, df), rel=1e-4)
    assert float(path["mde_holm"]) == pytest.approx(mde(se, df, alpha=0.05 / terms), rel=1e-4)
    loo = rows["leave-one-out"]
    m = int(loo["terms"])
    paired = mde(sigma * math.sqrt(2) / math.sqrt(n), n - 1, alpha=0.05 / m)
    assert float(loo["mde_holm"]) == pytest.approx(paired, rel=1e-4)
    full = rows["2^5 full"]  # main effect: 64 runs at +1 against 64 at -1
    df = 32 * n - (16 + n - 1)
    assert float(full["mde_alpha"]) == pytest.approx(mde(sigma * math.sqrt(2 / 64), df), rel=1e-4)
    assert mde_paired(sigma, 1, 0.05) != mde_paired(sigma, 1, 0.05)  # NaN: no df with one seed


def test_chosen_factors_give_their_fractions_with_aliases(capsys) -> None:
    factors = "relu_to_gelu,fewer_activations,fewer_norms,bn_to_ln"
    argv = ["design", "plan", "--budget", "1000", "--profile", PROFILE, "--factors", factors]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "2^(4-1) res 4" in out and "AB = CD" in out and "D=bn_to_ln" in out
    assert "2^(4-2)" not in out  # resolution II: not offered


def test_the_default_sigma_is_table_10s_pooled_std() -> None:
    stds = [r.top1_std for r in paper_rows() if r.track == "resnet50" and r.top1_std]
    pooled = math.sqrt(sum(2 * s**2 for s in stds) / (2 * len(stds)))  # n = 3 seeds per row
    assert paper_sigma() == pytest.approx(pooled) and 0.05 < paper_sigma() < 0.15

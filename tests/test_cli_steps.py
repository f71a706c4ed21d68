"""`roadmap steps` and `roadmap check-endpoints` as a user runs them."""

import csv
import io
import json
import subprocess
import sys

from roadmap.cli import main
from roadmap.steps import step_names, steps


def test_steps_csv_has_one_row_per_step_with_measured_columns(capsys):
    assert main(["steps", "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [r["step"] for r in rows] == step_names("resnet50")
    assert {"index", "step", "group", "on_path", "params", "gflops", "paper_gflops",
            "diff"} <= set(rows[0])  # fmt: skip
    by_name = {r["step"]: r for r in rows}
    first, last = by_name["resnet50_modern_recipe"], by_name["separate_downsampling"]
    # torchvision's ResNet-50 with one layer-scale gamma per block (the paper preset's 1e-6)
    gammas = 256 * 3 + 512 * 4 + 1024 * 6 + 2048 * 3
    assert int(first["params"]) == 25_557_032 + gammas and int(last["params"]) == 28_589_128
    assert abs(float(first["gflops"]) - float(first["paper_gflops"])) < 0.02
    assert [r["on_path"] for r in rows] == [str(s.on_path) for s in steps("resnet50")]


def test_steps_table_and_json_for_the_second_track(capsys):
    assert main(["steps", "--track", "resnet200", "--format", "json"]) == 0
    rows = {r["step"]: r for r in json.loads(capsys.readouterr().out)}
    assert list(rows) == step_names("resnet200")
    assert rows["separate_downsampling"]["params"] == 88_591_464
    assert main(["steps"]) == 0
    out = capsys.readouterr().out
    assert "separate_downsampling" in out and "28,589,128" in out and "side" in out


def test_steps_table_marks_the_resnet200_tracks_assumptions(capsys):
    assert main(["steps", "--track", "resnet200"]) == 0
    lines = capsys.readouterr().out.splitlines()
    marked = [x.split()[1] for x in lines if x.split()[2:3] == ["*"]]
    assert marked == ["resnet200_modern_recipe"]
    notes = [x for x in lines if x.startswith("* ")]
    assert any("pre-activation" in x for x in notes) and any("drop path 0.5" in x for x in notes)
    assert main(["steps"]) == 0
    out = capsys.readouterr().out
    assert " *" not in out and "final_norm" in out
    row = next(x for x in out.splitlines() if " final_norm " in x).split()
    parent = next(x for x in out.splitlines() if " bn_to_ln " in x).split()
    assert "side" in row and row[-1] == parent[-3]  # no paper value; the head norm adds no MACs


def test_steps_table_rounds_gflops_once(capsys):
    # ConvNeXt-T measures 4.455531264 GMACs: 4.456 at three decimals (4.455 if the row were
    # first rounded to 4.4555 and then to three decimals).
    assert main(["steps"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "separate_downsampling" in x)
    assert line.split()[-3:] == ["4.456", "4.49", "-0.034"]


def test_check_endpoints_prints_one_json_line_per_pair_and_exits_zero():
    proc = subprocess.run(
        [sys.executable, "-m", "roadmap.cli", "check-endpoints", "--image-size", "32",
         "--batch", "1"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(lines) == 4 and all(line["ok"] for line in lines)
    assert all(line["max_abs_diff"] <= 1e-4 for line in lines)


def test_check_endpoints_exits_non_zero_above_the_tolerance(capsys):
    argv = [
        "check-endpoints",
        "--track",
        "resnet50",
        "--image-size",
        "32",
        "--batch",
        "1",
    ]
    assert main([*argv, "--tolerance", "-1"]) == 1
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert len(lines) == 2 and not any(line["ok"] for line in lines)


def test_bad_arguments_are_one_clear_error(capsys):
    try:
        main(["steps", "--track", "vgg"])
    except SystemExit as exit_:
        assert exit_.code == 2
    assert "invalid choice: 'vgg'" in capsys.readouterr().err

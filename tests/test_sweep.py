"""The sweep's planning and validation: run layout, errors before anything is written, dry-run."""

from __future__ import annotations

from pathlib import Path

import pytest

from experiments.recipe import resolve_recipe
from experiments.runs import records
from experiments.sweep.plan import Request, make_plan, parse_seeds, run_dir
from experiments.sweep.profile import load_profile
from experiments.train.config import prepare_run
from roadmap.cli import main
from roadmap.steps import get_step, step_names, steps

REPO = Path(__file__).resolve().parent.parent


def sweep(*args: str) -> int:
    """Run `roadmap sweep ARGS`; its exit status."""
    return main(["sweep", *args])


def test_parse_seeds() -> None:
    assert parse_seeds("0,1,2") == [0, 1, 2]
    assert parse_seeds("3-5") == [3, 4, 5]
    assert parse_seeds("7") == [7]
    for bad in ("0,0", "a", "-1", ""):
        with pytest.raises(ValueError, match="--seeds"):
            parse_seeds(bad)


def test_run_dir_layout(tmp_path: Path) -> None:
    # Track, step name and seed: no position, so edits to the step list rename nothing.
    for step in steps("resnet50"):
        assert run_dir(tmp_path, "resnet50", step, 2) == (
            tmp_path / "resnet50" / step.name / "seed2"
        )


def _profile(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--steps", "patchify_stm"], "Did you mean 'patchify_stem'"),
        (["--preset", "smok"], "unknown preset 'smok'. Did you mean 'smoke'"),
        (["--set", "recipe.epoch=2"], "unknown key 'recipe.epoch'"),
        (
            ["--data", "/nonexistent/imagenet"],
            "data root /nonexistent/imagenet does not exist",
        ),
        (["--seeds", "1,1"], "--seeds"),
        (["--executor", "slurm"], "--executor slurm needs --profile"),
        (["--profile", "slurm/local.toml"], "use it with --executor slurm"),
        (["--jobs", "0"], "--jobs must be >= 1"),
        (["--bench", "/nonexistent.csv"], "--bench /nonexistent.csv: no such file"),
    ],
)
def test_sweep_rejects_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture, args: list[str], message: str
) -> None:
    root = tmp_path / "runs"
    base = ["--preset", "smoke", "--root", str(root)]
    if "--preset" in args:
        base = ["--root", str(root)]
    assert sweep(*base, *args) == 2
    err = capsys.readouterr().err
    assert err.startswith("roadmap sweep: error: ") and message in err, err
    assert not root.exists()


def test_sweep_rejects_unwritable_root(capsys: pytest.CaptureFixture) -> None:
    # /proc refuses new files even to root, so this holds whoever runs the tests.
    assert sweep("--preset", "smoke", "--root", "/proc/roadmap-sweep-test") == 2
    assert "output root /proc/roadmap-sweep-test is not writable" in capsys.readouterr().err


def test_sweep_rejects_root_under_a_file(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "file").write_text("x")
    assert sweep("--preset", "smoke", "--root", str(tmp_path / "file" / "runs")) == 2
    assert "is not a directory" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('partiton = "gpu"\n', "unknown key 'partiton'. Did you mean 'partition'"),
        ("nodes = 0\n", "nodes must be >= 1"),
        ('gpus_per_node = "8"\n', "gpus_per_node must be int"),
        ("time_min = 1\n", "time_min must be >= 2"),
        (
            "time_min = 10\nsignal_delay_s = 400\n",
            "signal_delay_s must be > 0 and below half",
        ),
        ("nodes = [\n", "not valid TOML"),
        ("setup = [1]\n", "setup must be list of strings"),
        ("cpu_tasks_per_node = 0\n", "cpu_tasks_per_node must be >= 1"),
        (
            "gpus_per_node = 8\ncpu_tasks_per_node = 2\n",
            "cpu_tasks_per_node is for nodes without GPUs",
        ),
    ],
)
def test_profile_errors(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ValueError, match="cluster.toml") as err:
        load_profile(_profile(tmp_path, text))
    assert message in str(err.value)


def test_shipped_profiles_load() -> None:
    local = load_profile(REPO / "slurm" / "local.toml")
    assert (local.partition, local.world_size, local.threads) == ("debug", 1, 1)
    assert local.time_min >= 50 and local.signal_delay_s <= 60  # the submitit traps
    gpu = load_profile(REPO / "slurm" / "example-gpu-cluster.toml")
    assert gpu.world_size == 32 and gpu.tasks_per_node == 8
    params = gpu.slurm_parameters()
    assert params["ntasks_per_node"] == 8 and params["gpus_per_node"] == 8
    assert params["additional_parameters"] == {"requeue": True}
    assert params["setup"][0].startswith("module load")
    for name, layout in (("local-2tasks", (1, 2)), ("local-2nodes", (2, 1))):
        profile = load_profile(REPO / "slurm" / f"{name}.toml")
        assert (profile.nodes, profile.tasks_per_node, profile.world_size) == (
            *layout,
            2,
        )
        params = profile.slurm_parameters()
        assert (params["nodes"], params["ntasks_per_node"]) == layout
        assert "gpus_per_node" not in params
        # A rank that dies ends the job (the others would wait for it in a collective).
        assert params["srun_args"] == ["--kill-on-bad-exit=1"]
    assert "srun_args" not in local.slurm_parameters()


def _refused_dry_run(
    tmp_path: Path, capsys: pytest.CaptureFixture, preset: str, profile: Path
) -> str:
    """Dry-run a Slurm sweep with `profile`; assert it is refused, writing nothing; its stderr."""
    root = tmp_path / "runs"
    code = sweep("--preset", preset, "--root", str(root), "--executor", "slurm",
                 "--profile", str(profile), "--dry-run")  # fmt: skip
    assert code == 2 and not root.exists()
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        # paper: base batch 4096 at 128 per GPU; 3 GPUs x 128 does not divide 4096.
        ("gpus_per_node = 3\n", "4096 is not a multiple of 3 device(s)"),
        ("nodes = 2\ncpu_tasks_per_node = 3\n", "multiple of 6 device(s)"),
    ],
)
def test_ranks_that_do_not_divide_the_batch(
    tmp_path: Path, capsys: pytest.CaptureFixture, profile: str, message: str
) -> None:
    path = _profile(tmp_path, f'partition = "gpu"\ntime_min = 600\n{profile}')
    err = _refused_dry_run(tmp_path, capsys, "paper", path)
    nodes, tasks = load_profile(path).nodes, load_profile(path).tasks_per_node
    assert message in err, err
    assert f"{nodes} node(s) x {tasks} task(s) per node in {path}" in err


def test_ranks_whose_step_the_built_in_data_cannot_fill(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    smoke = resolve_recipe("smoke")
    images = smoke.builtin_classes * smoke.builtin_train_per_class
    ranks = images // smoke.batch_size + 1  # one more rank than the data can feed
    path = _profile(tmp_path, f"time_min = 600\nnodes = {ranks}\n")
    err = _refused_dry_run(tmp_path, capsys, "smoke", path)
    per_step = ranks * smoke.batch_size
    assert f"{images} training images cannot fill one optimizer step of {per_step}" in err
    assert f"({ranks} device(s))" in err


def test_existing_run_of_another_preset_is_an_error(tmp_path: Path) -> None:
    d = run_dir(tmp_path, "resnet50", get_step("stage_ratio"), 0)
    d.mkdir(parents=True)
    records.atomic_write_json(d / records.CONFIG, {"track": "resnet50", "step": "stage_ratio",
                                                   "seed": 0, "preset": "paper",
                                                   "overrides": {}, "data": None})  # fmt: skip
    request = Request(root=tmp_path, preset="smoke", steps="stage_ratio", seeds="0")
    with pytest.raises(
        ValueError,
        match=r"1 run\(s\) under .* already hold a different run: "
        r"resnet50/stage_ratio/seed0; the first: preset 'paper' -> 'smoke'",
    ):
        make_plan(request)


def test_dry_run_local_prints_plan_and_writes_nothing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = tmp_path / "runs"
    assert sweep("--preset", "smoke", "--root", str(root), "--dry-run") == 0
    out = capsys.readouterr().out
    first, *_, last = steps("resnet50")
    n = len(steps("resnet50"))
    assert f"{n} step(s) x 3 seed(s) = {3 * n} runs" in out
    assert f"to submit: {3 * n}" in out
    assert "executor local" in out and "job(s) at once" in out
    assert "CPU core-hours" in out and "estimate, not measured" in out
    assert f"{first.name}/seed0" in out and f"{last.name}/seed2" in out
    assert not root.exists()


def test_dry_run_slurm_gpu_profile(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = tmp_path / "runs"
    # The built-in data must fill one step of 4096 (32 GPUs x 128): 10 x 410 images.
    code = sweep("--preset", "paper", "--root", str(root), "--steps", "on-path", "--seeds",
                 "0-2", "--executor", "slurm", "--profile",
                 str(REPO / "slurm" / "example-gpu-cluster.toml"), "--dry-run",
                 "--set", "recipe.builtin_train_per_class=410")  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    n = sum(s.on_path for s in steps("resnet50"))
    assert f"{n} step(s) x 3 seed(s) = {3 * n} runs" in out
    assert f"1 job array of {3 * n} task(s), at most 16 at once" in out
    assert "4 nodes x 8 GPU, 32 tasks" in out and "time limit 48:00:00" in out
    assert "GPU-hours" in out and "32 GPU(s) per job" in out
    assert not root.exists()


def test_dry_run_uses_a_bench_csv(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bench = tmp_path / "bench.csv"
    lines = ["model,track,step,train_img_s,device,image_size"]
    lines += [f"resnet50_{n},resnet50,{n},100.0,cpu,32" for n in step_names("resnet50")[:2]]
    bench.write_text("\n".join(lines) + "\n")
    root = tmp_path / "runs"
    code = sweep("--preset", "smoke", "--root", str(root), "--steps",
                 "resnet50_modern_recipe,stage_ratio", "--seeds", "0", "--bench", str(bench),
                 "--dry-run")  # fmt: skip
    assert code == 0
    out = capsys.readouterr().out
    assert f"measured by roadmap bench ({bench}, cpu, 32 px)" in out
    # No threads column: the figure is taken as one core's; smoke jobs have one thread each.
    assert "~100.0 img/s per job" in out

    # Measured with 2 torch threads: per core half of it, for a one-thread job.
    lines[0] += ",threads"
    bench.write_text("\n".join([lines[0], *(x + ",2" for x in lines[1:])]) + "\n")
    assert sweep("--preset", "smoke", "--root", str(root), "--steps",
                 "resnet50_modern_recipe,stage_ratio", "--seeds", "0", "--bench", str(bench),
                 "--dry-run") == 0  # fmt: skip
    out = capsys.readouterr().out
    assert "cpu, 32 px, 2 threads taken as 2 cores)" in out
    assert "~50.0 img/s per job" in out


def test_steps_take_commas_or_spaces(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    first, last = step_names("resnet50")[0], step_names("resnet50")[-1]
    outputs = []
    for steps_args in ([f"{first},{last}"], [first, last], [f"{first},", last]):
        root = tmp_path / "runs"
        code = sweep("--preset", "smoke", "--root", str(root), "--steps", *steps_args,
                     "--seeds", "0", "--dry-run")  # fmt: skip
        assert code == 0
        outputs.append(capsys.readouterr().out)
    assert outputs[0] == outputs[1] == outputs[2]
    assert "2 step(s) x 1 seed(s) = 2 runs" in outputs[0]


def test_sweep_and_train_agree_on_what_makes_a_run(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    # A run configured by `roadmap train` whose spec or recipe no longer matches what the same
    # (track, step, seed, preset, overrides, data) gives now is refused by both commands.
    step = get_step("stage_ratio")
    out = run_dir(tmp_path, "resnet50", step, 0)
    prepare_run("resnet50", step.name, 0, "smoke", out)
    for key, field in (("recipe", "epochs"), ("spec", "kernel_size")):
        config = records.read_json(out / records.CONFIG)
        config[key][field] = 99 if key == "recipe" else 5
        records.atomic_write_json(out / records.CONFIG, config)
        assert sweep("--preset", "smoke", "--root", str(tmp_path), "--steps", step.name,
                     "--seeds", "0", "--dry-run") == 2  # fmt: skip
        assert main(["train", "--step", step.name, "--preset", "smoke",
                     "--out", str(out)]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert err.count(f"{key}.{field}") == 2, err  # both name the differing field
        config[key][field] = {"recipe": 2, "spec": 3}[key]  # the smoke step's own value
        records.atomic_write_json(out / records.CONFIG, config)
    assert sweep("--preset", "smoke", "--root", str(tmp_path), "--steps", step.name,
                 "--seeds", "0", "--dry-run") == 0  # fmt: skip


def test_the_sweep_has_an_action_for_every_run_state() -> None:
    from experiments.runs.runstate import STATUSES
    from experiments.sweep.plan import ACTIONS

    assert set(ACTIONS) == set(STATUSES)
    assert ACTIONS["done"] == "skip" and ACTIONS["interrupted"] == "resume"


def test_a_config_of_an_older_layout_is_refused_only_where_it_differs(tmp_path: Path) -> None:
    # A field missing from a recorded config takes its default (it was added since): the same
    # run where the default is what the run has, else refused in one line naming the field.
    step = get_step("stage_ratio")
    out = run_dir(tmp_path, "resnet50", step, 0)
    prepare_run("resnet50", step.name, 0, "smoke", out)
    old = records.read_json(out / records.CONFIG)
    del old["recipe"]["init"], old["spec"]["width"]  # the smoke run's are their defaults
    records.atomic_write_json(out / records.CONFIG, old)
    assert prepare_run("resnet50", step.name, 0, "smoke", out) == out.absolute()
    del old["spec"]["depths"]  # its default, [3, 4, 6, 3], is not this step's
    records.atomic_write_json(out / records.CONFIG, old)
    with pytest.raises(ValueError) as err:
        prepare_run("resnet50", step.name, 0, "smoke", out)
    line = str(err.value)
    assert "\n" not in line and len(line) < 300, line
    assert "(spec.depths [3, 4, 6, 3] -> [3, 3, 9, 3])" in line, line

"""Train and sweep on real image folders: bad data refused up front or left out and recorded,
a changed dataset refused on resume, a file that breaks during training named in the reason."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from data_fixtures import add_bad_files, bmp_root, clean_root, symlinked_subset, write_image
from train_fixtures import crash_at_training_forward

from experiments.bench import measure as bench_measure  # the CLI imports its run at use
from experiments.runs import records
from experiments.sweep.plan import run_dir
from experiments.train import Trainer, prepare_run
from experiments.train.command_life import RunFailed, run
from roadmap.cli import main
from roadmap.steps import get_step, step_names

STEP = step_names()[3]  # any step: a small one at 32 px
# 2 classes x 8 training images, 4 per optimizer step, one epoch, one thread.
SETS = (
    "recipe.batch_size=4",
    "recipe.base_batch=4",
    "recipe.epochs=1",
    "recipe.warmup_epochs=0",
    "recipe.threads=1",
)


def _args(*sets: str) -> list[str]:
    return [arg for s in (*SETS, *sets) for arg in ("--set", s)]


def _train(root: Path, out: Path, *sets: str) -> int:
    return main(["train", "--step", STEP, "--data", str(root), "--out", str(out),
                 *_args(*sets)])  # fmt: skip


def _sweep(root: Path, runs: Path, seeds: str, *extra: str) -> int:
    return main(["sweep", "--preset", "smoke", "--steps", STEP, "--seeds", seeds,
                 "--data", str(root), "--root", str(runs), *_args(), *extra])  # fmt: skip


def _swap(root: Path, a: str, b: str) -> None:
    for split in ("train", "val"):
        (root / split / a).rename(root / split / "swap")
        (root / split / b).rename(root / split / a)
        (root / split / "swap").rename(root / split / b)


def test_train_and_sweep_refuse_bad_data_before_writing(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = clean_root(tmp_path / "photos")
    bad = add_bad_files(root)
    out, runs = tmp_path / "run", tmp_path / "runs"
    assert _train(root, out) == 2
    err = capsys.readouterr().err
    assert f"data root {root}: {len(bad)} problem(s):" in err
    assert f"{root}/train/cat/._apple.jpg: hidden" in err  # the first few, by path
    assert f"... and {len(bad) - 5} more" in err and "recipe.skip_bad_images=true" in err
    assert not out.exists()
    assert _sweep(root, runs, "0,1", "--dry-run") == 2
    assert f"{len(bad)} problem(s)" in capsys.readouterr().err
    assert _sweep(root, runs, "0,1") == 2
    assert not runs.exists()


def test_skip_bad_images_trains_and_records_what_it_left_out(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = clean_root(tmp_path / "photos")
    bad = add_bad_files(root)
    out = tmp_path / "run"
    assert _train(root, out, "recipe.skip_bad_images=true") == 0
    said = capsys.readouterr().out
    first = sorted(bad)[0]
    assert f"recipe.skip_bad_images: {len(bad)} bad file(s) or folder(s) left out" in said
    assert f"{first}: {bad[first]}" in said and f"and {len(bad) - 3} more" in said
    config = records.read_json(out / records.CONFIG)
    left = {e["path"]: e["problem"] for e in config["excluded_images"]}
    assert set(left) == set(bad)
    assert all(left[p].startswith(f"{p}: {kind}") for p, kind in bad.items())
    result = records.read_json(out / records.RESULT)
    assert result["status"] == "done"
    assert result["dataset"]["train_images"] == 16 and result["dataset"]["skipped"] == []
    assert sorted(result["dataset"]["excluded"]) == sorted(bad)
    assert config["dataset"]["classes"] == ["cat", "dog"]


class _Stop(Exception):
    pass


def test_swapped_class_folders_refuse_the_resume(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = clean_root(tmp_path / "photos")  # the same file names in both classes
    out = tmp_path / "run"
    sets = (*SETS, "recipe.epochs=2")
    prepare_run("resnet50", STEP, 0, "smoke", out, root, sets)
    trainer = Trainer(out)
    crash_at_training_forward(trainer.model, 5, _Stop)  # in epoch 2, after epoch 1's checkpoint
    with pytest.raises(_Stop):
        trainer.fit()
    assert records.list_checkpoints(out / records.CHECKPOINT_DIR)
    _swap(root, "cat", "dog")
    command = ["train", "--step", STEP, "--data", str(root), "--out", str(out)]
    command += [arg for s in sets for arg in ("--set", s)]
    assert main(command) == 2
    err = capsys.readouterr().err
    assert "dataset changed: train/ 16 -> 16 images, the files of 2 class(es) changed" in err
    assert "'cat', 'dog'" in err and "val/ 4 -> 4 images" in err
    assert main([*command, "--set", "recipe.skip_bad_images=true"]) == 2  # not silenced
    assert "dataset changed: train/ 16 -> 16 images" in capsys.readouterr().err
    with pytest.raises(ValueError, match="dataset changed.*since this run was configured"):
        Trainer(out)  # a sweep's job (or a requeue) starts here: refused the same way
    _swap(root, "cat", "dog")
    assert main(command) == 0
    assert records.read_json(out / records.RESULT)["epochs"] == 2
    assert "resuming ckpt_" in capsys.readouterr().out


def _bmp_sizes(root: Path) -> set[tuple[str, int]]:
    """(file name, size) of every image: one pair per name when only the content differs."""
    return {(p.name, p.stat().st_size) for p in root.rglob("*.bmp")}


def test_swapped_classes_of_equal_size_bmps_are_another_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = bmp_root(tmp_path / "bmps")  # same names, same sizes in both classes
    assert len(_bmp_sizes(root)) == 8  # names 0..7, one size: only the content tells them apart
    done, killed = tmp_path / "done", tmp_path / "killed"
    assert _train(root, done) == 0
    sets = (*SETS, "recipe.epochs=2")
    prepare_run("resnet50", STEP, 0, "smoke", killed, root, sets)
    trainer = Trainer(killed)
    crash_at_training_forward(trainer.model, 5, _Stop)  # in epoch 2, after epoch 1's checkpoint
    with pytest.raises(_Stop):
        trainer.fit()
    capsys.readouterr()
    _swap(root, "cat", "dog")
    assert _train(root, done) == 2  # finished: not "already done" on other labels
    err = capsys.readouterr().err
    assert "dataset changed: train/ 16 -> 16 images, the files of 2 class(es) changed" in err
    command = ["train", "--step", STEP, "--data", str(root), "--out", str(killed)]
    assert main([*command, *(a for s in sets for a in ("--set", s))]) == 2  # before the resume
    assert "dataset changed: train/ 16 -> 16 images" in capsys.readouterr().err
    with pytest.raises(ValueError, match="dataset changed.*since this run was configured"):
        Trainer(killed)  # a sweep's job resumes here: refused the same way
    assert not (killed / records.RESULT).exists()


def test_adding_seeds_to_a_sweep_on_changed_data_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = clean_root(tmp_path / "photos")
    runs = tmp_path / "runs"
    seed0 = run_dir(runs, "resnet50", get_step(STEP), 0)
    prepare_run("resnet50", STEP, 0, "smoke", seed0, root, SETS)  # as the sweep writes it
    assert _sweep(root, runs, "0,1", "--dry-run") == 0
    _swap(root, "cat", "dog")
    assert _sweep(root, runs, "1", "--dry-run") == 2
    err = capsys.readouterr().err
    rel = seed0.relative_to(runs)
    assert f"1 run(s) under {runs} were configured on other data than {root}: {rel}; " in err
    assert f"the first: on {root}: dataset changed: train/ 16 -> 16 images" in err
    assert "use another --root" in err
    assert _sweep(root, runs, "0,1", "--dry-run", "--set", "recipe.skip_bad_images=true") == 2
    assert "dataset changed" in capsys.readouterr().err
    assert _sweep(root, tmp_path / "new-root", "1", "--dry-run") == 0


def test_dry_run_counts_a_fully_symlinked_class_tree(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    subset = symlinked_subset(tmp_path)
    assert _sweep(subset, tmp_path / "runs", "0", "--dry-run") == 0
    out = capsys.readouterr().out
    assert "2 classes, 10 train / 4 val images" in out
    assert "1 epochs x 10 images" in out


def _break_behind_the_cache(victim: Path) -> None:
    """Zero `victim`, its size and time kept: the check's cache does not see it, as with a file
    that breaks while the run trains (a changed time would make it another dataset)."""
    st = victim.stat()
    victim.write_bytes(b"\0" * st.st_size)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))


@pytest.mark.parametrize("workers", [0, 2])
def test_a_file_that_breaks_during_training_fails_the_run_with_its_path(
    tmp_path: Path, workers: int
) -> None:
    root = clean_root(tmp_path / "photos")
    out = prepare_run("resnet50", STEP, 0, "smoke", tmp_path / "run", root,
                      (*SETS, f"recipe.workers={workers}"))  # fmt: skip
    victim = root / "train" / "dog" / "5.jpg"  # checked, then overwritten: same size
    _break_behind_the_cache(victim)
    with pytest.raises(RunFailed) as failed:
        run(out)
    reason = (
        f"BadImageError: {victim}: not an image (PIL cannot identify it; it starts with "
        f"{bytes(12)!r})"
    )
    assert failed.value.reason == reason and failed.value.recorded
    result = records.read_json(out / records.RESULT)
    assert result["status"] == "failed" and result["reason"] == reason


def test_a_file_that_breaks_during_training_is_skipped_with_the_option(
    tmp_path: Path,
) -> None:
    root = clean_root(tmp_path / "photos")
    sets = (*SETS, "recipe.skip_bad_images=true", "recipe.workers=2")
    out = prepare_run("resnet50", STEP, 0, "smoke", tmp_path / "run", root, sets)
    victim = root / "train" / "dog" / "5.jpg"
    _break_behind_the_cache(victim)
    result = run(out)
    assert result["status"] == "done"
    assert result["dataset"]["skipped"] == [str(victim)]
    events = [e for e in records.read_events(out) if e["event"] == "skipped-image"]
    assert [(e["path"], e["problem"]) for e in events] == [(str(victim), "not an image")]


def test_too_few_images_and_unknown_names_fail_at_plan_time(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = clean_root(tmp_path / "photos")  # 16 training images
    runs, out = tmp_path / "runs", tmp_path / "run"
    cases = [
        (("recipe.batch_size=32", "recipe.base_batch=32"),
         "16 training images cannot fill one optimizer step of 32 images"),
        (("recipe.auto_augment=bogus",), "timm refuses it (AssertionError: Unknown AA "
         "policy bogus)"),
        (("recipe.auto_augment=rand-m9-incl",), "timm would ignore 'incl'"),
        (("recipe.interpolation=bicubc",), "recipe.interpolation must be one of nearest, "
         "bilinear, bicubic, box, hamming, lanczos, got 'bicubc'"),
    ]  # fmt: skip
    for sets, message in cases:
        assert _sweep(root, runs, "0", "--dry-run", *_args(*sets)) == 2
        assert message in capsys.readouterr().err
        assert _train(root, out, *sets) == 2
        assert message in capsys.readouterr().err
    assert not runs.exists() and not out.exists()


def test_bench_data_checks_the_folder_before_timing_models(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_reached(*args, **kwargs):
        raise AssertionError("models were timed before --data was checked")

    monkeypatch.setattr(bench_measure, "run", not_reached)
    root = clean_root(tmp_path / "photos")
    write_image(root / "train" / "cat" / "big.jpg")
    data = (root / "train" / "cat" / "big.jpg").read_bytes()
    (root / "train" / "cat" / "big.jpg").write_bytes(data[:100])
    argv = ["bench", "--steps", STEP, "--image-size", "32", "--data", str(root)]
    assert main(argv) == 2
    assert f"{root}/train/cat/big.jpg: truncated" in capsys.readouterr().err


def test_the_record_holds_the_class_map_and_an_old_config_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = clean_root(tmp_path / "photos", classes=("b", "a", "c"))
    out = tmp_path / "run"
    prepare_run("resnet50", STEP, 0, "smoke", out, root, SETS)
    config = records.read_json(out / records.CONFIG)
    dataset = config["dataset"]
    assert dataset["classes"] == ["a", "b", "c"]  # index order, as ImageFolder's
    assert dataset["train"]["images"] == 24 and dataset["train"]["class_images"] == [8] * 3
    assert len(dataset["train"]["sha256"]) == 64 and config["excluded_images"] == []
    # A config written before the dataset was part of the identity is another run (no
    # migrations): refused, naming the dataset.
    old = {k: v for k, v in config.items() if k not in ("dataset", "excluded_images")}
    records.atomic_write_json(out / records.CONFIG, old)
    assert _train(root, out) == 2
    assert "dataset" in capsys.readouterr().err
    records.atomic_write_json(out / records.CONFIG, config)
    (root / "train" / "a" / next(iter(os.listdir(root / "train" / "a")))).unlink()
    assert _train(root, out) == 2
    assert "dataset changed" in capsys.readouterr().err
    shutil.rmtree(out)
    builtin = prepare_run("resnet50", STEP, 0, "smoke", out)
    shapes = records.read_json(builtin / records.CONFIG)["dataset"]
    assert shapes["name"] == "builtin-shapes" and len(shapes["classes"]) == 10


def test_the_sweep_refuses_a_second_dataset_into_a_root_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    first, second = clean_root(tmp_path / "a"), bmp_root(tmp_path / "b")
    runs = tmp_path / "runs"
    for seed in range(5):
        folder = run_dir(runs, "resnet50", get_step(STEP), seed)
        prepare_run("resnet50", STEP, seed, "smoke", folder, first, SETS)
    assert _sweep(second, runs, "5", "--dry-run") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"5 run(s) under {runs} were configured on other data than {second}: " in err
    assert f"the first: on {first}: 2 classes, fingerprint " in err
    assert " vs 2 classes, fingerprint " in err and err.endswith("use another --root")
    assert "and 3 more" in err  # counted, the first two named
    assert len(err.replace(str(tmp_path), "T")) < 300  # one line, short but for the paths
    assert _sweep(second, tmp_path / "runs-b", "5", "--dry-run") == 0


def test_a_refusal_of_different_runs_counts_them_all_in_one_short_line(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root, runs = clean_root(tmp_path / "a"), tmp_path / "runs"
    assert _sweep(root, runs, "0-4") == 0
    capsys.readouterr()
    assert _sweep(root, runs, "0-4", "--set", "recipe.epochs=3") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert f"5 run(s) under {runs} already hold a different run: resnet50/{STEP}/seed0, " in err
    assert "recipe.epochs 1 -> 3" in err and "and 3 more" in err
    assert len(err.replace(str(tmp_path), "T")) < 300

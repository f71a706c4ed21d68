"""File-system errors are one line: before work exit 2, during a run a failed run (exit 1).

The folders are real tmpfs mounts (the tests run as root, so `chmod` would prove nothing): a
read-only one, a full one, and one with room for the records but not for a checkpoint. A test
that cannot mount skips with the reason, except under ROADMAP_STRICT_SKIPS=1, where that fails.
"""

from __future__ import annotations

import errno
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from strict_skips import skip_or_fail

from experiments.runs import records
from experiments.train import Trainer, prepare_run
from roadmap.cli import main

STEP = "depthwise_conv"


@pytest.fixture
def tmpfs(tmp_path: Path) -> Iterator[Callable[[str], Path]]:
    """`tmpfs(size)`: a fresh tmpfs of that size mounted under tmp_path; unmounted after."""
    mounts: list[Path] = []

    def mount(size: str) -> Path:
        where = tmp_path / f"tmpfs{len(mounts)}"
        where.mkdir()
        cmd = [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={size},mode=0755",
            "tmpfs",
            str(where),
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode:
            skip_or_fail(f"cannot mount a tmpfs here: {(proc.stderr or proc.stdout).strip()}")
        mounts.append(where)
        return where

    yield mount
    for where in reversed(mounts):
        if subprocess.run(["umount", str(where)]).returncode:
            subprocess.run(["umount", "--lazy", str(where)], check=True)


def files(root: Path) -> dict[str, bytes]:
    """Every file under `root` with its bytes."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def one_error_line(err: str, command: str) -> str:
    """The one line a command printed on stderr (and no traceback)."""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"roadmap {command}: "), err
    return lines[0]


def train(out: Path, sets: tuple[str, ...], *more: str) -> int:
    return main(["train", "--step", STEP, "--out", str(out), *more,
                 *[a for o in sets for a in ("--set", o)]])  # fmt: skip


def test_a_read_only_folder(
    tmpfs, tmp_path: Path, capsys: pytest.CaptureFixture, tiny_overrides
) -> None:
    ro = tmpfs("8m")
    done = prepare_run("resnet50", STEP, 0, "smoke", ro / "done", overrides=tiny_overrides)
    result = dict.fromkeys(records.RESULT_KEYS)
    records.write_result(done, {**result, "status": "done", "top1": 30.0})
    begun = prepare_run("resnet50", STEP, 0, "smoke", ro / "begun", overrides=tiny_overrides)
    subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
    before = files(ro)

    assert train(ro / "new", tiny_overrides) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert line == (
        f"roadmap train: error: --out {ro / 'new'} is not writable: Read-only file system ({ro})"
    )
    assert train(begun, tiny_overrides) == 2  # its config is there; the lock cannot be
    line = one_error_line(capsys.readouterr().err, "train")
    assert line == f"roadmap train: error: Read-only file system ({begun / records.LOCK})"
    assert train(done, tiny_overrides) == 0  # done: nothing to write
    assert "already done" in capsys.readouterr().out

    assert main(["sweep", "--preset", "smoke", "--root", str(ro), "--steps", STEP]) == 2
    line = one_error_line(capsys.readouterr().err, "sweep")
    assert f"output root {ro} is not writable: Read-only file system ({ro})" in line
    assert main(["status", "--root", str(ro)]) == 0  # reading is all it does
    assert "1 done" in capsys.readouterr().out
    figures = ["staircase", "--root", str(ro), "--out", str(tmp_path / "fig")]
    assert main([*figures, "--formats", "png"]) == 0
    assert files(ro) == before


def test_an_output_folder_under_a_file(tmp_path: Path, capsys, tiny_overrides) -> None:
    (tmp_path / "file").write_text("x")
    assert train(tmp_path / "file" / "r", tiny_overrides) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert line.endswith(f"{tmp_path / 'file'} is not a directory")


def test_a_full_disk_before_any_work(tmpfs, capsys, tiny_overrides) -> None:
    full = tmpfs("1m")
    with open(full / "filler", "wb") as f, pytest.raises(OSError) as err:
        while True:
            f.write(bytes(1 << 16))
            f.flush()
    assert err.value.errno == errno.ENOSPC
    before = files(full)
    assert train(full / "r", tiny_overrides) == 2
    line = one_error_line(capsys.readouterr().err, "train")
    assert "is not writable: No space left on device" in line and str(full) in line
    assert main(["sweep", "--preset", "smoke", "--root", str(full), "--steps", STEP]) == 2
    line = one_error_line(capsys.readouterr().err, "sweep")
    assert f"output root {full} is not writable: No space left on device" in line
    assert files(full) == before


def test_a_disk_that_fills_up_during_a_run(tmpfs, capsys, tiny_overrides) -> None:
    small = tmpfs("16m")  # the records fit; the first checkpoint (~270 MB) does not
    out = small / "r"
    assert train(out, tiny_overrides) == 1
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err + captured.out
    result = records.read_result(out)
    where = out / records.CHECKPOINT_DIR / f"ckpt_{result['iterations']:09d}.pt"
    assert result["reason"] == f"No space left on device ({where})"
    line = one_error_line(captured.err, "train")
    assert line == f"roadmap train: run failed: {result['reason']}"
    # Nothing torn: no temporary or partial file, every record whole.
    assert not [p for p in small.rglob("*") if p.name.startswith(".") and p.suffix == ".tmp"]
    assert not records.list_checkpoints(out / records.CHECKPOINT_DIR)
    log = records.read_log(out)
    assert len(log) == 1 == result["epochs"] == len((out / records.LOG).read_text().split("\n")) - 1
    assert result["top1"] == log[0]["top1"] and result["dataset"]["classes"] == 10


def test_an_error_mid_run_fails_it_with_a_complete_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys, tiny_overrides
) -> None:
    real, calls = Trainer.evaluate, []

    def evaluate(self: Trainer, model, *images):  # noqa: ANN001, ANN002, ANN202
        calls.append(1)
        if len(calls) == 2:  # the data vanish in epoch 2
            raise FileNotFoundError(errno.ENOENT, "No such file or directory", "/data/1.jpg")
        return real(self, model, *images)

    monkeypatch.setattr(Trainer, "evaluate", evaluate)
    out = tmp_path / "r"
    assert train(out, tiny_overrides) == 1  # a failed run, not "bad arguments"
    line = one_error_line(capsys.readouterr().err, "train")
    assert line == "roadmap train: run failed: No such file or directory (/data/1.jpg)"
    result = records.read_result(out)
    assert set(records.RESULT_KEYS) <= set(result) and result["status"] == "failed"
    log = records.read_log(out)
    assert (result["epochs"], len(log)) == (1, 1)  # what was known at the failure
    assert result["iterations"] == 2 * log[0]["iterations"]
    assert result["top1"] == result["best_top1"] == log[0]["top1"] is not None
    assert result["dataset"]["name"] == "builtin-shapes" and result["params"] > 0
    for key in (
        "lr",
        "effective_batch",
        "accum_steps",
        "world_size",
        "device",
        "finished",
    ):
        assert result[key] is not None, key

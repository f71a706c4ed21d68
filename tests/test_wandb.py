"""`recipe.wandb=true` offline: a run stopped by a signal and resumed is one W&B run, all of it.

The offline run files (`$WANDB_DIR/wandb/offline-run-*/run-<id>.wandb`, what `wandb sync`
uploads) are read back with wandb's own protobuf records: the file is a LevelDB-style log
(32 KiB blocks of CRC-checked chunks) after a 7-byte ":W&B" header.
"""

from __future__ import annotations

import json
import os
import signal
import struct
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from train_fixtures import rerun_resumes

from experiments.recipe import resolve_recipe
from experiments.runs import records
from experiments.train import wandb_log

pb = pytest.importorskip("wandb.proto.wandb_internal_pb2")

BLOCK = 32 * 1024
HEADER = 7  # ":W&B", magic (2 bytes), version; and each chunk's checksum, length, type
FULL, LAST = 1, 4


def _records(path: Path) -> Iterator[object]:
    """The protobuf records of a .wandb file, in order."""
    data = path.read_bytes()
    assert data[:4] == b":W&B", data[:HEADER]
    pos, body = HEADER, b""
    while pos + HEADER <= len(data):
        if BLOCK - pos % BLOCK < HEADER:  # a block's tail too short for a chunk: padding
            pos += BLOCK - pos % BLOCK
            continue
        _, length, kind = struct.unpack("<IHB", data[pos : pos + HEADER])
        chunk = data[pos + HEADER : pos + HEADER + length]
        pos += HEADER + length
        if kind == 0:
            continue
        body += chunk
        if kind in (FULL, LAST):
            record = pb.Record()
            record.ParseFromString(body)
            body = b""
            yield record


def _offline_runs(folder: Path) -> list[dict]:
    """Every offline W&B run under `folder`: its id, group, config keys and history rows."""
    runs = []
    for path in sorted(folder.glob("wandb/offline-run-*/run-*.wandb")):
        run: dict = {"history": []}
        for record in _records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run |= {"id": record.run.run_id, "group": record.run.run_group}
                run["config"] = {item.key for item in record.run.config.update}
            elif kind == "history":
                items = record.history.item
                row = {i.key or "/".join(i.nested_key): json.loads(i.value_json) for i in items}
                run["history"].append(row)
        runs.append(run)
    return runs


def test_wandb_without_the_package_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib.util

    find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n: None if n == "wandb" else find_spec(n)
    )
    with pytest.raises(ValueError, match=r"recipe.wandb=true needs the wandb package: pip"):
        resolve_recipe("smoke", ["recipe.wandb=true"])


def test_a_stopped_and_resumed_run_is_one_wandb_run_with_its_whole_history(
    tmp_path: Path, tiny_overrides, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in (("WANDB_MODE", "offline"), ("WANDB_DIR", str(tmp_path / "wb")),
                       ("WANDB_SILENT", "true")):  # fmt: skip
        monkeypatch.setenv(key, value)
    sets = [a for o in (*tiny_overrides, "recipe.log_every=1", "recipe.wandb=true")
            for a in ("--set", o)]  # fmt: skip
    out = tmp_path / "root" / "resnet50" / "depthwise_conv" / "seed0"  # as a sweep lays it out
    cmd = [sys.executable, "-m", "roadmap.cli", "train", "--step", "depthwise_conv",
           "--out", str(out), *sets]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    seen = []
    for line in proc.stdout:
        seen.append(line)
        if "epoch 2/2 step 1/5" in line:
            os.killpg(proc.pid, signal.SIGUSR2)  # as Slurm: W&B's own process gets it too
            break
    rest, err = proc.communicate(timeout=300)
    assert proc.returncode == 75, "".join(seen) + rest + err
    meta = records.read_json(sorted((out / records.CHECKPOINT_DIR).glob("*.json"))[-1])
    rerun_resumes(cmd, out, meta)

    runs = _offline_runs(tmp_path / "wb")
    config = records.read_config(out)
    assert len(runs) == 2  # the two jobs
    assert {r["id"] for r in runs} == {wandb_log.run_id(config)}
    assert {r["group"] for r in runs} == {"root/resnet50/depthwise_conv"}
    assert {"recipe", "spec", "seed"} <= runs[0]["config"]
    rows = [row for r in runs for row in r["history"]]
    steps = {}
    for row in (r for r in rows if "iteration" in r):
        keep = {k: row[k] for k in ("train/loss", "train/lr")}
        assert steps.setdefault(row["iteration"], keep) == keep  # trained again: the same
    assert sorted(steps) == list(range(1, 11))
    epochs = {row["epoch"]: row["epoch/train_loss"] for row in rows if "epoch" in row}
    assert epochs == {row["epoch"]: row["train_loss"] for row in records.read_log(out)}

"""The one lock helper (experiments/runs/locks.py): job.json updates, waits that time out."""

from __future__ import annotations

import json
import os
import threading
import time
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import tomllib
from packaging.requirements import Requirement
from packaging.version import Version

from experiments.runs import records
from experiments.runs.locks import HolderLock, LockBusy, update_job


def _slow_add(key: str) -> Any:
    def change(job: dict[str, Any]) -> None:
        time.sleep(0.05)  # a writer between its read and its write
        job[key] = True

    return change


def test_concurrent_job_json_updates_lose_nothing(tmp_path: Path) -> None:
    records.write_job(tmp_path, {"executor": "local"})
    keys = [f"k{i}" for i in range(4)]
    threads = [threading.Thread(target=update_job, args=(tmp_path, _slow_add(k))) for k in keys]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    job = records.read_job(tmp_path)
    assert job is not None and job["executor"] == "local"
    assert [k for k in keys if k not in job] == []


# filelock's changelog: 3.30.0 (2026-07-16) added `on_acquired` and `preserve_lock_file`; older
# versions drop keyword arguments their lock does not take, silently.
HOLDER_HOOKS = Version("3.30")


def test_the_holder_is_recorded_while_it_holds_and_the_last_one_is_vetted(tmp_path: Path) -> None:
    path = tmp_path / ".x.lock"
    left = {"host": "elsewhere", "pid": 7, "start": "1", "since": "2026-12-01T00:00:00+00:00"}
    path.write_text(json.dumps(left) + "\n")  # a holder that died without releasing
    seen: list[Any] = []
    record = {"host": "here", "pid": 12, "start": "2", "by": "test", "since": "2026-12-07"}
    with HolderLock(path, record, vet=seen.append).acquire(0, "the x lock") as lock:
        assert json.loads(path.read_text()) == record  # written under the flock
        assert seen == [left] and lock.left == left  # the stale-lock rule saw the last holder
    assert path.is_file() and path.read_text() == ""  # kept (preserve_lock_file), emptied


def test_the_project_asks_for_the_filelock_it_uses() -> None:
    pyproject = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
    wanted = [Requirement(r) for r in pyproject["project"]["dependencies"]]
    (filelock,) = [r for r in wanted if r.name == "filelock"]
    floor = min(Version(s.version) for s in filelock.specifier if s.operator == ">=")
    assert floor >= HOLDER_HOOKS, f"pyproject.toml asks for {filelock}"
    assert Version(version("filelock")) in filelock.specifier


def test_a_wait_runs_out_naming_the_holder(tmp_path: Path) -> None:
    path = tmp_path / ".x.lock"
    with HolderLock(path).acquire(0, "the x lock"):
        told: list[str] = []
        start = time.monotonic()
        with pytest.raises(LockBusy) as busy:
            HolderLock(path).acquire(0.3, "the x lock", waiting=told.append)
        assert time.monotonic() - start >= 0.3
    text = str(busy.value.strerror)
    assert text.startswith("the x lock is held by") and f"pid {os.getpid()}" in text
    assert "waited 0.3 s" in text and len(told) == 1 and "\n" not in text
    assert busy.value.holder is not None and busy.value.holder["pid"] == os.getpid()
    with HolderLock(path).acquire(0, "the x lock"):  # released: free again
        pass


def test_a_busy_data_check_cache_is_waited_for_then_left_aside(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from experiments.data import cache

    monkeypatch.setattr(cache, "LOCK_WAIT_S", 0.3, raising=False)
    store = cache.CheckCache(tmp_path, tmp_path / "cache")
    assert store.path is not None
    store.path.parent.mkdir(parents=True)
    entered: list[bool] = []

    def check() -> None:
        with store.lock():
            entered.append(True)

    with HolderLock(store.path.with_suffix(".lock")).acquire(0, "the cache lock"):
        thread = threading.Thread(target=check, daemon=True)
        thread.start()
        thread.join(timeout=10)
        assert not thread.is_alive(), "the cache lock waited past its timeout"
    assert entered == [True] and store.path is None
    assert store.warning is not None and f"pid {os.getpid()}" in store.warning

"""Shared fixtures: a tiny smoke recipe that trains a real roadmap step in seconds on a CPU, and
a Slurm cluster for the `slurm` suites."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest
from slurm_fixtures import CLUSTER, NODES, answers, cluster_nodes
from strict_skips import skip_or_fail

from experiments.data.cache import ENV as CACHE_ENV

# The smoke preset shrunk further: 8 images per class, 4 steps of 8 per epoch.
TINY_OVERRIDES = (
    "recipe.builtin_train_per_class=4",
    "recipe.builtin_val_per_class=2",
    "recipe.batch_size=8",
    "recipe.base_batch=8",
    "recipe.epochs=2",
    "recipe.warmup_epochs=0.5",
    "recipe.threads=1",  # one thread: shared CI machines make OpenMP barriers crawl
    "recipe.eval_every=1",  # every epoch, as every preset but smoke
)


@pytest.fixture
def tiny_overrides() -> tuple[str, ...]:
    """`--set` strings for a seconds-long smoke run (40 train, 20 val images, 2 epochs)."""
    return TINY_OVERRIDES


@pytest.fixture(autouse=True)
def data_check_cache(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Each test caches `roadmap data check` results in a folder of its own, not in ~/.cache."""
    folder = tmp_path_factory.mktemp("data-check-cache")
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


@pytest.fixture(scope="session")
def cluster() -> Iterator[list[str]]:
    """A running Slurm, the one there is or one this session starts and stops; its nodes."""
    if answers():
        yield cluster_nodes()
        return
    try:
        proc = subprocess.run([str(CLUSTER), "up", "--nodes", str(NODES)],
                              capture_output=True, text=True, timeout=900)  # fmt: skip
        started, tail = proc.returncode == 0, (proc.stdout + proc.stderr)[-1500:]
    except (OSError, subprocess.TimeoutExpired) as err:
        started, tail = False, str(err)
    if not started or not answers():
        skip_or_fail(f"no Slurm cluster: slurm/local-cluster.sh up failed:\n{tail}")
    yield cluster_nodes()
    subprocess.run([str(CLUSTER), "down"], capture_output=True, timeout=300)

"""Shared fixtures: a tiny smoke recipe that trains a real roadmap step in seconds on a CPU."""

from __future__ import annotations

import pytest

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
def data_check_cache(
    tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch
):
    """Each test caches `roadmap data check` results in a folder of its own, not in ~/.cache."""
    folder = tmp_path_factory.mktemp("data-check-cache")
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder

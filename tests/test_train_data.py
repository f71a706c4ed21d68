"""Data: ImageFolder checks, the built-in dataset, seeded augmentation and resumable order."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from experiments.recipe import resolve_recipe
from experiments.train import shapes
from experiments.train.data import (
    EpochSampler,
    SeededDataset,
    dataset_size,
    validate_data,
)
from experiments.train.parts import build_transforms
from experiments.train.shapes import SHAPES, BuiltinShapes, render_shapes


def _image_folder(root: Path, splits: dict[str, list[str]], per_class: int = 1) -> Path:
    for split, classes in splits.items():
        for name in classes:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (8, 8), (i, 0, 0)).save(folder / f"{i}.png")
    return root


def test_validate_data_accepts_imagenet_layout(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "d", {"train": ["a", "b"], "val": ["a", "b"]}, 2)
    info = validate_data(root)
    assert info == {"root": str(root.resolve()), "classes": ["a", "b"]}
    assert dataset_size(resolve_recipe("smoke"), root) == 4


@pytest.mark.parametrize(
    ("make", "error", "message"),
    [
        (lambda r: r / "missing", FileNotFoundError, "does not exist"),
        (
            lambda r: _image_folder(r / "d", {"train": ["a"]}),
            FileNotFoundError,
            "no val/ folder",
        ),
        (
            lambda r: _image_folder(r / "d", {"train": ["a", "b"], "val": ["a", "c"]}),
            ValueError,
            "only in train: b; only in val: c",
        ),
        (
            lambda r: (
                _image_folder(r / "d", {"train": [], "val": ["a"]})
                if (r / "d" / "train").mkdir(parents=True) is None
                else None
            ),
            ValueError,
            "has no class folders",
        ),
    ],
)
def test_validate_data_rejects_bad_roots(tmp_path: Path, make, error, message) -> None:
    with pytest.raises(error, match=message):
        validate_data(make(tmp_path))


def test_validate_data_names_empty_class_folders(tmp_path: Path) -> None:
    root = _image_folder(tmp_path / "d", {"train": ["a", "b"], "val": ["a", "b"]})
    for f in (root / "train" / "b").iterdir():
        f.unlink()
    (root / "train" / "b" / "notes.txt").write_text("not an image")
    with pytest.raises(ValueError, match=r"1 problem\(s\):\n.*/train/b: empty class"):
        validate_data(root)


def test_builtin_dataset_is_deterministic_balanced_and_seeded() -> None:
    a_images, a_labels = render_shapes(60, 10, 32, [0, 0])
    b_images, b_labels = render_shapes(60, 10, 32, [0, 0])
    c_images, _ = render_shapes(60, 10, 32, [0, 1])
    assert a_images.shape == (60, 32, 32, 3) and a_images.dtype == np.uint8
    assert np.array_equal(a_images, b_images) and np.array_equal(a_labels, b_labels)
    assert not np.array_equal(a_images, c_images)
    assert np.bincount(a_labels).tolist() == [6] * 10
    train = BuiltinShapes("train", 4, 3, 32, seed=0)
    val = BuiltinShapes("val", 4, 3, 32, seed=0)
    assert train.classes == list(SHAPES[:4]) and len(train) == 12
    assert train.fingerprint() != val.fingerprint()  # disjoint draws for train and val
    image, label = train[0]
    assert image.size == (32, 32) and 0 <= label < 4


def test_the_builtin_dataset_is_drawn_once_then_read_from_the_cache(
    data_check_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    first = BuiltinShapes("train", 4, 3, 32, seed=0)
    (saved,) = (data_check_cache / "shapes").glob("*.npz")

    def no_drawing(*args: object) -> None:
        raise AssertionError("drawn again")

    with monkeypatch.context() as patch:
        patch.setattr(shapes, "render_shapes", no_drawing)
        again = BuiltinShapes("train", 4, 3, 32, seed=0)
        assert np.array_equal(first.images, again.images)
        assert first.fingerprint() == again.fingerprint()
        with pytest.raises(AssertionError, match="drawn again"):  # other arguments: another entry
            BuiltinShapes("train", 4, 3, 32, seed=1)
    for damage in (b"not an npz", saved.read_bytes()[:-100]):  # garbage, cut short: drawn again
        saved.write_bytes(damage)
        assert BuiltinShapes("train", 4, 3, 32, seed=0).fingerprint() == first.fingerprint()
    # A changed pixel with the digest kept: refused, drawn again.
    with np.load(saved) as z:
        images, labels, digest = z["images"].copy(), z["labels"], z["digest"]
    images[0, 0, 0, 0] ^= 1
    with saved.open("wb") as f:
        np.savez(f, images=images, labels=labels, digest=digest)
    assert BuiltinShapes("train", 4, 3, 32, seed=0).fingerprint() == first.fingerprint()
    blocked = data_check_cache / "a-file"
    blocked.write_text("")
    monkeypatch.setenv("ROADMAP_CACHE_DIR", str(blocked))  # a cache that cannot be written
    assert BuiltinShapes("train", 4, 3, 32, seed=0).fingerprint() == first.fingerprint()


def test_sampler_resumes_mid_epoch_and_splits_ranks() -> None:
    full = EpochSampler(103, seed=5, length=96)
    full.set_epoch(2)
    order = list(full)
    assert len(order) == len(full) == 96 and len(set(order)) == 96
    assert {e for e, _ in order} == {2}
    resumed = EpochSampler(103, seed=5, length=96)
    resumed.set_epoch(2, start=40)
    assert list(resumed) == order[40:] and len(resumed) == 56
    full.set_epoch(3)
    assert list(full) != order  # a new order every epoch
    ranks = [EpochSampler(103, 5, rank=r, world_size=2, length=48) for r in range(2)]
    parts = [set(list(s)) for s in ranks]
    assert len(parts[0]) == len(parts[1]) == 48 and not parts[0] & parts[1]
    val = EpochSampler(5, 5, rank=1, world_size=2, shuffle=False)
    assert [i for _, i in val] == [1, 3] and len(val) == 2


def test_seeded_augmentation_depends_only_on_seed_epoch_index() -> None:
    recipe = resolve_recipe("paper", ["recipe.image_size=32"])  # RandAugment, erasing, crops
    train_tf, _ = build_transforms(recipe)
    data = SeededDataset(BuiltinShapes("train", 2, 4, 32, seed=0), train_tf, seed=9)
    before = (random.getstate(), np.random.get_state()[1].copy(), torch.get_rng_state())
    x1, y1, bad = data[(1, 3)]
    _ = data[(1, 2)], data[(0, 3)]
    x2, y2, _ = data[(1, 3)]
    assert torch.equal(x1, x2) and y1 == y2 and bad == ""  # "": no file failed to load
    assert not torch.equal(x1, data[(2, 3)][0])  # another epoch, another augmentation
    after = (random.getstate(), np.random.get_state()[1], torch.get_rng_state())
    assert before[0] == after[0] and np.array_equal(before[1], after[1])
    assert torch.equal(before[2], after[2])  # the global generators are left as they were

"""The listing: exactly torchvision's ImageFolder (the reference), and what its walk reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from data_fixtures import clean_root, symlinked_subset, write_image
from torchvision.datasets import ImageFolder

from experiments.data.check import check_root
from experiments.data.identity import fingerprint
from experiments.data.listing import list_root, list_split
from experiments.recipe import resolve_recipe
from experiments.train.data import dataset_size, validate_data


def _tricky_split(base: Path) -> Path:
    """A split folder with what trips naive listings: links, nesting, cases, odd names."""
    split = base / "train"
    outside = base / "elsewhere"
    write_image(outside / "linked_class" / "a.jpg")
    write_image(outside / "linked_class" / "deeper" / "b.PNG")
    write_image(outside / "linked_sub" / "c.jpeg")
    write_image(split / "plain" / "1.jpg")
    write_image(split / "plain" / "0.JPG")  # sorted before 1.jpg by name, as torchvision
    write_image(split / "plain" / "sub" / "z.webp")
    write_image(split / "plain" / "sub-x" / "y.jpg")  # '-' sorts before '/'
    (split / "plain" / "notes.txt").write_text("ignored")
    (split / "plain" / "noext").write_bytes(b"ignored")
    write_image(split / "plain" / ".hidden.jpg")
    os.symlink(outside / "linked_sub", split / "plain" / "linked_sub")
    os.symlink(outside / "linked_class", split / "linked")
    write_image(split / "Ünïcode ✓" / "é.jpg")
    os.symlink(base / "missing.jpg", split / "Ünïcode ✓" / "broken.jpg")
    write_image(split / "upper" / "X.TIFF", fmt="TIFF")
    write_image(split / "upper" / "Y.BmP", fmt="BMP")
    return split


def test_listing_is_imagefolders(tmp_path: Path) -> None:
    split = _tricky_split(tmp_path)
    ours = list_split(split)
    reference = ImageFolder(str(split))  # lists only: images are not opened here
    assert [c.name for c in ours.classes] == reference.classes
    assert [(os.path.join(split, rel), index) for rel, index in ours.samples()] == reference.samples
    assert ours.images == len(reference) == 12
    assert ours.ignored == 2  # notes.txt, noext


def test_a_fully_symlinked_class_tree_counts_every_image(tmp_path: Path) -> None:
    subset = symlinked_subset(tmp_path)
    assert dataset_size(resolve_recipe("smoke"), subset) == 10
    assert len(ImageFolder(str(subset / "train"))) == 10
    assert validate_data(subset)["classes"] == ["a", "c"]


def test_walk_reports_what_imagefolder_takes_silently(tmp_path: Path) -> None:
    root = clean_root(tmp_path / "d")
    write_image(root / "train" / "cat" / "sub" / "n.jpg")
    write_image(root / "train" / ".ipynb_checkpoints" / "x.jpg")
    write_image(root / "train" / "loose.jpg")
    os.symlink(root / "train" / "cat", root / "train" / "cat2")
    os.symlink(root / "nowhere", root / "train" / "dead")
    os.symlink(root / "train" / "cat", root / "train" / "cat" / "loop")
    found = {(p.path, p.kind) for p in list_root(root).all_problems()}
    assert found == {
        ("train/cat/sub", "nested folder"),
        ("train/cat2/sub", "nested folder"),  # cat2 is cat: everything in it twice
        ("train/.ipynb_checkpoints", "hidden"),
        ("train/loose.jpg", "outside a class folder"),
        ("train/cat2", "same folder"),
        ("train/dead", "broken symlink"),
        ("train/cat/loop", "symlink loop"),
        ("train/cat2/loop", "symlink loop"),
    }
    with pytest.raises(ValueError, match="9 problem"):  # and the classes differ from val/'s
        validate_data(root)


def test_layout_errors_say_what_is_missing(tmp_path: Path) -> None:
    root = clean_root(tmp_path / "d")
    flat = root / "val"
    for f in (flat / "cat").iterdir():
        f.rename(flat / f"cat-{f.name}")
    for name in ("cat", "dog"):
        (flat / name).rename(tmp_path / f"moved-{name}")
    with pytest.raises(ValueError, match="has no class folders .its 2 images lie directly"):
        list_root(root)


def test_fingerprint_changes_with_sizes_names_and_swaps(tmp_path: Path) -> None:
    root = clean_root(tmp_path / "d")  # the same file names in both classes

    def print_() -> dict:
        check = check_root(root, workers=1)
        return fingerprint(check.listing.splits["train"], check.content["train"])

    before = print_()
    assert before["images"] == 16 and before["class_images"] == [8, 8]
    (root / "train" / "cat").rename(root / "train" / "tmp")
    (root / "train" / "dog").rename(root / "train" / "cat")
    (root / "train" / "tmp").rename(root / "train" / "dog")
    swapped = print_()
    assert swapped["images"] == 16 and swapped["sha256"] != before["sha256"]
    # Each class's hash covers its files' names, sizes and content: both changed.
    assert all(a != b for a, b in zip(swapped["class_sha256"], before["class_sha256"], strict=True))
    os.utime(root / "train" / "cat" / "0.jpg", (1, 1))  # a new time alone: same data
    assert print_() == swapped

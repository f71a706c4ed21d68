"""Small ImageFolder roots of real image files (Pillow writes them), clean and with bad files."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
from PIL import Image


def write_image(
    path: Path,
    mode: str = "RGB",
    fmt: str | None = None,
    seed: int = 0,
    size: int = 40,
    **save: object,
) -> Path:
    """A real image file: colour noise of one class tint, converted to `mode`, saved by PIL."""
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 96, (size, size, 3), dtype=np.uint8)
    pixels[..., seed % 3] += 150  # a tint per seed: images differ in size once encoded
    image = Image.fromarray(pixels)
    if mode != "RGB":
        image = image.convert(mode)
    image.save(path, format=fmt, **save)
    return path


def clean_root(
    root: Path,
    classes: tuple[str, ...] = ("cat", "dog"),
    train: int = 8,
    val: int = 2,
) -> Path:
    """`root/{train,val}/<class>/<i>.jpg`: the same file names in every class."""
    for split, count in (("train", train), ("val", val)):
        for c, name in enumerate(classes):
            for i in range(count):
                write_image(root / split / name / f"{i}.jpg", seed=c, quality=90)
    return root


def bmp_root(root: Path, classes: tuple[str, ...] = ("cat", "dog"), train: int = 8) -> Path:
    """`clean_root` in uncompressed BMPs: every file of every class the same name and size."""
    for split, count in (("train", train), ("val", 2)):
        for c, name in enumerate(classes):
            for i in range(count):
                write_image(root / split / name / f"{i}.bmp", seed=c, fmt="BMP")
    return root


def symlinked_subset(tmp_path: Path) -> Path:
    """An ImageNet-100-style subset, every class folder a symlink: classes a and c of three,
    5 training and 2 validation images each."""
    full = clean_root(tmp_path / "full", classes=("a", "b", "c"), train=5, val=2)
    subset = tmp_path / "subset"
    for split in ("train", "val"):
        (subset / split).mkdir(parents=True)
        for name in ("a", "c"):
            os.symlink(full / split / name, subset / split / name)
    return subset


def sixteen_bit_png(path: Path) -> Path:
    """A 16-bit grayscale PNG using its whole range (PIL mode I;16)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ramp = np.linspace(0, 65535, 32 * 32).reshape(32, 32).astype(np.uint16)
    Image.fromarray(ramp).save(path)
    return path


def add_bad_files(root: Path, split: str = "train", name: str = "cat") -> dict[str, str]:
    """Each bad case in `root/split/name`; {path relative to root: the problem reported}."""
    folder = root / split / name
    good = write_image(folder / "source.jpg", quality=90).read_bytes()
    (folder / "source.jpg").unlink()
    (folder / "zero.jpg").write_bytes(b"")
    (folder / "x.jpg").write_text("this is a text file, not a JPEG\n")
    (folder / "truncated.jpg").write_bytes(good[: len(good) // 2])
    (folder / "._apple.jpg").write_bytes(  # macOS AppleDouble metadata
        b"\x00\x05\x16\x07\x00\x02\x00\x00Mac OS X        " + b"\x00" * 64
    )
    sixteen_bit_png(folder / "deep.png")
    os.symlink(root / "no-such-file.jpg", folder / "gone.jpg")
    write_image(folder / "extra" / "nested.jpg")
    write_image(folder / ".thumbnails" / "t.jpg")
    rel = f"{split}/{name}"
    return {
        f"{rel}/zero.jpg": "zero bytes",
        f"{rel}/x.jpg": "not an image",
        f"{rel}/truncated.jpg": "truncated",
        f"{rel}/._apple.jpg": "hidden",
        f"{rel}/deep.png": "lossy conversion",
        f"{rel}/gone.jpg": "broken symlink",
        f"{rel}/extra": "nested folder",
        f"{rel}/.thumbnails": "hidden",
    }


def add_good_variants(root: Path, split: str = "train", name: str = "cat") -> list[str]:
    """Files that must pass the check: grayscale, CMYK, progressive, palette, RGBA, WebP, .JPG."""
    folder = root / split / name
    files = {
        "gray.jpg": {"mode": "L"},
        "cmyk.jpg": {"mode": "CMYK"},
        "progressive.jpg": {"progressive": True, "quality": 80},
        "palette.png": {"mode": "P"},
        "alpha.png": {"mode": "RGBA"},
        "photo.webp": {},
        "UPPER.JPG": {"fmt": "JPEG"},
        "png-named.JPEG": {"fmt": "PNG"},  # as ImageNet ships one
    }
    for file, options in files.items():
        write_image(folder / file, **options)
    return [f"{split}/{name}/{f}" for f in files]


def unicode_twins(root: Path) -> tuple[str, str]:
    """The class `café` in train/ as NFC and in val/ as NFD (as a macOS copy leaves it)."""
    nfc, nfd = (unicodedata.normalize(form, "café") for form in ("NFC", "NFD"))
    for split, name in (("train", nfc), ("val", nfd)):
        write_image(root / split / name / "0.jpg")
    return nfc, nfd

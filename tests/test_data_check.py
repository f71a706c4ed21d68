"""`roadmap data check`: every bad case found with its path, good files left alone, the cache."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import pytest
from data_fixtures import (
    add_bad_files,
    add_good_variants,
    clean_root,
    unicode_twins,
    write_image,
)

from experiments.data import check as check_module
from experiments.data.check import check_root
from roadmap.cli import main


def _problem_lines(out: str) -> list[str]:
    """The lines of the report's problem list."""
    lines = out.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("problems ("))
    return [line.strip() for line in lines[start + 1 :] if line.startswith("  ")]


def _tree(root: Path) -> dict[str, tuple[int, int]]:
    """Every entry under `root` with its size and modification time (links not followed)."""
    out = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            st = os.lstat(os.path.join(folder, name))
            out[os.path.join(folder, name)] = (st.st_size, st.st_mtime_ns)
    return out


def test_every_bad_case_is_listed_with_its_path(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    root = clean_root(tmp_path / "photos")
    bad = add_bad_files(root)
    good = add_good_variants(root)
    nfc, nfd = unicode_twins(root)
    assert main(["data", "check", str(root), "--workers", "1"]) == 1
    out = capsys.readouterr().out
    problems = _problem_lines(out)
    for rel, kind in bad.items():
        assert any(line.startswith(f"{rel}: {kind}") for line in problems), (rel, out)
    assert not [line for line in problems if line.split(":")[0] in good]
    differ = [line for line in problems if "classes differ" in line]
    assert len(differ) == 1 and f"train {ascii(nfc)} vs val {ascii(nfd)}" in differ[0]
    assert len(problems) == len(bad) + 1
    assert "CMYK, converted to RGB by PIL: 1 file(s)" in out
    assert "(PNG named .JPEG): 1 file(s), e.g. train/cat/png-named.JPEG" in out
    assert "transparency dropped" in out
    assert "train/: 3 classes, " in out and "val/: 3 classes, " in out


def test_a_clean_root_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    root = clean_root(tmp_path / "photos")
    add_good_variants(root)
    assert main(["data", "check", str(root)]) == 0
    out = capsys.readouterr().out
    assert "clean: no problems" in out
    assert "train/: 2 classes, 24 images" in out and "val/: 2 classes, 4 images" in out


def test_class_names_equal_after_normalisation_in_one_split(tmp_path: Path) -> None:
    root = clean_root(tmp_path / "photos")
    for form in ("NFC", "NFD"):
        for split in ("train", "val"):
            write_image(root / split / unicodedata.normalize(form, "café") / "0.jpg")
    problems = [p for p in check_root(root, cache=None).problems]
    assert [p.kind for p in problems] == ["unicode normalisation"] * 2
    assert "'cafe\\u0301', 'caf\\xe9'" in problems[0].detail  # sorted by code point


def test_file_names_equal_after_normalisation_in_one_folder(tmp_path: Path) -> None:
    root = clean_root(tmp_path / "photos")
    nfc, nfd = (unicodedata.normalize(form, "café.jpg") for form in ("NFC", "NFD"))
    for name in (nfc, nfd):
        write_image(root / "train" / "cat" / name)
    problems = check_root(root, cache=None).problems
    assert [(p.path, p.kind) for p in problems] == [(f"train/cat/{nfd}", "unicode normalisation")]
    assert f"{ascii(nfd)}, {ascii(nfc)}" in problems[0].detail


def test_workers_find_what_one_process_finds(tmp_path: Path) -> None:
    root = clean_root(tmp_path / "photos", train=70)  # several tasks per class
    add_bad_files(root)
    add_bad_files(root, "val", "dog")
    one = check_root(root, workers=1, cache=None)
    two = check_root(root, workers=2, cache=None)
    assert one.problems == two.problems and one.notes == two.notes
    # 144 clean images, 6 bad files decoded in each bad class (not the hidden file and the
    # broken link, already problems from the walk; the hidden folder's image is decoded).
    assert one.decoded == two.decoded == 144 + 2 * 6


def test_the_cache_spares_the_decode_and_leaves_the_root_alone(
    tmp_path: Path, capsys: pytest.CaptureFixture, data_check_cache: Path
) -> None:
    root = clean_root(tmp_path / "photos")
    add_bad_files(root)
    before = _tree(root)
    root.chmod(0o555)  # read-only (for a non-root user; the tree comparison is the proof)
    try:
        assert main(["data", "check", str(root)]) == 1
        first = capsys.readouterr().out
        assert main(["data", "check", str(root)]) == 1
        second = capsys.readouterr().out
    finally:
        root.chmod(0o755)
    assert _tree(root) == before
    assert len(list((data_check_cache / "data-check").glob("*.json"))) == 2  # a split each
    assert "26 image(s) decoded, 0 from the cache" in first  # 20 good, 6 bad
    assert "0 image(s) decoded, 26 from the cache" in second
    assert _problem_lines(first) == _problem_lines(second)
    # A changed file: its class is decoded again, the others come from the cache.
    write_image(root / "train" / "dog" / "3.jpg", seed=7)
    assert main(["data", "check", str(root)]) == 1
    assert "8 image(s) decoded, 18 from the cache" in capsys.readouterr().out
    assert main(["data", "check", str(root), "--no-cache"]) == 1
    assert "26 image(s) decoded, 0 from the cache" in capsys.readouterr().out


def test_bad_roots_are_errors(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    (tmp_path / "d" / "train" / "a").mkdir(parents=True)
    assert main(["data", "check", str(tmp_path / "d")]) == 2
    assert "has no val/ folder" in capsys.readouterr().err


def test_an_interrupted_check_keeps_what_it_decoded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = clean_root(tmp_path / "photos", classes=("a", "b", "c"))
    real = check_module.images.inspect_many
    calls = []

    def interrupted(items):
        calls.append(len(items))
        if len(calls) == 2:  # Ctrl-C while decoding the second class of train/
            raise KeyboardInterrupt
        return real(items)

    monkeypatch.setattr(check_module.images, "inspect_many", interrupted)
    with pytest.raises(KeyboardInterrupt):
        check_root(root, workers=1, cache=tmp_path / "cache")
    monkeypatch.setattr(check_module.images, "inspect_many", real)
    again = check_root(root, workers=1, cache=tmp_path / "cache")
    assert (again.cached, again.decoded) == (
        8,
        16 + 6,
    )  # class a kept; b, c and val/ left


def test_the_listed_image_extensions_are_torchvisions() -> None:
    from torchvision.datasets.folder import IMG_EXTENSIONS

    from experiments.data.listing import IMAGE_EXTENSIONS

    assert IMAGE_EXTENSIONS == tuple(IMG_EXTENSIONS)

"""The images of an ImageFolder root, listed in one walk exactly as torchvision lists them.

`list_split(folder)` finds what `torchvision.datasets.ImageFolder(folder)` trains on: the class
folders (the entries of `folder` that are directories, symlinks followed, sorted by name) and
in each every file whose name ends with one of torchvision's `IMG_EXTENSIONS` in any case, found
as `os.walk(class_folder, followlinks=True)` finds them: folders in sorted order of their path,
files sorted by name. The same walk stats every file (size and modification time, for the
fingerprint and the check's cache) and reports what ImageFolder takes silently: hidden files
and folders, folders nested in a class, broken symlinks, symlink loops (which ImageFolder
follows until the system refuses, listing the same files again at every turn; here a loop is
reported and not followed), images outside any class folder, folders it cannot read, class
names or file names in one folder that differ only by Unicode normalisation, and two class
names for one folder.
This is the one definition of "the images of a split": the estimate, the check, the record and
the training set all use it (tests/test_data_listing.py compares it with ImageFolder).
"""

from __future__ import annotations

import os
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from experiments.data.images import UNREADABLE
from roadmap.errors import UserError

# torchvision's `datasets.folder.IMG_EXTENSIONS`, written out so that listing imports no torch
# (tests/test_data_check.py checks that the two agree).
IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS = ("train", "val")

# Problems the walk finds. Those of files and folders inside a split can be left out
# (`recipe.skip_bad_images`); those of the layout cannot.
HIDDEN = "hidden"
NESTED = "nested folder"
BROKEN_LINK = "broken symlink"
LOOP = "symlink loop"
OUTSIDE = "outside a class folder"
UNREADABLE_FOLDER = "unreadable folder"
EMPTY_CLASS = "empty class"
UNICODE = "unicode normalisation"
SAME_FOLDER = "same folder"
FIXED_BY_LEAVING_OUT = (HIDDEN, NESTED, BROKEN_LINK, LOOP, OUTSIDE)


@dataclass(frozen=True, order=True)
class Problem:
    """One thing wrong with a dataset: where (relative to the checked root), what, details."""

    path: str
    kind: str
    detail: str = ""

    def line(self, root: str | os.PathLike | None = None) -> str:
        """`path: kind (detail)`, the path made absolute under `root` when given."""
        rel = self.path or "."
        where = os.path.normpath(os.path.join(root, rel)) if root is not None else rel
        return f"{where}: {self.kind}" + (f" ({self.detail})" if self.detail else "")


@dataclass
class ClassFiles:
    """The image files of one class folder, in ImageFolder's order."""

    name: str
    files: list[str] = field(default_factory=list)  # relative to the split folder
    sizes: list[int] = field(default_factory=list)  # bytes; -1 where stat failed
    mtimes: list[int] = field(default_factory=list)  # st_mtime_ns


@dataclass
class SplitListing:
    """One split folder (`train/`, `val/`) as ImageFolder sees it, and what the walk found."""

    name: str
    folder: Path
    classes: list[ClassFiles]
    problems: list[Problem]
    ignored: int = 0  # files without an image extension: ImageFolder skips them

    @property
    def images(self) -> int:
        """Image files listed (what ImageFolder's `len` would be)."""
        return sum(len(c.files) for c in self.classes)

    @property
    def bytes(self) -> int:
        """Bytes of the listed image files."""
        return sum(s for c in self.classes for s in c.sizes if s > 0)

    def samples(self) -> Iterator[tuple[str, int]]:
        """(path relative to the split folder, class index), ImageFolder's `samples` order."""
        for index, cls in enumerate(self.classes):
            for rel in cls.files:
                yield rel, index


@dataclass
class RootListing:
    """An ImageFolder root: its `train/` and `val/` listings."""

    root: Path
    splits: dict[str, SplitListing]

    def all_problems(self) -> list[Problem]:
        """What the walk found wrong in every split, sorted by path."""
        return sorted(p for split in self.splits.values() for p in split.problems)


def list_root(path: str | os.PathLike) -> RootListing:
    """List `path/train` and `path/val`; a missing root, split or class folder is an error."""
    root = Path(path).expanduser()
    if not root.exists():
        raise FileNotFoundError(f"data root {root} does not exist")
    if not root.is_dir():
        raise NotADirectoryError(f"data root {root} is not a directory")
    for name in SPLITS:
        if not (root / name).is_dir():
            raise FileNotFoundError(
                f"data root {root} has no {name}/ folder (expected ImageNet layout: "
                f"{root}/train/<class>/*.jpg and {root}/val/<class>/*.jpg)"
            )
    return RootListing(root.absolute(), {n: list_split(root / n, n) for n in SPLITS})


def list_split(folder: str | os.PathLike, name: str | None = None) -> SplitListing:
    """The classes and image files of one split folder; problem paths start with `name`/."""
    folder = Path(folder)
    name = folder.name if name is None else name
    try:
        entries = sorted(os.scandir(folder), key=lambda e: e.name)
    except OSError as err:
        raise FileNotFoundError(f"{folder}: cannot list it ({err.strerror})") from None
    split = SplitListing(name, folder, [], [])
    for entry in entries:
        if not _is_dir(entry):
            _loose_file(entry, split)
    class_entries = [e for e in entries if _is_dir(e)]
    if not class_entries:
        raise _no_classes(split)
    _check_class_names(class_entries, split)
    for entry in class_entries:
        cls = ClassFiles(entry.name)
        _walk_class(entry.path, cls, split)
        if not cls.files:
            split.problems.append(Problem(f"{name}/{entry.name}", EMPTY_CLASS, "no image files"))
        split.classes.append(cls)
    return split


def _no_classes(split: SplitListing) -> UserError:
    """The error of a split without class folders, with a hint for a flat ImageNet val/."""
    loose = sum(p.kind == OUTSIDE for p in split.problems)
    hint = (
        f" (its {loose} images lie directly in it; ImageNet's val/ comes that way: sort "
        "them into one folder per class)"
        if loose
        else ""
    )
    return UserError(f"{split.folder} has no class folders{hint}")


def _is_dir(entry: os.DirEntry) -> bool:
    """Whether `entry` is a directory, symlinks followed (as os.scandir / os.walk decide)."""
    try:
        return entry.is_dir()
    except OSError:
        return False


def _loose_file(entry: os.DirEntry, split: SplitListing) -> None:
    """A file directly in the split folder: ImageFolder ignores it."""
    rel = f"{split.name}/{entry.name}"
    if entry.is_symlink() and not os.path.exists(entry.path):
        split.problems.append(Problem(rel, BROKEN_LINK, _link_target(entry.path)))
    elif entry.name.lower().endswith(IMAGE_EXTENSIONS):
        split.problems.append(
            Problem(rel, OUTSIDE, "ImageFolder ignores images outside class folders")
        )
    else:
        split.ignored += 1


def _check_class_names(entries: list[os.DirEntry], split: SplitListing) -> None:
    """Hidden class folders, names equal after Unicode normalisation, one folder twice."""
    by_nfc: dict[str, list[str]] = {}
    by_inode: dict[tuple[int, int], str] = {}
    for entry in entries:
        rel = f"{split.name}/{entry.name}"
        if entry.name.startswith("."):
            split.problems.append(
                Problem(rel, HIDDEN, "hidden folder: ImageFolder makes it a class")
            )
        by_nfc.setdefault(unicodedata.normalize("NFC", entry.name), []).append(entry.name)
        st = entry.stat()
        first = by_inode.setdefault((st.st_dev, st.st_ino), entry.name)
        if first != entry.name:
            split.problems.append(Problem(rel, SAME_FOLDER, f"the folder of class {first!r} again"))
    for names in by_nfc.values():
        if len(names) > 1:
            split.problems.append(
                Problem(
                    f"{split.name}/{names[0]}",
                    UNICODE,
                    "class folders whose names differ only by Unicode normalisation: "
                    + ", ".join(ascii(n) for n in names),
                )
            )


def _walk_class(top: str, cls: ClassFiles, split: SplitListing) -> None:
    """List one class folder's images as `os.walk(top, followlinks=True)` + sorting would."""
    start = len(top) - len(cls.name)  # path[start:]: relative to the split folder
    for folder, files in _folders(top, start, split):
        listed = 0
        for entry in sorted(files, key=lambda e: e.name):
            listed += _list_file(entry, start, cls, split)
        if listed and folder != top:
            _nested(folder[start:], listed, cls.name, split)
        _file_twins(folder[start:], [e.name for e in files], split)


def _file_twins(rel: str, names: list[str], split: SplitListing) -> None:
    """Image files of one folder whose names differ only by Unicode normalisation.

    Both are listed and trained on here, but a copy to a filesystem that normalises names
    (macOS) keeps one of them: the dataset would not be the same there.
    """
    by_nfc: dict[str, list[str]] = {}
    for name in names:
        if name.lower().endswith(IMAGE_EXTENSIONS):
            by_nfc.setdefault(unicodedata.normalize("NFC", name), []).append(name)
    for twins in by_nfc.values():
        if len(twins) > 1:
            twins.sort()
            split.problems.append(
                Problem(
                    f"{split.name}/{rel}/{twins[0]}",
                    UNICODE,
                    "file names that differ only by Unicode normalisation: "
                    + ", ".join(ascii(n) for n in twins),
                )
            )


def _folders(top: str, start: int, split: SplitListing) -> list[tuple[str, list[os.DirEntry]]]:
    """Every folder under `top` (symlinks followed, loops cut) with its non-folder entries."""
    folders = []
    pending = [(top, frozenset([_inode(top)]))]
    while pending:
        folder, ancestors = pending.pop()
        try:
            entries = list(os.scandir(folder))
        except OSError as err:
            rel = f"{split.name}/{folder[start:]}"
            split.problems.append(Problem(rel, UNREADABLE_FOLDER, str(err.strerror)))
            continue
        files = []
        for entry in entries:
            if not _is_dir(entry):
                files.append(entry)
                continue
            inode = _inode(entry.path)
            if inode in ancestors:
                rel = f"{split.name}/{entry.path[start:]}"
                split.problems.append(Problem(rel, LOOP, _link_target(entry.path)))
            else:
                pending.append((entry.path, ancestors | {inode}))
        folders.append((folder, files))
    return sorted(folders, key=lambda item: item[0])


def _list_file(entry: os.DirEntry, start: int, cls: ClassFiles, split: SplitListing) -> bool:
    """Add one file of a class folder if ImageFolder would list it; whether it did."""
    rel = entry.path[start:]
    if not entry.name.lower().endswith(IMAGE_EXTENSIONS):
        if entry.is_symlink() and not os.path.exists(entry.path):
            split.problems.append(
                Problem(f"{split.name}/{rel}", BROKEN_LINK, _link_target(entry.path))
            )
        else:
            split.ignored += 1
        return False
    try:
        st = entry.stat()
        cls.sizes.append(st.st_size)
        cls.mtimes.append(st.st_mtime_ns)
    except OSError as err:
        cls.sizes.append(-1)
        cls.mtimes.append(0)
        link = entry.is_symlink()
        split.problems.append(
            Problem(
                f"{split.name}/{rel}",
                BROKEN_LINK if link else UNREADABLE,
                _link_target(entry.path) if link else str(err.strerror),
            )
        )
    if entry.name.startswith("."):
        split.problems.append(
            Problem(
                f"{split.name}/{rel}",
                HIDDEN,
                "hidden file, which ImageFolder reads as an image",
            )
        )
    cls.files.append(rel)
    return True


def _nested(rel: str, images: int, name: str, split: SplitListing) -> None:
    """A folder below a class folder that holds images: ImageFolder counts them as the class."""
    hidden = any(part.startswith(".") for part in rel.split(os.sep)[1:])
    split.problems.append(
        Problem(
            f"{split.name}/{rel}",
            HIDDEN if hidden else NESTED,
            f"{'hidden ' if hidden else ''}folder inside class {name!r}: ImageFolder "
            f"counts its {images} image(s) as that class",
        )
    )


def _inode(path: str) -> tuple[int, int]:
    """(device, inode) of `path`, symlinks followed."""
    st = os.stat(path)
    return st.st_dev, st.st_ino


def _link_target(path: str) -> str:
    """Where a symlink points, in words."""
    try:
        return f"points to {os.readlink(path)!r}"
    except OSError:
        return "cannot be read"

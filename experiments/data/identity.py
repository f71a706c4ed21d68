"""What a run records of its dataset: the class map in index order and a fingerprint.

The fingerprint of a split is its number of image files and a SHA-256 over its classes (those
the run trains on, in ImageFolder's order), each class's hash covering every file's path
(relative to the split), size and content: the SHA-256 of its bytes, read while the data check
decodes it (experiments/data/check.py `content_digest`, cached with the check's results). The
count and a short hash per class are kept so that a change can be said in words. Any renamed,
added, removed, resized or edited file, a class renamed, two class folders swapped or a
re-export of the images changes it; copying the dataset elsewhere does not.
"""

from __future__ import annotations

import hashlib
import json
import unicodedata
from typing import Any

from experiments.data.listing import SPLITS, Problem, RootListing, SplitListing

CLASSES_DIFFER = "classes differ"
CONTENT = "content-sha256"  # the `fingerprint` of a dataset identity: what its hashes cover
SHOWN = 4  # names shown in a description before "and N more"


def left_out(rel: str, excluded: set[str]) -> bool:
    """Whether `rel` (relative to the root) or a folder above it is in `excluded`."""
    if not excluded:
        return False
    while rel:
        if rel in excluded:
            return True
        rel = rel.rpartition("/")[0]
    return False


def class_names(split: SplitListing, excluded: set[str] = frozenset()) -> list[str]:
    """The split's class names in index order, class folders in `excluded` left out."""
    return [c.name for c in split.classes if not left_out(f"{split.name}/{c.name}", excluded)]


def class_problems(listing: RootListing, excluded: set[str]) -> list[Problem]:
    """A problem if train/ and val/ have other classes (twins by normalisation shown by repr)."""
    if not all(s in listing.splits for s in SPLITS):
        return []
    train, val = (class_names(listing.splits[s], excluded) for s in SPLITS)
    if train == val:
        return []
    only_train = sorted(set(train) - set(val))
    only_val = sorted(set(val) - set(train))
    detail = f"only in train: {_few(only_train)}; only in val: {_few(only_val)}"
    nfc = {unicodedata.normalize("NFC", n): n for n in only_val}
    twins = [
        (n, nfc[unicodedata.normalize("NFC", n)])
        for n in only_train
        if unicodedata.normalize("NFC", n) in nfc
    ]
    if twins:
        pairs = ", ".join(f"train {ascii(a)} vs val {ascii(b)}" for a, b in twins[:SHOWN])
        detail += f"; differing only by Unicode normalisation: {pairs}"
    return [Problem("", CLASSES_DIFFER, detail)]


def fingerprint(
    split: SplitListing, content: dict[str, str], excluded: set[str] = frozenset()
) -> dict[str, Any]:
    """Images, SHA-256 of the classes, and per class (in index order) its images and hash.

    `content`: class name -> the check's content digest of the class. Class folders in
    `excluded` are left out; files are all counted, left out or not.
    """
    total = hashlib.sha256()
    class_sha, class_images = [], []
    for cls in split.classes:
        if left_out(f"{split.name}/{cls.name}", excluded):
            continue
        digest = content[cls.name]
        total.update(f"{cls.name}\t{digest}\n".encode("utf-8", "surrogateescape"))
        class_sha.append(digest[:12])
        class_images.append(len(cls.files))
    return {
        "images": sum(class_images),
        "sha256": total.hexdigest(),
        "class_images": class_images,
        "class_sha256": class_sha,
    }


def imagefolder_identity(
    listing: RootListing, excluded: set[str], content: dict[str, dict[str, str]]
) -> dict[str, Any]:
    """The `dataset` of a run's identity on an ImageFolder root (see the module docstring).

    `content`: split -> class -> content digest, as the data check found them.
    """
    return {
        "name": "imagefolder",
        "fingerprint": CONTENT,
        "classes": class_names(listing.splits[SPLITS[0]], excluded),
        **{s: fingerprint(listing.splits[s], content[s], excluded) for s in SPLITS},
    }


def builtin_identity(classes: list[str], train: int, val: int) -> dict[str, Any]:
    """The `dataset` of a run's identity on the built-in data (a function of the recipe)."""
    return {
        "name": "builtin-shapes",
        "classes": list(classes),
        "train": {"images": train},
        "val": {"images": val},
    }


def digest(dataset: dict[str, Any] | None) -> str:
    """A dataset identity's short fingerprint: SHA-256 of its sorted JSON, 12 hex; "" if none.

    The string `predictions.npz` stores and analysis compares runs by (`analysis.bars.dataset_key`
    calls it).
    """
    if not isinstance(dataset, dict):
        return ""
    text = json.dumps(dataset, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def brief(dataset: dict[str, Any] | None) -> str:
    """A dataset in a few words: `2 classes, fingerprint 3f2a9c1e` (of train/ and val/)."""
    if not dataset:
        return "a dataset not recorded"
    digest = hashlib.sha256(
        "".join(str((dataset.get(s) or {}).get("sha256")) for s in SPLITS).encode()
    ).hexdigest()[:8]
    if dataset.get("name") != "imagefolder":
        return f"{dataset.get('name')}, {len(dataset.get('classes') or [])} classes"
    return f"{len(dataset.get('classes') or [])} classes, fingerprint {digest}"


def describe_change(old: dict[str, Any] | None, new: dict[str, Any]) -> str:
    """What differs between the recorded dataset `old` and `new`, in one line."""
    if not old:
        return (
            "dataset: its classes and fingerprint are not recorded in this config (written "
            "by an older version)"
        )
    if old.get("name") != new.get("name"):
        return f"dataset {old.get('name')!r} -> {new.get('name')!r}"
    if old.get("fingerprint") != new.get("fingerprint"):
        return (
            f"dataset: fingerprint {old.get('fingerprint') or 'of names and sizes'} -> "
            f"{new.get('fingerprint')} (recorded by an older version; start a new run)"
        )
    parts = []
    if old.get("classes") != new.get("classes"):
        parts.append(_classes_change(old.get("classes") or [], new["classes"]))
    for split in SPLITS:
        if old.get(split) != new.get(split):
            parts.append(_split_change(split, old, new))
    return "dataset changed: " + "; ".join(parts)


def _classes_change(old: list[str], new: list[str]) -> str:
    """How the class map changed: added and removed names, or indices that moved."""
    added = [n for n in new if n not in old]
    removed = [n for n in old if n not in new]
    if added or removed:
        return f"classes {len(old)} -> {len(new)} (added: {_few(added)}; removed: {_few(removed)})"
    moved = [
        f"{i}: {a!r} -> {b!r}" for i, (a, b) in enumerate(zip(old, new, strict=True)) if a != b
    ]
    return f"class indices moved ({_few(moved)})"


def _split_change(split: str, old: dict[str, Any], new: dict[str, Any]) -> str:
    """How one split's fingerprint changed: its count, and the classes whose files differ."""
    was, now = old.get(split) or {}, new.get(split) or {}
    text = f"{split}/ {was.get('images')} -> {now.get('images')} images"
    before = _per_class(old.get("classes") or [], was)
    after = _per_class(new.get("classes") or [], now)
    changed = [n for n in after if n in before and before[n] != after[n]]
    if changed:
        text += (
            f", the files of {len(changed)} class(es) changed (names, sizes or content): "
            f"{_few([repr(n) for n in changed])}"
        )
    elif was.get("images") == now.get("images"):
        text += " (same count, other files)"
    return text


def _per_class(classes: list[str], split: dict[str, Any]) -> dict[str, tuple]:
    """Class name -> (images, hash) of a recorded split fingerprint."""
    counts, hashes = split.get("class_images") or [], split.get("class_sha256") or []
    if len(counts) != len(classes) or len(hashes) != len(classes):
        return {}
    return dict(zip(classes, zip(counts, hashes, strict=True), strict=True))


def _few(names: list[str]) -> str:
    """At most SHOWN names, then a count; "none" for none."""
    if not names:
        return "none"
    more = f" and {len(names) - SHOWN} more" if len(names) > SHOWN else ""
    return ", ".join(names[:SHOWN]) + more

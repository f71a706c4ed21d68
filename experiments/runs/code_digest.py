"""The code a run trained with: a digest of the model and training code, with one per file.

`training_code()` hashes the files of the packages this process imports (a sweep's snapshot, a
checkout or site-packages alike), keeping those of `TRAINING_CODE`; the trainer writes it into
result.json as `code` (docs/run-life.md). `mixed_code` says how the runs of one bar differ in it,
naming the files, for the staircase and `roadmap status`.
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PACKAGES = ("roadmap", "experiments", "analysis")  # the project's code, as a snapshot copies it
# The model and training code (paths under PACKAGES' parent): what a run's `code` covers. The
# sweep, status and analysis code is left out: editing it changes no trained number.
TRAINING_CODE = (
    "roadmap/",
    "experiments/train/",
    "experiments/data/",
    "experiments/recipe.py",
    "experiments/timm_names.py",
)
FILE_DIGEST_CHARS = 16  # hex characters kept of each file's SHA-256
SHOWN_FILES = 6  # differing files named, then "and N more"

Code = dict[str, Any]  # {"digest": str, "files": {path: digest}, "earlier": [digest, ...]}


def package_dir(name: str) -> Path:
    """The folder Python imports the package `name` from (without importing it)."""
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(f"package {name!r} is not importable")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def package_files(names: Iterable[str] = PACKAGES) -> dict[str, Path]:
    """Every file of the packages `names` as `package/path` -> where it is.

    Byte code (`__pycache__`, `.pyc`) and hidden files (editor and tool caches) are left out.
    """
    found: dict[str, Path] = {}
    for name in names:
        top = package_dir(name)
        for path in sorted(top.rglob("*")):
            parts = path.relative_to(top).parts
            hidden = any(p.startswith(".") or p == "__pycache__" for p in parts)
            if path.is_file() and not hidden and path.suffix not in (".pyc", ".pyo"):
                found["/".join((name, *parts))] = path
    return found


def file_digests(files: Mapping[str, Path]) -> dict[str, str]:
    """Each file's SHA-256 (its first `FILE_DIGEST_CHARS` hex characters), by name."""
    return {
        name: hashlib.sha256(path.read_bytes()).hexdigest()[:FILE_DIGEST_CHARS]
        for name, path in sorted(files.items())
    }


def combined(digests: Mapping[str, str]) -> str:
    """One SHA-256 over the names and digests of files (the order does not matter)."""
    text = "".join(f"{name}\0{digest}\n" for name, digest in sorted(digests.items()))
    return hashlib.sha256(text.encode()).hexdigest()


def is_training_code(name: str) -> bool:
    """Whether the file `package/path` is model or training code (`TRAINING_CODE`)."""
    return name.startswith(TRAINING_CODE)


@functools.cache
def training_code() -> Code:
    """The model and training code this process imports: its digest and each file's."""
    files = package_files(("roadmap", "experiments"))
    digests = file_digests({n: p for n, p in files.items() if is_training_code(n)})
    return {"digest": combined(digests), "files": digests}


def code_record(earlier: Iterable[str] = ()) -> Code:
    """result.json's `code`: this process's, and other digests the run trained with before."""
    code = training_code()
    others = list(dict.fromkeys(d for d in earlier if d and d != code["digest"]))
    return {**code, "earlier": others}


def trained_with(digests: list[str] | None) -> list[str]:
    """The digests a run has trained with (a checkpoint's list), this process's appended."""
    mine = training_code()["digest"]
    seen = list(digests or [])
    return seen if seen[-1:] == [mine] else [*seen, mine]


def differing_files(codes: Iterable[Code]) -> list[str]:
    """The files whose digest is not the same in all `codes` (present in only some included)."""
    maps = [c.get("files") or {} for c in codes]
    names = sorted({n for m in maps for n in m})
    return [n for n in names if len({m.get(n) for m in maps}) > 1]


def mixed_code(codes: Mapping[str, Code | None]) -> str | None:
    """How the runs of one bar (run name -> its `code`) differ in their code, or None.

    Runs that recorded no code (older than the record) are named only beside runs that did;
    a run resumed on other code than it started with is named too.
    """
    known = {n: c for n, c in codes.items() if isinstance(c, dict) and c.get("digest")}
    if not known:
        return None
    groups: dict[str, list[str]] = {}
    for name, code in known.items():
        groups.setdefault(code["digest"], []).append(name)
    parts = []
    if len(groups) > 1:
        names = " | ".join(", ".join(g) for g in sorted(groups.values(), key=len, reverse=True))
        files = differing_files(known.values())
        more = f" and {len(files) - SHOWN_FILES} more" if len(files) > SHOWN_FILES else ""
        parts.append(
            f"{len(groups)} versions of the model/training code ({names}); files that differ: "
            + (", ".join(files[:SHOWN_FILES]) + more if files else "none listed")
        )
    resumed = [n for n, c in known.items() if c.get("earlier")]
    if resumed:
        parts.append(f"resumed on other code than it started with: {', '.join(resumed)}")
    unknown = [n for n in codes if n not in known]
    if unknown:
        parts.append(f"no code recorded: {', '.join(unknown)}")
    return "; ".join(parts) or None

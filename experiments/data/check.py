"""The data check: list an ImageFolder root, decode every image in worker processes, cache it.

`check_root(root)` lists `train/` and `val/` (experiments/data/listing.py), then decodes every
image file that the cache (experiments/data/cache.py) has no result for, fully, as training
will (experiments/data/images.py), in `workers` processes with a progress bar. The result, a
`DataCheck`, holds every problem with its path, the notes (harmless conversions) and each
class's content digest (`content_digest`: of every file's SHA-256, read during the decode).
`usable(check, skip)` turns it into what a run may train on, or one error: problems of the
layout always, bad files unless `skip` (`recipe.skip_bad_images`) leaves them out.
"""

from __future__ import annotations

import hashlib
import multiprocessing
import os
import sys
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from tqdm import tqdm

from experiments.data import images
from experiments.data.cache import CheckCache, Found, cache_dir, class_digest
from experiments.data.identity import (
    CLASSES_DIFFER,
    class_names,
    class_problems,
    imagefolder_identity,
    left_out,
)
from experiments.data.listing import (
    BROKEN_LINK,
    EMPTY_CLASS,
    FIXED_BY_LEAVING_OUT,
    HIDDEN,
    ClassFiles,
    Problem,
    RootListing,
    SplitListing,
    list_root,
    list_split,
)
from roadmap.errors import UserError

CHUNK = 64  # images per task of a worker process
SAVE_EVERY_S = 30.0  # the cache is written this often during a long check, and at its end
SHOWN = 5  # problems named in an error; `roadmap data check` lists all
LEAVABLE = (*FIXED_BY_LEAVING_OUT, *images.DECODE_PROBLEMS)
NOT_DECODED = (
    BROKEN_LINK,
    HIDDEN,
)  # already a problem from the walk: not decoded as well

DecodeChunk = tuple[str, str, list[tuple[str, int]]]  # split, class, [(absolute path, size)]
Finished = Callable[[str, Found, dict[str, str]], None]  # class, found, path -> SHA-256


@dataclass
class DataCheck:
    """What checking a root found: its listing, every problem and note, and what it cost."""

    listing: RootListing
    problems: list[Problem]
    notes: dict[str, list[str]] = field(default_factory=dict)  # note -> paths
    decoded: int = 0  # images decoded by this check
    cached: int = 0  # images whose result came from the cache
    seconds: float = 0.0
    warnings: list[str] = field(default_factory=list)
    content: dict[str, dict[str, str]] = field(default_factory=dict)  # split -> class -> digest


@dataclass
class Usable:
    """What a run trains on: the class map, the files left out and the images per split."""

    classes: list[str]
    excluded: list[Problem]
    images: dict[str, int]


def default_workers() -> int:
    """The CPU cores this process may use (Slurm's allocation, taskset)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1


def check_root(
    root: str | os.PathLike,
    workers: int | None = None,
    cache: Path | None | bool = True,
    out: IO[str] | None = None,
) -> DataCheck:
    """List and decode `root/train` and `root/val` (see the module docstring).

    `cache`: True for `cache_dir()`, a folder, or None/False for none. Progress goes to `out`
    (stderr by default): a bar on a terminal, else a line every few seconds.
    """
    return _check(list_root(root), workers, cache, out)


def check_split(
    folder: str | os.PathLike,
    workers: int | None = None,
    cache: Path | None | bool = True,
    out: IO[str] | None = None,
) -> DataCheck:
    """The check of one folder of class folders (e.g. `root/train` alone)."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such directory")
    split = list_split(folder)
    return _check(
        RootListing(folder.parent.absolute(), {split.name: split}),
        workers,
        cache,
        out,
    )


def _check(
    listing: RootListing,
    workers: int | None,
    cache: Path | None | bool,
    out: IO[str] | None,
) -> DataCheck:
    """Decode what the cache does not know of every split of `listing`."""
    t0 = time.perf_counter()
    folder = cache_dir() if cache is True else (cache or None)
    check = DataCheck(listing, listing.all_problems())
    found: list[list[str]] = []
    for split in listing.splits.values():
        store = CheckCache(split.folder, folder)
        with store.lock():
            store.load()
            found += _check_split(split, store, check, workers or default_workers(), out)
        check.warnings += [store.warning] if store.warning else []
    for rel, kind, detail in found:
        if kind in images.DECODE_PROBLEMS:
            check.problems.append(Problem(rel, kind, detail))
        else:
            check.notes.setdefault(kind, []).append(rel)
    check.problems += class_problems(listing, set())
    check.problems.sort()
    check.seconds = time.perf_counter() - t0
    return check


def _check_split(
    split: SplitListing,
    store: CheckCache,
    check: DataCheck,
    workers: int,
    out: IO[str] | None,
) -> list[list[str]]:
    """What decoding found in one split (cached classes from `store`, others decoded now)."""
    skip = {p.path for p in split.problems if p.kind in NOT_DECODED}
    found: list[list[str]] = []
    jobs: list[DecodeChunk] = []
    digests = {}
    for cls in split.classes:
        digests[cls.name] = digest = class_digest(cls)
        items = [
            (os.path.join(split.folder, rel), size)
            for rel, size in zip(cls.files, cls.sizes, strict=True)
            if f"{split.name}/{rel}" not in skip
        ]
        cached = store.get(cls.name, digest)
        if cached is not None:
            found += [[f"{split.name}/{rel}", *hit] for rel, *hit in cached[0]]
            check.content.setdefault(split.name, {})[cls.name] = cached[1]
            check.cached += len(items)
            continue
        jobs += [(split.name, cls.name, items[i : i + CHUNK]) for i in range(0, len(items), CHUNK)]
        jobs += [] if items else [(split.name, cls.name, [])]
    total = sum(len(j[2]) for j in jobs)
    bar = Progress(total, f"data check {split.folder}", out)

    by_name = {cls.name: cls for cls in split.classes}

    def done(name: str, result: Found, shas: dict[str, str]) -> None:
        content = content_digest(by_name[name], shas)
        check.content.setdefault(split.name, {})[name] = content
        store.put(name, digests[name], result, content)

    try:
        decoded = _decode(jobs, split, workers, bar, done, lambda: store.save(list(digests)))
        found += [[f"{split.name}/{rel}", *hit] for rel, *hit in decoded]
    finally:  # interrupted too: what was decoded is kept
        store.save(list(digests))
        bar.close()
    check.decoded += total
    return found


def _decode(
    jobs: list[DecodeChunk],
    split: SplitListing,
    workers: int,
    bar: Progress,
    done: Finished,
    save: Callable[[], None],
) -> list[list[str]]:
    """Run `jobs` (in worker processes when `workers` > 1); call `done` per finished class.

    What they found: [path relative to the split folder, problem or note, detail].
    """
    left = {}
    for _, name, _ in jobs:
        left[name] = left.get(name, 0) + 1
    per_class: dict[str, Found] = {name: [] for name in left}
    shas: dict[str, dict[str, str]] = {name: {} for name in left}
    cut = len(str(split.folder)) + 1

    def finish(job: DecodeChunk, result: list[images.Inspected]) -> None:
        _, name, items = job
        for (path, _), (sha, hits) in zip(items, result, strict=True):
            per_class[name] += [[path[cut:], kind, detail] for kind, detail in hits]
            shas[name][path[cut:]] = sha
        left[name] -= 1
        if not left[name]:
            done(name, per_class[name], shas[name])
        bar.update(len(items))

    if workers <= 1 or len(jobs) <= 1:
        last_save = time.perf_counter()
        for job in jobs:
            finish(job, images.inspect_many(job[2]))
            if time.perf_counter() - last_save > SAVE_EVERY_S:
                save()
                last_save = time.perf_counter()
    else:
        _in_workers(jobs, workers, finish, save)
    return [hit for name in per_class for hit in per_class[name]]


def _in_workers(
    jobs: list[DecodeChunk],
    workers: int,
    finish: Callable[[DecodeChunk, list[images.Inspected]], None],
    save: Callable[[], None],
) -> None:
    """`images.inspect_many` over `jobs` in a pool of processes, the cache saved now and then.

    Forked where the platform can, as torch's DataLoader starts its workers: they need only
    Pillow, already imported.
    """
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else None
    context = multiprocessing.get_context(method)
    last_save = time.perf_counter()
    with ProcessPoolExecutor(min(workers, len(jobs)), mp_context=context) as pool:
        queue = iter(jobs)
        running: dict[Future, DecodeChunk] = {}
        for job in queue:  # a few tasks per worker in flight, not all of ImageNet's at once
            running[pool.submit(images.inspect_many, job[2])] = job
            if len(running) >= 4 * workers:
                break
        while running:
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                finish(running.pop(future), future.result())
                job = next(queue, None)
                if job is not None:
                    running[pool.submit(images.inspect_many, job[2])] = job
            if time.perf_counter() - last_save > SAVE_EVERY_S:
                save()
                last_save = time.perf_counter()


def content_digest(cls: ClassFiles, shas: dict[str, str]) -> str:
    """SHA-256 of a class's files in order: each one's path, size and content SHA-256.

    A file not decoded (a broken link, a hidden file: problems of the walk) counts as "".
    """
    lines = "".join(
        f"{rel}\t{size}\t{shas.get(rel, '')}\n"
        for rel, size in zip(cls.files, cls.sizes, strict=True)
    )
    return hashlib.sha256(lines.encode("utf-8", "surrogateescape")).hexdigest()


class Progress:
    """A tqdm bar on a terminal; elsewhere a line every `every_s` seconds and at the end."""

    def __init__(self, total: int, label: str, out: IO[str] | None, every_s: float = 10.0) -> None:
        self.out = out or sys.stderr
        self.total, self.label, self.every_s = total, label, every_s
        self.count, self.t0 = 0, time.perf_counter()
        self.last = self.t0
        tty = total > 0 and getattr(self.out, "isatty", lambda: False)()
        self.bar = tqdm(total=total, desc=label, unit="img", file=self.out) if tty else None

    def update(self, n: int) -> None:
        """`n` more images done."""
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
        elif time.perf_counter() - self.last >= self.every_s:
            self.last = time.perf_counter()
            print(self._line(), file=self.out, flush=True)

    def close(self) -> None:
        """End the bar, or print the last line (when anything was decoded)."""
        if self.bar is not None:
            self.bar.close()
        elif self.total:
            print(self._line(), file=self.out, flush=True)

    def _line(self) -> str:
        seconds = time.perf_counter() - self.t0
        rate = self.count / seconds if seconds > 0 else 0.0
        eta = (self.total - self.count) / rate if rate > 0 else float("nan")
        return (
            f"{self.label}: {self.count}/{self.total} images decoded "
            f"({100 * self.count / max(self.total, 1):.0f}%), {rate:.0f} img/s, "
            f"{seconds:.0f} s" + (f", about {eta:.0f} s left" if self.count < self.total else "")
        )


def usable(check: DataCheck, skip: bool) -> Usable:
    """What a run trains on; one UserError naming the first problems otherwise.

    Problems of the layout are always refused; bad files and folders are refused unless
    `skip`, which leaves them out (a class left with no image is then refused).
    """
    listing = check.listing
    bad = [p for p in check.problems if p.kind in LEAVABLE]
    layout = [p for p in check.problems if p.kind not in LEAVABLE and p.kind != CLASSES_DIFFER]
    layout += class_problems(listing, {p.path for p in bad} if skip else set())
    if layout or (bad and not skip):
        shown = layout + ([] if skip else bad)
        raise UserError(refusal(listing.root, sorted(shown), can_skip=not layout))
    excluded = {p.path for p in bad}
    counts, after = {}, []
    for name, split in listing.splits.items():
        counts[name] = 0
        for cls in split.classes:
            if left_out(f"{name}/{cls.name}", excluded):
                continue
            kept = len(cls.files) - sum(
                left_out(f"{name}/{rel}", excluded) for rel in cls.files if excluded
            )
            counts[name] += kept
            if not kept:
                after.append(Problem(f"{name}/{cls.name}", EMPTY_CLASS, "every image left out"))
    if after:
        raise UserError(refusal(listing.root, after, can_skip=False))
    first = next(iter(listing.splits.values()))
    return Usable(class_names(first, excluded), bad, counts)


def dataset_identity(check: DataCheck, excluded: set[str]) -> dict[str, Any]:
    """The `dataset` of a run's identity from a check of its root (`imagefolder_identity`)."""
    return imagefolder_identity(check.listing, excluded, check.content)


def refusal(root: Path, problems: list[Problem], can_skip: bool) -> str:
    """The error for `problems`: their count, the first few with absolute paths, what to do."""
    shown = [f"  {p.line(root)}" for p in problems[:SHOWN]]
    more = f"  ... and {len(problems) - SHOWN} more" if len(problems) > SHOWN else ""
    advice = (
        "--set recipe.skip_bad_images=true leaves these files out of the run"
        if can_skip
        else "problems of the layout cannot be left out: fix them"
    )
    return "\n".join(
        [
            f"data root {root}: {len(problems)} problem(s):",
            *shown,
            *([more] if more else []),
            f"`roadmap data check {root}` lists them all; {advice}",
        ]
    )

"""Time `roadmap data check` on a folder: wall and CPU seconds, images/s per core.

Usage: python docs/benchmarks/data_check_speed.py ROOT [--workers N] [--cached] [--walk]
Without --cached every image is decoded (no cache read or written); with it the check runs
twice on a cache in a temporary folder and both runs are timed: the second, cached, one costs
the walk, the digests and the cache read. --walk also times the listing alone. CPU time is
this process's plus its worker processes' (user + sys), which load from other processes on
the machine affects less than the wall clock.
"""

import argparse
import resource
import tempfile
import time
from pathlib import Path

from experiments.data.check import DataCheck, check_root
from experiments.data.listing import list_root


def cpu_seconds() -> float:
    """User + system seconds of this process and its finished children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(root: Path, workers: int, cache: Path | None) -> None:
    """One check of `root`, and what it cost."""
    t0, c0 = time.perf_counter(), cpu_seconds()
    check: DataCheck = check_root(root, workers, cache)
    wall, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    images = sum(s.images for s in check.listing.splits.values())
    print(
        f"check: {images} images ({check.decoded} decoded, {check.cached} from the cache), "
        f"{len(check.problems)} problems, {workers} worker(s): wall {wall:.2f} s, "
        f"CPU {cpu:.2f} s; {check.decoded / cpu if cpu else 0:.0f} decoded images/s per "
        f"CPU second; {images / wall:.0f} images/s of wall time",
        flush=True,
    )


def main() -> None:
    """Run the check (and the walk alone) and print what it cost."""
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--cached", action="store_true")
    parser.add_argument("--walk", action="store_true")
    args = parser.parse_args()
    if args.walk:
        t0, c0 = time.perf_counter(), cpu_seconds()
        listing = list_root(args.root)
        files = sum(s.images for s in listing.splits.values())
        print(
            f"walk: {files} image files listed and stat'ed: wall "
            f"{time.perf_counter() - t0:.2f} s, CPU {cpu_seconds() - c0:.2f} s",
            flush=True,
        )
    with tempfile.TemporaryDirectory() as cache:
        folder = Path(cache) if args.cached else None
        timed(args.root, args.workers, folder)
        if args.cached:
            timed(args.root, args.workers, folder)


if __name__ == "__main__":
    main()

"""Time the content digest of `roadmap data check` against the decode it rides on.

Usage: python docs/benchmarks/content_digest_speed.py ROOT [--repeats N]
Every image file under ROOT is read once into memory; then, on one core and in CPU seconds
(`time.process_time`, which load from other processes affects less than the wall clock), the
SHA-256 of all of them and the decode of all of them (`images.load_rgb`, as the check does it)
are timed, each `--repeats` times (the fastest is printed). The digest's share of the check is
digest / (digest + decode); reading the bytes is shared by both and not counted.
"""

import argparse
import hashlib
import time
from pathlib import Path

from experiments.data.images import load_rgb
from experiments.data.listing import IMAGE_EXTENSIONS


def fastest(repeats: int, work) -> float:
    """The fewest CPU seconds `work()` took in `repeats` tries."""
    best = float("inf")
    for _ in range(repeats):
        c0 = time.process_time()
        work()
        best = min(best, time.process_time() - c0)
    return best


def main() -> None:
    """Read the files, time both, print MB/s and images/s per core and the digest's share."""
    parser = argparse.ArgumentParser()
    parser.add_argument("root", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    paths = sorted(p for p in args.root.rglob("*") if p.name.lower().endswith(IMAGE_EXTENSIONS))
    files = [(str(p), p.read_bytes()) for p in paths]
    megabytes = sum(len(b) for _, b in files) / 1e6
    digest = fastest(args.repeats, lambda: [hashlib.sha256(b).digest() for _, b in files])
    decode = fastest(args.repeats, lambda: [load_rgb(p, None, b) for p, b in files])
    print(
        f"{len(files)} files, {megabytes:.1f} MB ({1e3 * megabytes / len(files):.0f} kB each): "
        f"SHA-256 {digest:.3f} s CPU = {megabytes / digest:.0f} MB/s per core; decode "
        f"{decode:.3f} s CPU = {len(files) / decode:.0f} images/s per core; the digest adds "
        f"{100 * digest / decode:.1f}% to the decode ({100 * digest / (digest + decode):.1f}% "
        "of the check's CPU)",
        flush=True,
    )


if __name__ == "__main__":
    main()

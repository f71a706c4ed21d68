"""glibc's malloc told to keep the memory a training step frees for the next step.

On the CPU every optimizer step frees and allocates again the same blocks: the gradients
(`zero_grad(set_to_none=True)`; about 100 MB for a ResNet-50), the activations and the optimizer's
temporaries. By default glibc hands the top of its heap back to the kernel once more than its
trim threshold is free (at most 64 MiB, by its own dynamic rule), and serves blocks above its mmap
threshold with fresh mappings: each step then touches its memory again page by page, as minor
page faults zero-filled by the kernel. A smoke run of `resnet50_modern_recipe` took about
1,000,000 of them and 2.5 s of system time in training, 6% of its CPU time
(docs/make-run-profile.md); with the thresholds below, about 75,000 and 0.4 s, the same numbers
and the same peak memory.

`keep_freed_memory` fixes the mmap threshold at glibc's largest (32 MiB) and the trim threshold
at 1 GiB. It does nothing under another C library, or when the environment sets glibc's malloc
options itself (MALLOC_*_ variables or GLIBC_TUNABLES): a setting of the user's is kept.
"""

from __future__ import annotations

import ctypes
import os
import sys

M_TRIM_THRESHOLD = -1  # mallopt parameters (glibc's malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 32 * 2**20  # glibc refuses more (HEAP_MAX_SIZE / 2)
TRIM_THRESHOLD = 2**30  # above a step's churn (64 MiB is not: measured)

USER_SETTINGS = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_", "GLIBC_TUNABLES")


def keep_freed_memory() -> bool:
    """Set glibc's mmap and trim thresholds for this process; whether they were set."""
    if not sys.platform.startswith("linux") or any(v in os.environ for v in USER_SETTINGS):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt  # the process's own C library
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    # mallopt returns 1 on success (musl's stub returns 0).
    mmap_set = mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
    return mmap_set and mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1

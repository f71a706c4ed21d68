"""CPU memory of one training step, from torch's profiler: its private API, reached here alone.

Why private: the profiler's public tables report memory per operator, not the peak of tensor
bytes alive at once. The allocation events of `kineto_results.experimental_event_tree()`
(torch.profiler's `profile().profiler`) carry the allocator's running total, and their type is
`torch._C._profiler._EventType.Allocation`. tests/test_private_apis.py fails loudly when the
installed torch no longer has them; the benchmark then reports no CPU memory (empty cells).
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from collections.abc import Callable, Iterator

from torch.profiler import ProfilerActivity, profile

try:
    from torch._C._profiler import _EventType
except ImportError:  # pragma: no cover - moved in this torch: no CPU memory figure
    _EventType = None

# What the profiler's native code (kineto) writes to stderr on every start and stop, and, in a
# CUDA build of torch on a machine without a GPU, once per process: noise, not news.
_PROFILER_NOISE = re.compile(
    r"(SyncActivityProfilerHandler\.cpp.*profiler_(start|stop)"
    r"|DeviceProperties\.cpp.*gpuGetDeviceCount failed)"
)


@contextlib.contextmanager
def without_profiler_noise() -> Iterator[None]:
    """Hold back the profiler's start/stop lines from stderr (file descriptor 2); keep the rest.

    Native code writes to the descriptor, not to `sys.stderr`, so the descriptor is pointed at a
    temporary file for the duration and every line that is not known noise is written back.
    """
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            for line in tmp.read().decode(errors="replace").splitlines(keepends=True):
                if not _PROFILER_NOISE.search(line):
                    sys.stderr.write(line)
            sys.stderr.flush()


def cpu_step_peak_bytes(fn: Callable[[], None]) -> int | None:
    """Peak of CPU tensor bytes allocated during `fn` and alive at once, from profiler events.

    The profiler's allocation events carry the allocator's running total of bytes allocated
    since profiling began (frees of older tensors do not lower it), whose maximum is the peak
    extra memory of the step. None where this torch lacks the private API (module doc).
    """
    if _EventType is None:
        return None
    with (
        without_profiler_noise(),
        profile(activities=[ProfilerActivity.CPU], profile_memory=True) as prof,
    ):
        fn()
    try:
        tree = prof.profiler.kineto_results.experimental_event_tree()  # type: ignore[union-attr]
    except AttributeError:  # pragma: no cover - moved in this torch
        return None
    peak, stack = 0, list(tree)
    while stack:
        node = stack.pop()
        stack.extend(node.children)
        if node.tag == _EventType.Allocation and node.extra_fields.device.type == "cpu":
            peak = max(peak, int(node.extra_fields.total_allocated))
    return peak

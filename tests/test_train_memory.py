"""The trainer's malloc settings: memory a step frees is reused, not faulted in again."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest

from experiments.train import memory

# A training step's pattern: 25 blocks of 4 MiB (a ResNet-50's gradients are about 100 MB)
# allocated, written and freed, five times; prints the minor page faults of those five steps.
PROBE = """
import ctypes, resource, sys
from experiments.train.memory import keep_freed_memory
if sys.argv[1] == "tuned":
    assert keep_freed_memory()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
def step():
    blocks = [libc.malloc(4 << 20) for _ in range(25)]
    for b in blocks:
        ctypes.memset(b, 1, 4 << 20)
    for b in blocks:
        libc.free(b)
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
"""

glibc_only = pytest.mark.skipif(
    platform.libc_ver()[0] != "glibc", reason="the malloc settings are glibc's"
)


def _faults(mode: str) -> int:
    env = {k: v for k, v in os.environ.items() if k not in memory.USER_SETTINGS}
    out = subprocess.run(
        [sys.executable, "-c", PROBE, mode], env=env, capture_output=True, text=True, check=True
    )
    return int(out.stdout)


@glibc_only
def test_freed_step_memory_is_reused_without_page_faults() -> None:
    default, tuned = _faults("default"), _faults("tuned")
    # Default glibc trims the freed 100 MB each step: about 25,600 faults a step.
    assert default > 5 * 10_000
    assert tuned * 20 < default


@pytest.mark.parametrize("name", memory.USER_SETTINGS)
def test_a_users_malloc_setting_is_kept(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(name, "1")
    assert memory.keep_freed_memory() is False

"""Skips that depend on the machine: a reason, or a failure where the run asks for every test.

`ROADMAP_STRICT_SKIPS=1` (set by .ci/run) turns these skips into failures, so that a CI run
that lacks what it means to test (a Slurm cluster, a mountable tmpfs, the ../shared reference
copy) fails instead of passing short. A hosted CI's `CI=true` changes nothing: without the
variable the default suite needs nothing outside the repository (docs/layout.md).
"""

from __future__ import annotations

import os
from typing import NoReturn

import pytest

ENV = "ROADMAP_STRICT_SKIPS"


def strict() -> bool:
    """Whether this run turns machine-dependent skips into failures."""
    return os.environ.get(ENV, "") == "1"


def skip_or_fail(reason: str) -> NoReturn:
    """Skip the test with `reason`; fail with it under `ROADMAP_STRICT_SKIPS=1`."""
    if strict():
        pytest.fail(f"{reason} ({ENV}=1: this test must run)")
    pytest.skip(reason)

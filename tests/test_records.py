"""The run record's own helpers: time stamps written in UTC and read at any offset."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from experiments import records


def _in_zone(zone: str, code: str) -> str:
    """What `code` prints in a Python started with TZ=`zone`."""
    env = dict(os.environ, TZ=zone)
    proc = subprocess.run(
        [sys.executable, "-c", f"from experiments import records\n{code}"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return proc.stdout.strip()


def test_a_stamp_written_in_tokyo_has_the_right_age_in_new_york() -> None:
    stamp = _in_zone("Asia/Tokyo", "print(records.now())")
    assert stamp.endswith("+00:00")  # written in UTC, whatever the host's zone
    age = float(_in_zone("America/New_York", f"print(records.age_s({stamp!r}))"))
    assert 0 <= age < 60
    # A stamp with the local offset (as the sweep wrote them before) reads right too.
    local = _in_zone(
        "Asia/Tokyo", "import time; print(time.strftime('%Y-%m-%dT%H:%M:%S%z'))"
    )
    assert local.endswith("+0900")
    age = float(_in_zone("America/New_York", f"print(records.age_s({local!r}))"))
    assert 0 <= age < 60


@pytest.mark.parametrize(
    ("stamp", "epoch"),
    [
        ("2026-12-01T09:00:00+09:00", 1796083200.0),
        ("2026-12-01T00:00:00+00:00", 1796083200.0),
        ("2026-12-01T00:00:00Z", 1796083200.0),
        ("2026-11-30T19:00:00-0500", 1796083200.0),
        ("2026-12-01T00:00:00", 1796083200.0),  # no offset: UTC
    ],
)
def test_parse_stamp_honours_the_offset(stamp: str, epoch: float) -> None:
    assert records.parse_stamp(stamp).timestamp() == epoch


def test_unknown_or_bad_stamps_are_infinitely_old() -> None:
    assert records.age_s(None) == float("inf")
    assert records.age_s("yesterday") == float("inf")
    assert 0 <= records.age_s(records.now()) < 5

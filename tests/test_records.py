"""The run record's own helpers: time stamps written in UTC and read at any offset."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from experiments.runs import records


def _in_zone(zone: str, code: str) -> str:
    """What `code` prints in a Python started with TZ=`zone`."""
    env = dict(os.environ, TZ=zone)
    proc = subprocess.run(
        [sys.executable, "-c", f"from experiments.runs import records\n{code}"],
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
    local = _in_zone("Asia/Tokyo", "import time; print(time.strftime('%Y-%m-%dT%H:%M:%S%z'))")
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


@pytest.mark.parametrize(
    ("name", "text", "reason"),
    [
        (records.CONFIG, "", "empty file"),
        (records.CONFIG, '{"track": "resnet50", "st', "not valid JSON (Unterminated string"),
        (records.CONFIG, "[]", "an array where a JSON object belongs"),
        (records.CONFIG, '{"track": "resnet50", "step": "kernel_7", "seed": "0"}',
         "'seed' is '0', where a int belongs"),
        (records.RESULT, '{"status": "fine"}', "status 'fine' is not done or failed"),
        (records.RESULT, '{"status": "done", "top1": "high"}', "'top1' is 'high'"),
        (records.JOB, '{"executor": "local", "stopped": 5}', "'stopped' is 5"),
        (records.JOB, '"local"', "a string where a JSON object belongs"),
    ],
)  # fmt: skip
def test_readers_name_the_file_and_what_is_wrong(
    tmp_path, name: str, text: str, reason: str
) -> None:
    (tmp_path / name).write_text(text)
    read = {records.CONFIG: records.read_config, records.RESULT: records.read_result,
            records.JOB: records.read_job}[name]  # fmt: skip
    with pytest.raises(records.UnreadableRecord) as err:
        read(tmp_path)
    assert str(err.value).startswith(f"{tmp_path / name}: {reason}"), err.value
    assert records.read_or_reason(read, tmp_path) == (None, str(err.value))
    assert read(tmp_path / "absent") is None


def test_an_append_after_a_torn_line_stays_whole_and_a_failed_one_leaves_nothing(
    tmp_path, monkeypatch
) -> None:
    path = tmp_path / records.EVENTS
    records.append_jsonl(path, {"event": "start"})
    with open(path, "a") as f:
        f.write('{"event": "checkp')  # a crash mid-append
    records.append_jsonl(path, {"event": "resume"})
    problems: list[str] = []
    assert [r["event"] for r in records.read_jsonl(path, problems)] == [
        "start",
        "resume",
    ]
    assert len(problems) == 1 and problems[0].endswith("), skipped")
    assert problems[0].startswith(f"{path}: line 2: not valid JSON (")
    size = path.stat().st_size

    def full(fd: int, data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(OSError) as err:
        records.append_jsonl(path, {"event": "end"})
    assert (err.value.strerror, err.value.filename) == (
        "No space left on device",
        str(path),
    )
    assert path.stat().st_size == size

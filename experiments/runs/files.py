"""Crash-safe files: atomic writes, fsynced appends, and readers that name what is wrong.

A write either leaves the whole new file or the old one (`atomic_file`, `atomic_write_json`),
or, for JSON lines, one more whole line or nothing (`append_jsonl`); an OSError that names no
file (a full disk) is raised naming the file it was writing (`named_error`). A record that is
there but unusable raises `UnreadableRecord` with its path and reason (`read_json`), or is
skipped and described (`read_jsonl`). `check_writable` tests an output folder before any work.
The run directory's own files and their shapes are in experiments/runs/records.py.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from roadmap.errors import UserError


@contextlib.contextmanager
def atomic_file(
    path: str | os.PathLike, mode: str = "w", prefix: str | None = None
) -> Iterator[IO[Any]]:
    """A file that appears at `path` whole or not at all, never in part.

    Written to a temporary file beside it (`prefix` + random + `.tmp`, default `.<name>.`),
    fsynced, renamed over `path`, and the folder fsynced; on an error the temporary file goes.
    An OSError that names no file (a full disk, say) is raised naming `path`.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(
            prefix=prefix or f".{path.name}.", suffix=".tmp", dir=path.parent
        )
    except OSError as err:
        raise named_error(err, path) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask())  # mkstemp makes 0600; records are for colleagues
        with os.fdopen(fd, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, OSError) and named_error(err, path) is not err:
            raise named_error(err, path) from err
        raise
    _fsync_dir(path.parent)


def named_error(err: OSError, path: str | os.PathLike) -> OSError:
    """`err` naming `path` if it names no file of its own (`OSError` picks the subclass)."""
    if err.filename is not None or err.errno is None:
        return err
    return OSError(err.errno, err.strerror, str(path))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Write JSON to `path` so that readers see the old file or the whole new one, never part."""
    with atomic_file(path) as f:
        json.dump(obj, f, indent=1, sort_keys=True, default=str)
        f.write("\n")


def _umask() -> int:
    """The process umask (read by setting it and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def append_jsonl(path: str | os.PathLike, row: dict[str, Any]) -> None:
    """Append one JSON line and fsync it; a failed append leaves the file as it was.

    A torn last line (a crash mid-append) gets its line end first, so that it stays one
    unreadable line and does not swallow this one.
    """
    data = (json.dumps(row, sort_keys=True, default=str) + "\n").encode()
    try:
        fd = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o666)
    except OSError as err:
        raise named_error(err, path) from None
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data
        while data:
            data = data[os.write(fd, data) :]
        os.fsync(fd)
    except OSError as err:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, size)
        raise named_error(err, path) from None
    finally:
        os.close(fd)


class UnreadableRecord(UserError):
    """A record that exists but cannot be read, is not JSON, or has the wrong shape."""

    def __init__(self, path: str | os.PathLike, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path, self.reason = Path(path), reason


def _kind(obj: Any) -> str:
    """What JSON calls the type of `obj`."""
    kinds = {list: "an array", str: "a string", bool: "a boolean", type(None): "null"}
    return kinds.get(type(obj), "a number")


def read_json(
    path: str | os.PathLike, check: Callable[[dict], str | None] | None = None
) -> dict[str, Any] | None:
    """The JSON object in `path`, or None if there is no such file.

    A file that cannot be read, is empty, is not JSON, holds no object or fails `check` (what
    is wrong with the object, or None) raises `UnreadableRecord` with the path and the reason.
    """
    try:
        data = Path(path).read_bytes()
    except (FileNotFoundError, NotADirectoryError):  # under a file: not there either
        return None
    except OSError as err:
        raise UnreadableRecord(path, err.strerror or str(err)) from None
    if not data.strip():
        raise UnreadableRecord(path, "empty file")
    try:
        obj = json.loads(data)
    except ValueError as err:
        raise UnreadableRecord(path, f"not valid JSON ({err})") from None
    if not isinstance(obj, dict):
        raise UnreadableRecord(path, f"{_kind(obj)} where a JSON object belongs")
    problem = check(obj) if check else None
    if problem:
        raise UnreadableRecord(path, problem)
    return obj


def read_jsonl(path: str | os.PathLike, problems: list[str] | None = None) -> list[dict[str, Any]]:
    """Rows of a JSON-lines file, [] if it is missing.

    A line that is not a JSON object (torn by a crash mid-write, or edited) is skipped and,
    with `problems`, described there with the path and line number.
    """
    rows, bad = [], []
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for n, line in enumerate(f, 1):
                try:
                    row = json.loads(line) if line.strip() else {}
                except ValueError as err:
                    bad.append(f"line {n}: not valid JSON ({err})")
                    continue
                if not isinstance(row, dict):
                    bad.append(f"line {n}: {_kind(row)} where a JSON object belongs")
                elif row:
                    rows.append(row)
    except FileNotFoundError:
        pass
    except OSError as err:
        bad.append(err.strerror or str(err))
    if problems is not None:
        problems.extend(f"{path}: {b}, skipped" for b in bad)
    return rows


def parse_holder(data: bytes | str) -> dict[str, Any] | None:
    """A lock file's holder record (one JSON object), None if it is empty or not a record."""
    try:
        holder = json.loads(data)
    except ValueError:
        return None
    return holder if isinstance(holder, dict) else None


def read_holder(path: str | os.PathLike) -> dict[str, Any] | None:
    """The holder record in the lock file `path`; None if it is missing, empty or unreadable."""
    try:
        return parse_holder(Path(path).read_bytes())
    except OSError:
        return None


def check_writable(root: str | os.PathLike, what: str = "output root") -> None:
    """`root` is, or can be created as, a directory this process can write 64 KiB into.

    Raises an OSError with one line naming the path: not a directory, read-only, no
    permission, no space.
    """
    probe = Path(root).absolute()
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise NotADirectoryError(f"{what} {root}: {probe} is not a directory")
    try:
        fd, tmp = tempfile.mkstemp(prefix=".roadmap-write-test-", dir=probe)
        try:
            os.write(fd, bytes(1 << 16))
            os.fsync(fd)
        finally:
            os.close(fd)
            os.unlink(tmp)
    except OSError as err:
        message = f"{what} {root} is not writable: {err.strerror}"
        raise OSError(err.errno, message, str(probe)) from None

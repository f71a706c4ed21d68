"""One line for an error, as the `roadmap` command and the run records write it."""

from __future__ import annotations


def describe_error(err: BaseException) -> str:
    """One line for an error: a file-system error as `No space left on device (<path>)`."""
    if isinstance(err, OSError) and err.strerror:
        paths = " -> ".join(str(p) for p in (err.filename, err.filename2) if p)
        return f"{err.strerror} ({paths})" if paths else err.strerror
    return str(err)

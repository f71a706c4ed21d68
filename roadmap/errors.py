"""The two kinds of error: what the code means to tell the user, and everything else (a bug).

`UserError` is a mistake the user can fix (an option, a spec or recipe value, a config, a run
record, a step table row): the `roadmap` command prints its one line and exits 2. It subclasses
ValueError, so callers and tests that catch ValueError keep working. Any other exception is a bug:
the command prints its traceback and a one-line summary and exits 1 (docs/run-life.md).
Imports nothing heavy: every command, and the run records, can import it.
"""

from __future__ import annotations


class UserError(ValueError):
    """A mistake the user can fix, as one line naming the option, field or file."""


def describe_error(err: BaseException) -> str:
    """One line for an error: a file-system error as `No space left on device (<path>)`."""
    if isinstance(err, OSError) and err.strerror:
        paths = " -> ".join(str(p) for p in (err.filename, err.filename2) if p)
        return f"{err.strerror} ({paths})" if paths else err.strerror
    return str(err)

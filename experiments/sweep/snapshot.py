"""A launch's copy of the project's code: every job and requeue of the launch imports from it.

`snapshot_code(root)` copies the files of the packages this process imports (a checkout with
its uncommitted edits, or an installed package, wherever it is) into
`<root>/.code/<digest>/`, named by their content: a relaunch with the same code reuses it.
A job imports from it because its folder comes first on the job's PYTHONPATH and is the job's
working directory (Python puts that first on `sys.path` for `python -m`); a requeue runs the
same command in the same environment. Why not submitit's `RsyncSnapshot`: docs/sweeps.md.
"""

from __future__ import annotations

import os
import shlex
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from experiments.runs import code_digest, records

SNAPSHOTS = ".code"  # under a sweep's root
MANIFEST = "files.json"  # written last: a snapshot that has it is complete


@dataclass(frozen=True)
class CodeSnapshot:
    """A copy of the project's packages under a sweep's root, and the digest of its files."""

    path: Path  # holds roadmap/, experiments/, analysis/
    digest: str  # `code_digest.combined` over every file copied

    def python_path(self, environ: Mapping[str, str]) -> str:
        """PYTHONPATH for a job: the snapshot first, then what `environ` had."""
        rest = environ.get("PYTHONPATH", "")
        return os.pathsep.join([str(self.path), *([rest] if rest else [])])

    def env(self, environ: Mapping[str, str]) -> dict[str, str]:
        """`environ` for a job that imports from the snapshot."""
        return {**environ, "PYTHONPATH": self.python_path(environ)}

    def shell_setup(self) -> list[str]:
        """Lines of a job script (before its python) that make it import from the snapshot."""
        where = shlex.quote(str(self.path))
        return [f'export PYTHONPATH={where}"${{PYTHONPATH:+:$PYTHONPATH}}"', f"cd {where}"]


def snapshot_code(root: str | os.PathLike) -> CodeSnapshot:
    """Copy the project's packages into `<root>/.code/<digest>/` (kept if it is there)."""
    files = code_digest.package_files()
    base = Path(root).absolute() / SNAPSHOTS
    temp = base / f".tmp-{os.getpid()}"
    shutil.rmtree(temp, ignore_errors=True)
    for name, source in files.items():
        (temp / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, temp / name)
    # The digest of what was copied: a file edited meanwhile is in it as copied.
    digests = code_digest.file_digests({name: temp / name for name in files})
    digest = code_digest.combined(digests)
    sources = {name: str(code_digest.package_dir(name)) for name in code_digest.PACKAGES}
    manifest = {"digest": digest, "created": records.now(), "sources": sources, "files": digests}
    records.atomic_write_json(temp / MANIFEST, manifest)
    final = base / digest[:16]
    if (final / MANIFEST).is_file():
        shutil.rmtree(temp)
        return CodeSnapshot(final, digest)
    try:
        temp.rename(final)
    except OSError:  # another launch of the same code put it there first
        shutil.rmtree(temp, ignore_errors=True)
        if not (final / MANIFEST).is_file():
            raise
    return CodeSnapshot(final, digest)

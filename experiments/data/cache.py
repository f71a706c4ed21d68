"""The data check's cache: what decoding found, per class folder, kept outside the dataset.

One JSON file per split folder (named by a hash of its real path) under `cache_dir()`:
`$ROADMAP_CACHE_DIR`, else `$XDG_CACHE_HOME/convnext-roadmap`, else `~/.cache/convnext-roadmap`,
in `data-check/`. The dataset itself may be read-only and is never written to. A class's entry
holds a digest of the path, size and modification time of each of its image files, what
decoding them found and a digest of their content (experiments/data/check.py
`content_digest`); a later check decodes again only the classes whose digest changed, so an
unchanged dataset costs one directory walk. Entries of another check version or Pillow are
ignored. A lock file beside the cache makes concurrent checks of one folder take turns, so the
second one finds the first one's results instead of decoding everything again.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import PIL
import platformdirs

from experiments.data.listing import ClassFiles
from experiments.runs.files import atomic_file
from experiments.runs.locks import HolderLock, LockBusy

# Bump when what the check finds changes (new problem kinds, other rules): older entries go.
# 2: each class's content digest.
CHECK_VERSION = 2
ENV = "ROADMAP_CACHE_DIR"
LOCK_WAIT_S = 600.0  # another check of the folder decodes meanwhile; then go on uncached

Found = list[list[str]]  # [path relative to the split folder, problem or note, detail]


def cache_dir() -> Path:
    """Where the project caches: $ROADMAP_CACHE_DIR, $XDG_CACHE_HOME/convnext-roadmap, ~/.cache."""
    if os.environ.get(ENV):
        return Path(os.environ[ENV]).expanduser()
    return Path(platformdirs.user_cache_dir("convnext-roadmap", appauthor=False))


def class_digest(cls: ClassFiles) -> str:
    """SHA-256 of the path, size and modification time of every image file of a class."""
    lines = "".join(
        f"{rel}\t{size}\t{mtime}\n"
        for rel, size, mtime in zip(cls.files, cls.sizes, cls.mtimes, strict=True)
    )
    return hashlib.sha256(lines.encode("utf-8", "surrogateescape")).hexdigest()


class CheckCache:
    """The cached results of one split folder (empty when `folder` is None: caching off)."""

    def __init__(self, split_folder: str | os.PathLike, folder: Path | None) -> None:
        real = os.path.realpath(split_folder)
        key = hashlib.sha256(real.encode("utf-8", "surrogateescape")).hexdigest()[:24]
        self.path = None if folder is None else folder / "data-check" / f"{key}.json"
        self.header = {
            "version": CHECK_VERSION,
            "pillow": PIL.__version__,
            "folder": real,
        }
        self.classes: dict[str, dict[str, Any]] = {}
        self.warning: str | None = None

    def load(self) -> None:
        """Read the cache file, if any (one of another version or folder is ignored)."""
        if self.path is None:
            return
        try:
            data = json.loads(self.path.read_text())
        except FileNotFoundError:
            return
        except (OSError, ValueError) as err:
            self.warning = f"ignored the unreadable cache {self.path} ({err})"
            return
        if {k: data.get(k) for k in self.header} == self.header:
            self.classes = data.get("classes", {})

    def get(self, name: str, digest: str) -> tuple[Found, str] | None:
        """What decoding class `name` found and its content digest, if cached with `digest`."""
        entry = self.classes.get(name)
        if not entry or entry.get("digest") != digest or "content" not in entry:
            return None
        return entry["found"], entry["content"]

    def put(self, name: str, digest: str, found: Found, content: str) -> None:
        """Remember what decoding class `name` (with `digest`) found, and its content digest."""
        self.classes[name] = {"digest": digest, "found": found, "content": content}

    def save(self, names: list[str]) -> None:
        """Write the entries of the classes `names` (the folder's classes now), atomically.

        A cache that cannot be written costs the next check its time, not this one its
        result: the reason is kept in `warning`.
        """
        if self.path is None:
            return
        keep = {n: self.classes[n] for n in names if n in self.classes}
        try:
            with atomic_file(self.path) as f:
                json.dump({**self.header, "classes": keep}, f, separators=(",", ":"))
        except OSError as err:
            self.warning = f"could not write the cache {self.path} ({err.strerror})"

    @contextlib.contextmanager
    def lock(self, wait_s: float | None = None) -> Iterator[None]:
        """Hold the folder's cache lock (another check is waited for, `LOCK_WAIT_S` by default).

        A wait that runs out leaves the cache aside (a warning naming the holder).
        """
        if self.path is None:
            yield
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            lock = HolderLock(self.path.with_suffix(".lock")).acquire(
                LOCK_WAIT_S if wait_s is None else wait_s, f"the cache lock of {self.path}"
            )
        except LockBusy as busy:
            self.warning, self.path = f"cache not used: {busy.strerror}", None
            yield
            return
        except OSError as err:
            self.warning = f"cache folder {self.path.parent} not usable ({err.strerror})"
            self.path = None
            yield
            return
        with lock:
            yield

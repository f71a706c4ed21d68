"""Decoding one image as training does (PIL, then RGB), and what can go wrong with it.

`load_rgb(path)` is the loader of the training and evaluation sets: torchvision's `pil_loader`
(open, `convert("RGB")`, which decodes the whole file), except that a file that cannot become
an RGB image without losing it raises `BadImageError` naming the file and what is wrong.
`inspect(path, size)` runs the same decode for `roadmap data check` and says what it found,
with a SHA-256 of the file's bytes (read once: hashed, then decoded from memory), which makes
the dataset's fingerprint cover every file's content (experiments/data/identity.py).
This module imports only Pillow, so the check's worker processes start quickly.
"""

from __future__ import annotations

import hashlib
import io
import os

from PIL import Image, UnidentifiedImageError

from roadmap.errors import UserError

# What a file can be found to be by decoding it (the check's problems of one file).
ZERO_BYTES = "zero bytes"
NOT_AN_IMAGE = "not an image"
TRUNCATED = "truncated"
CORRUPT = "corrupt"
UNREADABLE = "unreadable"
LOSSY = "lossy conversion"
MISSING = "missing"
DECODE_PROBLEMS = (
    ZERO_BYTES,
    NOT_AN_IMAGE,
    TRUNCATED,
    CORRUPT,
    UNREADABLE,
    LOSSY,
    MISSING,
)

# Conversions that keep the image and are worth knowing about (the check's notes, not problems).
NOTE_CMYK = "CMYK, converted to RGB by PIL"
NOTE_ALPHA = "transparency dropped (RGB keeps the colour under transparent pixels)"
NOTE_FRAMES = "several frames: the first is used"
NOTE_FORMAT = "content and extension differ"

# Modes whose `convert("RGB")` clips every value above 255 (16-bit and wider, float): a 16-bit
# photograph becomes nearly white.
_CLIPPING_MODES = ("I", "F")
_EXTENSION_FORMATS = {
    ".jpg": "JPEG",
    ".jpeg": "JPEG",
    ".png": "PNG",
    ".ppm": "PPM",
    ".pgm": "PPM",
    ".bmp": "BMP",
    ".tif": "TIFF",
    ".tiff": "TIFF",
    ".webp": "WEBP",
}


class BadImageError(UserError):
    """A file that does not decode into an RGB image as training needs; names the file."""

    def __init__(self, path: str, kind: str, detail: str = "") -> None:
        self.path, self.kind, self.detail = str(path), kind, detail
        super().__init__(f"{path}: {kind}" + (f" ({detail})" if detail else ""))

    def __reduce__(self) -> tuple:
        return (type(self), (self.path, self.kind, self.detail))


def load_rgb(
    path: str | os.PathLike, notes: list[str] | None = None, content: bytes | None = None
) -> Image.Image:
    """The image at `path` as an RGB PIL image, fully decoded; `BadImageError` if it is not one.

    `notes`, when given, receives the `NOTE_*` conversions that applied; `content`, when given,
    is the file's bytes, already read (decoded from memory instead of opening `path`).
    """
    path = os.fspath(path)
    try:
        with open(path, "rb") if content is None else io.BytesIO(content) as f:
            image = Image.open(f)
            _refuse_lossy(image)
            if notes is not None:
                notes.extend(_notes(path, image))
            return image.convert("RGB")
    except BadImageError as err:
        raise BadImageError(path, err.kind, err.detail) from None
    except Exception as err:  # noqa: BLE001 - every decoder failure becomes one clear error
        raise BadImageError(path, *_classify(path, err)) from None


Inspected = tuple[str, list[tuple[str, str]]]  # content SHA-256 ("" unread), what was found


def inspect(path: str, size: int) -> Inspected:
    """SHA-256 of `path`'s bytes and what decoding it finds: (problem, detail) or (note, "").

    The digest is "" for a file that cannot be read; `size` is what the listing found.
    """
    try:
        with open(path, "rb") as f:
            content = f.read()
    except OSError as err:
        return "", [_classify(path, err)]
    digest = hashlib.sha256(content).hexdigest()
    if size == 0 or not content:
        return digest, [(ZERO_BYTES, "")]
    notes: list[str] = []
    try:
        load_rgb(path, notes, content)
    except BadImageError as err:
        return digest, [(err.kind, err.detail)]
    return digest, [(note, "") for note in notes]


def inspect_many(paths: list[tuple[str, int]]) -> list[Inspected]:
    """`inspect` each (path, size): the unit of work of the check's worker processes."""
    return [inspect(path, size) for path, size in paths]


def _refuse_lossy(image: Image.Image) -> None:
    """Raise for an image whose RGB conversion would clip it (16-bit, 32-bit, float)."""
    if image.mode.startswith(_CLIPPING_MODES):
        raise BadImageError(
            "",
            LOSSY,
            f"mode {image.mode}: PIL's RGB conversion clips values above 255, so the "
            "image turns nearly white; convert it to 8 bits per channel",
        )


def _notes(path: str, image: Image.Image) -> list[str]:
    """The conversions worth knowing about that decoding `image` involves."""
    notes = []
    if image.mode == "CMYK":
        notes.append(NOTE_CMYK)
    if "A" in image.mode or "transparency" in image.info:
        notes.append(NOTE_ALPHA)
    if getattr(image, "n_frames", 1) > 1:
        notes.append(NOTE_FRAMES)
    expected = _EXTENSION_FORMATS.get(os.path.splitext(path)[1].lower())
    if expected and image.format and image.format != expected:
        notes.append(f"{NOTE_FORMAT} ({image.format} named {os.path.splitext(path)[1]})")
    return notes


def _classify(path: str, err: Exception) -> tuple[str, str]:
    """(problem, detail) for an exception raised while decoding `path`."""
    message = str(err).replace(repr(path), "").strip()
    if isinstance(err, FileNotFoundError):
        return (
            MISSING,
            "no such file (a broken symlink, or removed since it was listed)",
        )
    if isinstance(err, PermissionError):
        return UNREADABLE, err.strerror or "permission denied"
    if isinstance(err, UnidentifiedImageError):
        try:
            size = os.path.getsize(path)
            with open(path, "rb") as f:
                head = f.read(12)
        except OSError:
            size, head = -1, b""
        if size == 0:
            return ZERO_BYTES, ""
        return NOT_AN_IMAGE, f"PIL cannot identify it; it starts with {head!r}"
    if "truncated" in message.lower():
        return TRUNCATED, message
    return CORRUPT, f"{type(err).__name__}: {message}" if message else type(err).__name__

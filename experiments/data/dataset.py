"""The images of a listed split as a torch Dataset, loaded as the check decoded them."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from PIL import Image
from torch.utils.data import Dataset

from experiments.data.identity import class_names, left_out
from experiments.data.images import load_rgb
from experiments.data.listing import SplitListing


class ListedImages(Dataset):
    """(image, class index) pairs of a split: ImageFolder's samples, files in `excluded` left out.

    `excluded` holds paths relative to the root (`train/cat/x.jpg`, `train/.hidden`); a class
    folder in it takes its class out of the class map. Images load with `load_rgb`, so a file
    that went bad after the check raises `BadImageError` naming it.
    """

    def __init__(
        self,
        split: SplitListing,
        excluded: set[str] = frozenset(),
        transform: Callable[[Image.Image], Any] | None = None,
    ) -> None:
        self.folder, self.transform = str(split.folder), transform
        self.classes = class_names(split, excluded)
        self.samples: list[tuple[str, int]] = []
        index = 0
        for cls in split.classes:
            if left_out(f"{split.name}/{cls.name}", excluded):
                continue
            self.samples += [
                (rel, index) for rel in cls.files if not left_out(f"{split.name}/{rel}", excluded)
            ]
            index += 1

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Any, int]:
        rel, target = self.samples[index]
        image = load_rgb(os.path.join(self.folder, rel))
        return (image if self.transform is None else self.transform(image)), target

"""Write an ImageNet-1K-sized tree of tiny real JPEGs, to time the walk and the cached check.

1000 class folders with 1281 files each in DIR/train (1,281,000, ImageNet-1K's training set
has 1,281,167) and 50 each in DIR/val: every file a distinct 8x8 JPEG of ~630 bytes, so that
listing, stat and the cache see as many files and inodes as ImageNet's, while decoding them is
cheap. Usage: python docs/benchmarks/make_file_tree.py DIR (about 5 GB on a 4 kB-block disk).
"""

import io
import os
import sys

import numpy as np
from PIL import Image


def main(root: str) -> None:
    """Write DIR/train/nXXXXXXXX/*.JPEG and DIR/val/nXXXXXXXX/*.JPEG."""
    rng = np.random.default_rng(0)
    for split, per_class in (("train", 1281), ("val", 50)):
        for c in range(1000):
            folder = os.path.join(root, split, f"n{c:08d}")
            os.makedirs(folder)
            buffer = io.BytesIO()
            pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
            data = buffer.getvalue()
            for i in range(per_class):
                with open(os.path.join(folder, f"n{c:08d}_{i}.JPEG"), "wb") as f:
                    f.write(data)


if __name__ == "__main__":
    main(sys.argv[1])

"""Write the synthetic JPEG ImageFolder used by the input-pipeline benchmark in benchmarks.md.

10 classes x 60 training (and 5 validation) JPEGs of 500x375 px, ImageNet's typical size, at
quality 90: upsampled colour noise plus fine noise, so that decoding costs what a photo does.
Usage: python docs/benchmarks/make_jpeg_folder.py DIR
"""

import sys
from pathlib import Path

import numpy as np
from PIL import Image


def main(root: Path) -> None:
    """Write DIR/train/classNN/*.JPEG and DIR/val/classNN/*.JPEG."""
    rng = np.random.default_rng(0)
    for split, n in (("train", 60), ("val", 5)):
        for c in range(10):
            folder = root / split / f"class{c:02d}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(n):
                low = Image.fromarray(rng.integers(0, 256, (24, 32, 3), dtype=np.uint8))
                img = np.asarray(low.resize((500, 375), Image.BICUBIC), dtype=np.float64)
                img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
                Image.fromarray(img).save(folder / f"{i:03d}.JPEG", quality=90)


if __name__ == "__main__":
    main(Path(sys.argv[1]))

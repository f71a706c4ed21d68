"""A 1x1 conv's forward + backward as oneDNN's conv and as the GEMM of `PointwiseConv2d`, by size.

    python docs/measurements/pointwise.py [--threads 1]

Prints ms per call (the best of two rounds of 4 calls, after 2 warm-up calls) for the feature
maps of a 32-px smoke run (1x1 to 8x8) and of ImageNet at 224 px (7x7 to 56x56), channels-last,
and which path `PointwiseConv2d` takes there (`roadmap.layers.GEMM_MAX_PIXELS`).
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch
from torch import nn

from roadmap.layers import GEMM_MAX_PIXELS, pointwise_gemm

SHAPES = ((768, 1, 32), (384, 2, 32), (192, 4, 32), (96, 8, 32),  # smoke, batch 32
          (768, 7, 16), (384, 14, 16), (192, 28, 16), (96, 56, 16))  # 224 px, batch 16  # fmt: skip


def _ms(layer: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor) -> float:
    """Milliseconds per forward + backward of `layer` on `x`."""
    for i in range(6):
        if i == 2:
            start = time.perf_counter()
        layer(x).sum().backward()
    return (time.perf_counter() - start) / 4 * 1000


def main() -> None:
    """Print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    torch.set_num_threads(parser.parse_args().threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s), "
          f"{torch.backends.cpu.get_cpu_capability()}")  # fmt: skip
    print("channels  map    batch  conv ms  gemm ms  gemm/conv  PointwiseConv2d takes")
    for chans, hw, batch in SHAPES:
        x = torch.randn(batch, chans, hw, hw, requires_grad=True)
        x = x.to(memory_format=torch.channels_last)
        conv = nn.Conv2d(chans, 4 * chans, 1)

        def gemm(t: torch.Tensor, c: nn.Conv2d = conv) -> torch.Tensor:
            return pointwise_gemm(t, c.weight, c.bias)

        conv_ms = min(_ms(conv, x) for _ in range(2))
        gemm_ms = min(_ms(gemm, x) for _ in range(2))
        takes = "gemm" if hw * hw <= GEMM_MAX_PIXELS else "conv"
        print(f"{chans:>8}  {hw:>2}x{hw:<3} {batch:>5}  {conv_ms:7.1f}  {gemm_ms:7.1f}  "
              f"{gemm_ms / conv_ms:9.2f}  {takes}")  # fmt: skip


if __name__ == "__main__":
    main()

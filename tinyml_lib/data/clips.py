"""Moving Fashion-MNIST clips for the video lab: one item slides across a canvas; the label is its direction.

A 2-D model that sees frames one at a time cannot tell left from right; a model that mixes time (TSM) can.
"""
from __future__ import annotations

import numpy as np
import torch

from tinyml_lib.data.fashion_mnist import load_fashion_mnist_uint8

DIRECTIONS = ("right", "left", "down", "up")
_STEP = {0: (0, 1), 1: (0, -1), 2: (1, 0), 3: (-1, 0)}  # (dy, dx) per direction


def make_moving_clips(n: int, frames: int = 16, size: int = 64, split: str = "train",
                      seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Clips of a Fashion-MNIST item moving in a straight line at 2 pixels per frame.

    Args:
        n: number of clips; frames: frames per clip (>= 2); size: canvas side (>= 28 + 2 * frames).
        split: which Fashion-MNIST split the items come from; seed: seeds items, directions and start points.
    Returns:
        clips (n, frames, 1, size, size) float32 in [0, 1], labels (n,) int64 indexing DIRECTIONS.
    """
    if n < 1 or frames < 2 or size < 28 + 2 * frames:
        raise ValueError(f"expected n >= 1, frames >= 2, size >= 28 + 2*frames; got n={n}, frames={frames}, size={size}")
    images, _ = load_fashion_mnist_uint8(split)
    rng = np.random.default_rng(seed)
    items = images[rng.choice(len(images), n)].astype(np.float32) / 255.0
    labels = rng.integers(0, len(DIRECTIONS), n)
    clips = np.zeros((n, frames, 1, size, size), np.float32)
    travel = 2 * (frames - 1)
    for k in range(n):
        dy, dx = _STEP[int(labels[k])]
        y0 = rng.integers(travel if dy < 0 else 0, size - 28 - (travel if dy > 0 else 0) + 1)
        x0 = rng.integers(travel if dx < 0 else 0, size - 28 - (travel if dx > 0 else 0) + 1)
        for t in range(frames):
            y, x = y0 + 2 * t * dy, x0 + 2 * t * dx
            clips[k, t, 0, y:y + 28, x:x + 28] = items[k]
    return torch.from_numpy(clips), torch.from_numpy(labels.astype(np.int64))

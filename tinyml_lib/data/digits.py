"""scikit-learn's bundled 8x8 digits (1,797 images, 10 classes; no download) with a fixed 60/20/20 split."""
from __future__ import annotations

import functools

import numpy as np
import torch

from tinyml_lib.data.splits import split_indices

SPLIT_SEED = 1797


@functools.cache
def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits  # bundled with scikit-learn's wheel
    bunch = load_digits()
    return bunch.images.astype(np.float32) / 16.0, bunch.target.astype(np.int64)


def load_digits_split(split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """One split of the digits.

    Args:
        split: "train" (1,078), "val" (359) or "test" (360).
    Returns:
        x (N, 1, 8, 8) float32 in [0, 1], y (N,) int64.
    """
    images, labels = _digits()
    idx = split_indices(len(labels), split, seed=SPLIT_SEED)
    return torch.from_numpy(images[idx]).unsqueeze(1), torch.from_numpy(labels[idx])

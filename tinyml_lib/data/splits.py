"""Fixed, seeded splits shared by the small data sets."""
from __future__ import annotations

import numpy as np

SPLITS = ("train", "val", "test")


def split_indices(n: int, split: str, fractions: tuple[float, float] = (0.6, 0.2), seed: int = 0) -> np.ndarray:
    """Sorted indices of one split of range(n) under a seeded permutation.

    Args:
        n: number of examples.
        split: "train", "val" or "test".
        fractions: (train, val) fractions; test gets the rest.
    Returns:
        (k,) int64 indices; the three splits are disjoint and cover range(n).
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    order = np.random.default_rng(seed).permutation(n)
    a, b = int(n * fractions[0]), int(n * (fractions[0] + fractions[1]))
    part = {"train": order[:a], "val": order[a:b], "test": order[b:]}[split]
    return np.sort(part)

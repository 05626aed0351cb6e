"""Fashion-MNIST (Xiao, Rasul, Vollgraf, 2017; MIT licence) from the shipped IDX files, with a fixed split.

Splits: "train" = 55,000 images and "val" = 5,000 images, both from the official 60k training set by a permutation
with a fixed seed (the same on every machine); "test" = the official 10,000 test images.
"""
from __future__ import annotations

import functools
import gzip

import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from tinyml_lib.data.manifest import verified_path
from tinyml_lib.data.splits import SPLITS

CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")
MEAN, STD = 0.2860, 0.3530  # of the 60k training images scaled to [0, 1]
VAL_SIZE, SPLIT_SEED = 5000, 20170825


@functools.cache
def _idx(name: str, offset: int) -> np.ndarray:
    with gzip.open(verified_path(f"fashion-mnist/{name}"), "rb") as f:
        return np.frombuffer(f.read(), np.uint8, offset=offset)


def load_fashion_mnist_uint8(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Raw images and labels of a split.

    Args:
        split: "train", "val" or "test".
    Returns:
        images (N, 28, 28) uint8, labels (N,) uint8 (read-only arrays).
    """
    if split not in SPLITS:
        raise ValueError(f"split: expected one of {SPLITS}, got {split!r}")
    prefix = "t10k" if split == "test" else "train"
    images = _idx(f"{prefix}-images-idx3-ubyte.gz", 16).reshape(-1, 28, 28)
    labels = _idx(f"{prefix}-labels-idx1-ubyte.gz", 8)
    if split == "test":
        return images, labels
    order = np.random.default_rng(SPLIT_SEED).permutation(len(labels))
    keep = order[:VAL_SIZE] if split == "val" else order[VAL_SIZE:]
    keep = np.sort(keep)
    return images[keep], labels[keep]


def load_fashion_mnist(split: str, subset: int | None = None, seed: int = 0,
                       normalize: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
    """A split as tensors ready for a CNN.

    Args:
        split: "train", "val" or "test".
        subset: if given, this many examples drawn without replacement with `seed` (class proportions kept on average).
        normalize: standardise with the training set's mean and std; otherwise scale to [0, 1].
    Returns:
        x (N, 1, 28, 28) float32, y (N,) int64.
    """
    images, labels = load_fashion_mnist_uint8(split)
    if subset is not None:
        if not 0 < subset <= len(labels):
            raise ValueError(f"subset: expected 1..{len(labels)} for split {split!r}, got {subset}")
        pick = np.sort(np.random.default_rng(seed).choice(len(labels), subset, replace=False))
        images, labels = images[pick], labels[pick]
    x = torch.from_numpy(images.astype(np.float32) / 255.0).unsqueeze(1)
    if normalize:
        x = (x - MEAN) / STD
    return x, torch.from_numpy(labels.astype(np.int64))


def fashion_mnist_loader(split: str, batch_size: int = 128, shuffle: bool | None = None, subset: int | None = None,
                         seed: int = 0) -> DataLoader:
    """A DataLoader over `load_fashion_mnist(split, subset, seed)`; shuffles the training split by default (seeded)."""
    x, y = load_fashion_mnist(split, subset, seed)
    shuffle = split == "train" if shuffle is None else shuffle
    return DataLoader(TensorDataset(x, y), batch_size=batch_size, shuffle=shuffle,
                      generator=torch.Generator().manual_seed(seed))

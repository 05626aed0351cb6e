"""Synthetic point clouds of primitive shapes (surface samples, randomly rotated and scaled) for the point-cloud lab."""
from __future__ import annotations

import numpy as np
import torch

SHAPES = ("box", "sphere", "cylinder", "cone", "torus")


def _sample_surface(shape: str, m: int, rng: np.random.Generator) -> np.ndarray:
    """(m, 3) points on the surface of a unit-sized primitive."""
    u, v = rng.random(m), rng.random(m)
    theta = 2 * np.pi * u
    if shape == "sphere":
        z = 2 * v - 1
        r = np.sqrt(1 - z**2)
        return np.stack([r * np.cos(theta), r * np.sin(theta), z], 1)
    if shape == "cylinder":
        return np.stack([np.cos(theta), np.sin(theta), 2 * v - 1], 1)
    if shape == "cone":
        h = 1 - np.sqrt(v)  # uniform on the lateral surface: radius grows linearly towards the base
        return np.stack([(1 - h) * np.cos(theta), (1 - h) * np.sin(theta), 2 * h - 1], 1)
    if shape == "torus":
        phi = 2 * np.pi * v
        return np.stack([(1 + 0.35 * np.cos(phi)) * np.cos(theta), (1 + 0.35 * np.cos(phi)) * np.sin(theta),
                         0.35 * np.sin(phi)], 1)
    face = rng.integers(0, 6, m)  # box: pick a face, then a point on it
    pts = rng.uniform(-1, 1, (m, 3))
    pts[np.arange(m), face // 2] = np.where(face % 2 == 0, -1.0, 1.0)
    return pts


def _random_rotation(rng: np.random.Generator) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    return q if np.linalg.det(q) > 0 else -q


def make_point_clouds(n_per_class: int, n_points: int = 1024, seed: int = 0,
                      noise: float = 0.01) -> tuple[torch.Tensor, torch.Tensor]:
    """A balanced, shuffled set of point clouds.

    Args:
        n_per_class: clouds per shape in SHAPES; n_points: points per cloud; noise: std of Gaussian jitter.
    Returns:
        points (len(SHAPES) * n_per_class, n_points, 3) float32, labels (same length,) int64 indexing SHAPES.
    """
    if n_per_class < 1 or n_points < 1:
        raise ValueError(f"expected n_per_class >= 1 and n_points >= 1, got {n_per_class}, {n_points}")
    rng = np.random.default_rng(seed)
    clouds, labels = [], []
    for label, shape in enumerate(SHAPES):
        for _ in range(n_per_class):
            pts = _sample_surface(shape, n_points, rng) * rng.uniform(0.6, 1.4, 3)
            clouds.append(pts @ _random_rotation(rng).T + noise * rng.standard_normal((n_points, 3)))
            labels.append(label)
    order = rng.permutation(len(labels))
    return (torch.from_numpy(np.asarray(clouds, np.float32)[order]),
            torch.from_numpy(np.asarray(labels, np.int64)[order]))

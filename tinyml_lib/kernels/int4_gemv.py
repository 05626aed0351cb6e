"""W4A32 GEMV for the C tier (Lab 06, TinyChat's LM-head GEMV): the NumPy reference and a seeded layer to test on.

Layout (Lab 07's `pack_int4`): 4-bit codes q[r, c] in [0, 15] two per byte, column 2j in the low nibble of byte
w[r, j] and column 2j + 1 in the high nibble; per group of `group` columns a float32 scale and a uint8 zero point.
Math: y[r] = sum_c (q[r, c] - zero[r, c // group]) * scale[r, c // group] * x[c].
"""
import numpy as np


def unpack_int4_bytes(packed: np.ndarray) -> np.ndarray:
    """(n, k/2) uint8 bytes -> (n, k) uint8 codes in [0, 15]: low nibble first."""
    packed = np.asarray(packed)
    if packed.dtype != np.uint8 or packed.ndim != 2:
        raise ValueError(f"packed: expected (n, k/2) uint8, got {packed.dtype} {packed.shape}")
    return np.stack([packed & 0x0F, packed >> 4], axis=-1).reshape(packed.shape[0], -1)


def gemv_w4_ref(packed: np.ndarray, scale: np.ndarray, zero: np.ndarray, x: np.ndarray, group: int,
                rows: int = 1024) -> np.ndarray:
    """The spec of the lab's GEMVs, in float64 (rounded to float32), `rows` rows at a time (memory stays small).

    Args:
        packed: (n, k/2) uint8.  scale: (n, k/group) float32.  zero: (n, k/group) uint8.  x: (k,) float32.
        group: columns per scale, dividing k.
    Returns:
        (n,) float32.
    """
    n, k = packed.shape[0], 2 * packed.shape[1]
    if group < 1 or k % group or scale.shape != (n, k // group) or zero.shape != scale.shape or x.shape != (k,):
        raise ValueError(f"expected packed (n, k/2), scale and zero (n, k/group), x (k,) with group | k; got packed "
                         f"{packed.shape}, scale {scale.shape}, zero {zero.shape}, x {x.shape}, group {group}")
    y = np.empty(n, np.float64)
    for r in range(0, n, rows):
        codes = unpack_int4_bytes(packed[r:r + rows]).astype(np.float64).reshape(-1, k // group, group)
        w = (codes - zero[r:r + rows, :, None]) * scale[r:r + rows, :, None].astype(np.float64)
        y[r:r + rows] = w.reshape(-1, k) @ x.astype(np.float64)
    return y.astype(np.float32)


def random_w4_layer(n: int, k: int, group: int, seed: int = 0) -> tuple[np.ndarray, ...]:
    """A seeded int4 layer and input: (packed (n, k/2) uint8, scale (n, k/group) float32, zero (n, k/group) uint8,
    x (k,) float32). Scales are drawn so that y has a standard deviation near 1 (like a normalised LM head's logits)."""
    if k % 2 or group < 1 or k % group:
        raise ValueError(f"expected an even k divisible by group, got k={k}, group={group}")
    g = np.random.default_rng(seed)
    packed = g.integers(0, 256, (n, k // 2), dtype=np.uint8)
    scale = (g.uniform(0.5, 1.5, (n, k // group)) / (4.6 * np.sqrt(k))).astype(np.float32)
    zero = g.integers(6, 10, (n, k // group), dtype=np.uint8)
    x = g.standard_normal(k, dtype=np.float32)
    return packed, scale, zero, x

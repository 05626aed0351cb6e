"""int8 GEMM with int32 accumulation and fused requantization: reference and launchers for kernels/int8_gemm.cu.

Math: acc[r, c] = bias[c] + sum_k X[r, k] W[c, k] (int32);
Y[r, c] = clamp(zy + floor((acc * m0[c] + 2^(30+n_c)) / 2^(31+n_c)), -128, 127), the multiplier S_W S_X / S_Y written
as m0 2^-(31+n) with m0 / 2^31 in [0.5, 1) (Jacob et al., CVPR 2018; Lab 03's `quantize_multiplier` / `requantize`).
"""
from functools import lru_cache

import numpy as np

from .launcher import array_module, ceil_div, kernel_file, load_kernel

VERSIONS = (1, 2, 3)


def int8_gemm_ref(x, w, bias, m0, shift, zy):
    """Reference in NumPy int64.

    Args:
        x: (M, K) int8.  w: (N, K) int8.  bias, m0, shift: (N,) int32.  zy: output zero point (int).
    Returns:
        (M, N) int8 NumPy array.
    """
    x, w, bias, m0, shift = (t.get() if hasattr(t, "get") else np.asarray(t) for t in (x, w, bias, m0, shift))
    acc = x.astype(np.int64) @ w.astype(np.int64).T + bias.astype(np.int64)        # (M, N)
    s = 31 + shift.astype(np.int64)
    q = ((acc * m0.astype(np.int64) + (np.int64(1) << (s - 1))) >> s) + int(zy)
    return np.clip(q, -128, 127).astype(np.int8)


def pad_k(a, multiple=4):
    """(R, K) int8 -> (R, K') int8 C-contiguous with K' the next multiple of `multiple`, padded with zeros."""
    xp = array_module(a)
    k = a.shape[1]
    out = xp.zeros((a.shape[0], ceil_div(k, multiple) * multiple), dtype=xp.int8)
    out[:, :k] = a
    return out


@lru_cache(maxsize=None)
def int8_kernel(version, tile=16):
    """The loaded Kernel `int8_gemm_v{version}` with TILE defined."""
    if version not in VERSIONS:
        raise ValueError(f"version must be one of {VERSIONS}, got {version!r}")
    return load_kernel(kernel_file("int8_gemm.cu"), f"int8_gemm_v{version}", defines={"TILE": tile})


def int8_gemm(x, w, bias, m0, shift, zy, version=3, tile=16, check=None, counters=False):
    """Y = requant(x w^T + bias) on the tier matching the arrays (NumPy: CPU emulator, CuPy: GPU).

    Args:
        x: (M, K) int8.  w: (N, K) int8.  bias, m0, shift: (N,) int32 (shift = n, 31 + n in 1..62).  zy: int.
        version: 1 (bytes), 2 (__dp4a) or 3 (__dp4a on shared tiles).  K is padded to a multiple of 4 with zeros.
    Returns:
        (M, N) int8, or (Y, LaunchStats) when counters=True.
    """
    (m, k), n = x.shape, w.shape[0]
    if w.shape[1] != k or any(t.shape != (n,) or t.dtype != np.int32 for t in (bias, m0, shift)):
        raise ValueError(f"expected w ({n}, {k}) and int32 bias, m0, shift ({n},); got {w.shape}, "
                         f"{[(t.shape, str(t.dtype)) for t in (bias, m0, shift)]}")
    if n and (int(shift.min()) < -30 or int(shift.max()) > 31):
        raise ValueError(f"shift: 31 + n must be in 1..62, got n in [{int(shift.min())}, {int(shift.max())}]")
    xp = array_module(x)
    x, w = pad_k(x), pad_k(w)
    y = xp.zeros((m, n), dtype=xp.int8)
    block = (tile, tile)
    xw, ww = (x, w) if version == 1 else (x.view(xp.int32), w.view(xp.int32))
    args = (xw, ww, bias, m0, shift, y, np.int32(m), np.int32(n), np.int32(x.shape[1]), np.int32(zy))
    stats = int8_kernel(version, tile)((ceil_div(n, tile), ceil_div(m, tile)), block, args, 0, check, counters)
    return (y, stats) if counters else y

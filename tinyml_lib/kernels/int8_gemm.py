"""int8 GEMM, int32 accumulation, then fused requantization (v1-v3) or float scales (v4): kernels/int8_gemm.cu.

Math: acc[r, c] = bias[c] + sum_k X[r, k] W[c, k] (int32);
Y[r, c] = clamp(zy + floor((acc * m0[c] + 2^(30+n_c)) / 2^(31+n_c)), -128, 127), the multiplier S_W S_X / S_Y written
as m0 2^-(31+n) with m0 / 2^31 in [0.5, 1) (Jacob et al., CVPR 2018; Lab 03's `quantize_multiplier` / `requantize`).
W8A8 linears of an LLM (version 4, `int8_gemm_scaled`): Y[r, c] = sx[r] sw[c] sum_k X[r, k] W[c, k] + bias[c] in
float32, a scale per token times a scale per output channel (SmoothQuant, Xiao et al., ICML 2023; Lab 07).
"""
from functools import lru_cache

import numpy as np

from .launcher import array_module, ceil_div, check_version, host_arrays, kernel_file, load_kernel

VERSIONS = (1, 2, 3)  # requantizing to int8 (`int8_gemm`)
SCALED_VERSION = 4    # float output with per-token x per-channel scales (`int8_gemm_scaled`)


def int8_gemm_ref(x, w, bias, m0, shift, zy):
    """Reference in NumPy int64.

    Args:
        x: (M, K) int8.  w: (N, K) int8.  bias, m0, shift: (N,) int32.  zy: output zero point (int).
    Returns:
        (M, N) int8 NumPy array.
    """
    x, w, bias, m0, shift = host_arrays(x, w, bias, m0, shift)
    acc = x.astype(np.int64) @ w.astype(np.int64).T + bias.astype(np.int64)        # (M, N)
    s = 31 + shift.astype(np.int64)
    q = ((acc * m0.astype(np.int64) + (np.int64(1) << (s - 1))) >> s) + int(zy)
    return np.clip(q, -128, 127).astype(np.int8)


def int8_gemm_scaled_ref(x, sx, w, sw, bias=None):
    """Reference: exact int64 sums, then the float32 epilogue of version 4.

    Args:
        x: (M, K) int8.  sx: (M,) float32 per-token scales.  w: (N, K) int8.  sw: (N,) float32 per-channel scales.
        bias: (N,) float32 or None (zeros).
    Returns:
        (M, N) float32 NumPy array, sx[r] sw[c] acc[r, c] + bias[c].
    """
    bias = np.zeros(w.shape[0], np.float32) if bias is None else bias
    x, sx, w, sw, bias = host_arrays(x, sx, w, sw, bias)
    acc = (x.astype(np.int64) @ w.astype(np.int64).T).astype(np.float32)              # (M, N), exact below 2^24
    return (sx.astype(np.float32)[:, None] * sw.astype(np.float32)[None, :]) * acc + bias.astype(np.float32)


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
    check_version(version, (*VERSIONS, SCALED_VERSION))
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


def int8_gemm_scaled(x, sx, w, sw, bias=None, tile=16, check=None, counters=False):
    """Y = sx[r] sw[c] (x w^T)[r, c] + bias[c] in float32 (int8_gemm_v4) on the tier matching the arrays.

    Args:
        x: (M, K) int8.  sx: (M,) float32.  w: (N, K) int8.  sw: (N,) float32.  bias: (N,) float32 or None (zeros).
        K is padded to a multiple of 4 with zeros.
    Returns:
        (M, N) float32, or (Y, LaunchStats) when counters=True.
    """
    xp = array_module(x)
    (m, k), n = x.shape, w.shape[0]
    bias = xp.zeros(n, dtype=xp.float32) if bias is None else bias
    if x.dtype != np.int8 or w.dtype != np.int8 or w.shape[1] != k:
        raise ValueError(f"expected int8 x (M, K) and int8 w (N, K); got {x.dtype} {x.shape}, {w.dtype} {w.shape}")
    if any(t.shape != (size,) or t.dtype != np.float32 for t, size in ((sx, m), (sw, n), (bias, n))):
        raise ValueError(f"expected float32 sx ({m},), sw ({n},), bias ({n},); got "
                         f"{[(t.shape, str(t.dtype)) for t in (sx, sw, bias)]}")
    x, w = pad_k(x).view(xp.int32), pad_k(w).view(xp.int32)
    y = xp.zeros((m, n), dtype=xp.float32)
    args = (x, sx, w, sw, bias, y, np.int32(m), np.int32(n), np.int32(4 * x.shape[1]))
    stats = int8_kernel(SCALED_VERSION, tile)((ceil_div(n, tile), ceil_div(m, tile)), (tile, tile), args, 0, check,
                                              counters)
    return (y, stats) if counters else y

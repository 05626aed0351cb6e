"""W4A16 GEMV: reference, packing and launchers for kernels/w4a16_gemv.cu (versions in the file's opening comment).

Math: y[n] = sum_k (q[n, k] - zero[n, k // G]) * scale[n, k // G] * x[k], with 4-bit codes q packed eight per uint32
word (the code of column 8w + i in bits 4i..4i+3 of word w). AWQ: Lin et al., MLSys 2024.
"""
from functools import lru_cache

import numpy as np

from .launcher import array_module, ceil_div, check_version, host_arrays, kernel_file, load_kernel

VERSIONS = (1, 2)


def pack_w4(codes):
    """(N, K) uint8 codes in [0, 15], K % 8 == 0 -> (N, K/8) uint32 words (code of column 8w+i in bits 4i..4i+3)."""
    codes = np.asarray(codes)
    if codes.dtype != np.uint8 or codes.ndim != 2 or codes.shape[1] % 8 or codes.max(initial=0) > 15:
        raise ValueError(f"codes: expected (N, K) uint8 in [0, 15] with K % 8 == 0, got {codes.dtype} {codes.shape}")
    shifts = (4 * np.arange(8, dtype=np.uint32))
    return (codes.reshape(codes.shape[0], -1, 8).astype(np.uint32) << shifts).sum(axis=-1, dtype=np.uint32)


def unpack_w4(qweight):
    """Inverse of `pack_w4`: (N, K/8) uint32 -> (N, K) uint8."""
    q = np.asarray(qweight)
    return ((q[..., None] >> (4 * np.arange(8, dtype=np.uint32))) & 0xF).astype(np.uint8).reshape(q.shape[0], -1)


def w4a16_gemv_ref(qweight, scales, zeros, x, group=64):
    """Reference in float64, rounded to float32: dequantize (q - zero) * scale per group, then W @ x.

    Args:
        qweight: (N, K/8) uint32; scales: (N, K/group) float16; zeros: (N, K/group) uint8; x: (K,) float16.
    Returns:
        (N,) float32 NumPy array.
    """
    qweight, scales, zeros, x = host_arrays(qweight, scales, zeros, x)
    codes = unpack_w4(qweight).astype(np.float64)
    w = (codes - np.repeat(zeros, group, axis=1)) * np.repeat(scales.astype(np.float64), group, axis=1)
    return (w @ x.astype(np.float64)).astype(np.float32)


@lru_cache(maxsize=None)
def gemv_kernel(name, group=64, rows=4):
    """The loaded Kernel `name` (w4a16_gemv_v1/v2 or fp16_gemv_v1) with GROUP and ROWS defined."""
    return load_kernel(kernel_file("w4a16_gemv.cu"), name, defines={"GROUP": group, "ROWS": rows})


def w4a16_gemv(qweight, scales, zeros, x, version=2, group=64, rows=4, check=None, counters=False):
    """y = dequant(W) @ x on the tier matching the arrays (NumPy: CPU emulator, CuPy: GPU).

    Args:
        qweight: (N, K/8) uint32; scales: (N, K/group) float16; zeros: (N, K/group) uint8; x: (K,) float16.
        version: 1 (thread per row) or 2 (warp per row); group: group size; rows: warps per block (v2).
    Returns:
        (N,) float32, or (y, LaunchStats) when counters=True.
    """
    check_version(version, VERSIONS)
    n, words = qweight.shape
    k = 8 * words
    if x.shape != (k,) or scales.shape != (n, k // group) or zeros.shape != scales.shape or k % group:
        raise ValueError(f"expected x ({k},), scales and zeros ({n}, {k // group}); got {x.shape}, {scales.shape}, "
                         f"{zeros.shape} (K={k}, group={group})")
    xp = array_module(qweight)
    y = xp.zeros(n, dtype=xp.float32)
    if version == 1:
        grid, block, smem = ceil_div(n, 128), 128, 0
    else:
        grid, block, smem = ceil_div(n, rows), 32 * rows, 4 * k
    stats = gemv_kernel(f"w4a16_gemv_v{version}", group, rows)(
        grid, block, (qweight, scales, zeros, x, y, np.int32(n), np.int32(k)), smem, check, counters)
    return (y, stats) if counters else y


def fp16_gemv(w, x, rows=4, check=None, counters=False):
    """y = W @ x with (N, K) float16 weights, float32 output: the baseline of the W4A16 kernel."""
    n, k = w.shape
    xp = array_module(w)
    y = xp.zeros(n, dtype=xp.float32)
    stats = gemv_kernel("fp16_gemv_v1", 64, rows)(ceil_div(n, rows), 32 * rows, (w, x, y, np.int32(n), np.int32(k)),
                                                  4 * k, check, counters)
    return (y, stats) if counters else y

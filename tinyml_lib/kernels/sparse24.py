"""2:4 sparse x dense GEMM: compression, reference and launchers for kernels/sparse24_gemm.cu (versions v1-v2, see
the file's opening comment).

Math: C[m, n] = sum_k A[m, k] B[k, n] with A 2:4 sparse, stored as values (M, K/2) and uint8 indices (M, K/2).
"""
from functools import lru_cache

import numpy as np

from .launcher import array_module, ceil_div, check_version, host_arrays, kernel_file, load_kernel

VERSIONS = (1, 2)


def compress_24(a):
    """2:4-prune a dense (M, K) matrix (keep the 2 largest |a| of every 4, ties to the lower position) and compress.

    Returns:
        values (M, K/2) float32, indices (M, K/2) uint8 (position in the group, increasing), dense pruned (M, K).
    """
    a = np.asarray(a, dtype=np.float32)
    M, K = a.shape
    if K % 4:
        raise ValueError(f"K must be a multiple of 4, got {K}")
    groups = np.abs(a).reshape(M, K // 4, 4)
    keep = np.sort(np.argsort(-groups, axis=2, kind="stable")[..., :2], axis=2)      # (M, K/4, 2)
    values = np.take_along_axis(a.reshape(M, K // 4, 4), keep, axis=2).reshape(M, K // 2)
    pruned = np.zeros_like(a).reshape(M, K // 4, 4)
    np.put_along_axis(pruned, keep, values.reshape(M, K // 4, 2), axis=2)
    return np.ascontiguousarray(values), keep.reshape(M, K // 2).astype(np.uint8), pruned.reshape(M, K)


def sgemm24_ref(pruned, b):
    """Reference product of the dense 2:4-pruned A (M, K) and B (K, N) in float64, rounded to float32 (NumPy)."""
    pruned, b = host_arrays(pruned, b)
    return (pruned.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)


@lru_cache(maxsize=None)
def sgemm24_kernel(version, tile=16):
    """The loaded Kernel `sgemm24_v{version}` with TILE = tile."""
    check_version(version, VERSIONS)
    return load_kernel(kernel_file("sparse24_gemm.cu"), f"sgemm24_v{version}", defines={"TILE": tile})


def sgemm24(values, indices, b, version=2, tile=16, check=None, counters=False):
    """C = A B from compressed 2:4 A (values, indices) on the tier matching the arrays.

    Args:
        values: (M, K/2) float32, indices: (M, K/2) uint8, b: (K, N) float32, all C-contiguous.
        version: 1 or 2.  tile: TILE (block = tile x tile threads).  check, counters: CPU tier only.
    Returns:
        (M, N) float32 array of b's library, or (C, LaunchStats) when counters=True.
    """
    (M, half), (K, N) = values.shape, b.shape
    if values.dtype != np.float32 or b.dtype != np.float32 or indices.dtype != np.uint8:
        raise TypeError(f"expected float32 values and b, uint8 indices; got {values.dtype}, {b.dtype}, {indices.dtype}")
    if indices.shape != values.shape or K != 2 * half or K % 4:
        raise ValueError(f"shapes do not match a 2:4 A (M, K/2) and B (K, N): {values.shape}, {indices.shape}, {b.shape}")
    c = array_module(b).zeros((M, N), dtype=np.float32)
    grid, block = (ceil_div(N, tile), ceil_div(M, tile)), (tile, tile)
    args = (values, indices, b, c, np.int32(M), np.int32(N), np.int32(K))
    stats = sgemm24_kernel(version, tile)(grid, block, args, check=check, counters=counters)
    return (c, stats) if counters else c

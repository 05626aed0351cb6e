"""LUT (k-means codebook) dequant GEMV: reference and launchers for kernels/lut_gemv.cu (versions in its opening comment).

Math: y[n] = sum_k codebook[idx[n, k]] x[k], with 4-bit indices packed eight per uint32 word (`pack_w4`'s layout) and
one 16-entry float32 codebook per layer (Han, Mao, Dally, Deep Compression, ICLR 2016; Lab 03's `kmeans_quantize`).
"""
from functools import lru_cache

import numpy as np

from .launcher import array_module, ceil_div, check_version, host_arrays, kernel_file, load_kernel
from .w4a16_gemv import pack_w4, unpack_w4

VERSIONS = (1, 2)
__all__ = ["VERSIONS", "lut_gemv", "lut_gemv_ref", "pack_w4", "unpack_w4"]


def lut_gemv_ref(idx_words, codebook, x):
    """Reference in float64, rounded to float32. idx_words (N, K/8) uint32, codebook (16,), x (K,) float32 -> (N,)."""
    idx_words, codebook, x = host_arrays(idx_words, codebook, x)
    w = codebook.astype(np.float64)[unpack_w4(idx_words)]                              # (N, K)
    return (w @ x.astype(np.float64)).astype(np.float32)


@lru_cache(maxsize=None)
def lut_kernel(version, rows=4):
    """The loaded Kernel `lut_gemv_v{version}` with ROWS defined."""
    check_version(version, VERSIONS)
    return load_kernel(kernel_file("lut_gemv.cu"), f"lut_gemv_v{version}", defines={"ROWS": rows})


def lut_gemv(idx_words, codebook, x, version=2, rows=4, check=None, counters=False):
    """y = codebook[idx] @ x on the tier matching the arrays (NumPy: CPU emulator, CuPy: GPU).

    Args:
        idx_words: (N, K/8) uint32 packed 4-bit indices.  codebook: (16,) float32.  x: (K,) float32.
        version: 1 (thread per row, codebook in global memory) or 2 (warp per row, codebook and x in shared memory).
    Returns:
        (N,) float32, or (y, LaunchStats) when counters=True.
    """
    n, k = idx_words.shape[0], 8 * idx_words.shape[1]
    if codebook.shape != (16,) or x.shape != (k,) or codebook.dtype != np.float32 or x.dtype != np.float32:
        raise ValueError(f"expected a (16,) float32 codebook and x ({k},) float32, got {codebook.dtype} "
                         f"{codebook.shape} and {x.dtype} {x.shape}")
    y = array_module(idx_words).zeros(n, dtype=np.float32)
    grid, block, smem = (ceil_div(n, 128), 128, 0) if version == 1 else (ceil_div(n, rows), 32 * rows, 4 * (16 + k))
    stats = lut_kernel(version, rows)(grid, block, (idx_words, codebook, x, y, np.int32(n), np.int32(k)), smem, check,
                                      counters)
    return (y, stats) if counters else y

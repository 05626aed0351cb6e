"""Sum reduction: reference and launchers for kernels/reduction.cu (versions v1-v3, see the file's opening comment).

Math: s = sum_i x_i. On a GPU the order of the additions differs from NumPy's, so float32 results agree only to
rounding (relative ~1e-6 * sqrt(n) typically).
"""
from functools import lru_cache

import numpy as np

from .launcher import array_module, ceil_div, check_version, kernel_file, load_kernel

VERSIONS = (1, 2, 3)


def reduce_sum_ref(x):
    """Reference sum, accumulated in float64.

    Args:
        x: (n,) float32 NumPy array (a CuPy array is copied to the host).
    Returns:
        np.float32 scalar.
    """
    x = x.get() if hasattr(x, "get") else np.asarray(x)
    return np.float32(np.sum(x, dtype=np.float64))


@lru_cache(maxsize=None)
def reduction_kernel(version, block=256):
    """The loaded Kernel `reduce_v{version}` with BLOCK threads per block."""
    check_version(version, VERSIONS)
    return load_kernel(kernel_file("reduction.cu"), f"reduce_v{version}", defines={"BLOCK": block})


def reduce_sum(x, version=2, block=256, check=None, counters=False):
    """Sum of a float32 vector on the tier matching x (NumPy: CPU emulator, CuPy: GPU).

    Args:
        x: (n,) float32, C-contiguous, NumPy or CuPy.
        version: 1, 2 or 3 (reduce_v1..v3).
        block: threads per block (power of two, 32..1024).
        check, counters: passed to the launch (CPU tier only).
    Returns:
        np.float32 scalar (the sum), or (sum, LaunchStats) when counters=True.
    """
    if x.dtype != np.float32 or x.ndim != 1 or not x.flags.c_contiguous:
        raise TypeError(f"x must be a 1-D C-contiguous float32 array, got {x.dtype} with shape {x.shape}")
    xp = array_module(x)
    out = xp.zeros(1, dtype=xp.float32)
    grid = max(1, ceil_div(x.size, block))
    stats = reduction_kernel(version, block)(grid, block, (x, out, np.int32(x.size)), check=check, counters=counters)
    total = np.float32(float(out[0]))
    return (total, stats) if counters else total

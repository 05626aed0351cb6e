"""SGEMM: reference and launchers for kernels/sgemm.cu (versions v1-v3, see the file's opening comment).

Math: C[m, n] = sum_k A[m, k] * B[k, n], float32, row-major.
"""
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .launcher import array_module, ceil_div, check_version, host_arrays, kernel_file, load_kernel

VERSIONS = (1, 2, 3)


@dataclass(frozen=True)
class SgemmConfig:
    """Tuning constants (the #defines of sgemm.cu). v1 uses block x block threads, v2 tile x tile, v3 a bm x bn
    C tile per block of (bn/tn) x (bm/tm) threads, bk deep."""
    block: int = 16
    tile: int = 16
    bm: int = 64
    bn: int = 64
    bk: int = 8
    tm: int = 4
    tn: int = 4


def sgemm_ref(a, b):
    """Reference matrix product in float64, rounded to float32.

    Args:
        a: (M, K) float32.  b: (K, N) float32 (NumPy; CuPy arrays are copied to the host).
    Returns:
        (M, N) float32 NumPy array.
    """
    a, b = host_arrays(a, b)
    return (a.astype(np.float64) @ b.astype(np.float64)).astype(np.float32)


@lru_cache(maxsize=None)
def sgemm_kernel(version, config=SgemmConfig()):
    """The loaded Kernel `sgemm_v{version}` with the config's #defines."""
    check_version(version, VERSIONS)
    c = config
    defines = {"TILE": c.tile, "BM": c.bm, "BN": c.bn, "BK": c.bk, "TM": c.tm, "TN": c.tn}
    return load_kernel(kernel_file("sgemm.cu"), f"sgemm_v{version}", defines=defines)


def launch_shape(version, M, N, config=SgemmConfig()):
    """(grid, block) for sgemm_v{version} on an (M, N) output; grid x covers columns, y covers rows."""
    c = config
    if version == 1:
        return (ceil_div(N, c.block), ceil_div(M, c.block)), (c.block, c.block)
    if version == 2:
        return (ceil_div(N, c.tile), ceil_div(M, c.tile)), (c.tile, c.tile)
    return (ceil_div(N, c.bn), ceil_div(M, c.bm)), (c.bn // c.tn, c.bm // c.tm)


def sgemm(a, b, version=2, config=SgemmConfig(), check=None, counters=False):
    """C = a @ b on the tier matching the arrays (NumPy: CPU emulator, CuPy: GPU).

    Args:
        a: (M, K) float32 C-contiguous.  b: (K, N) float32 C-contiguous.
        version: 1, 2 or 3.  config: SgemmConfig.  check, counters: passed to the launch (CPU tier only).
    Returns:
        (M, N) float32 array of a's library, or (C, LaunchStats) when counters=True.
    """
    for name, t in (("a", a), ("b", b)):
        if t.dtype != np.float32 or t.ndim != 2 or not t.flags.c_contiguous:
            raise TypeError(f"{name} must be a 2-D C-contiguous float32 array, got {t.dtype} with shape {t.shape}")
    (M, K), (K2, N) = a.shape, b.shape
    if K != K2:
        raise ValueError(f"inner dimensions differ: a is {a.shape}, b is {b.shape}")
    c = array_module(a).zeros((M, N), dtype=np.float32)
    grid, block = launch_shape(version, M, N, config)
    args = (a, b, c, np.int32(M), np.int32(N), np.int32(K))
    stats = sgemm_kernel(version, config)(grid, block, args, check=check, counters=counters)
    return (c, stats) if counters else c

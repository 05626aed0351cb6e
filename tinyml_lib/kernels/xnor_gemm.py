"""XNOR-popcount GEMM of packed sign bits and its float32 baseline: reference and launchers for kernels/xnor_gemm.cu.

Math: for a, b in {-1, +1}^K stored as bits (1 = +1), a . b = K - 2 popcount(a XOR b). Rastegari et al., XNOR-Net,
ECCV 2016. The bit layout is Lab 03b's `pack_signs` (element k in bit k % 32 of word k // 32, padding bits 0).
"""
from functools import lru_cache

import numpy as np

from .launcher import array_module, ceil_div, check_version, host_arrays, kernel_file, load_kernel

VERSIONS = (1, 2)


def pack_sign_rows(x):
    """(R, K) float array -> (R, ceil(K/32)) uint32: bit k % 32 of word k // 32 set iff x[:, k] >= 0; padding 0."""
    x = np.asarray(x)
    bits = np.zeros((x.shape[0], ceil_div(x.shape[1], 32) * 32), dtype=bool)
    bits[:, :x.shape[1]] = x >= 0
    return np.ascontiguousarray(np.packbits(bits, axis=1, bitorder="little").view("<u4").astype(np.uint32))


def xnor_gemm_ref(a_bits, b_bits, k):
    """Reference: (M, W) and (N, W) uint32 sign words, K valid bits -> (M, N) int32 = K - 2 popcount(a ^ b)."""
    a_bits, b_bits = host_arrays(a_bits, b_bits)
    disagree = np.bitwise_count(a_bits[:, None, :] ^ b_bits[None, :, :]).sum(-1, dtype=np.int64)
    return (k - 2 * disagree).astype(np.int32)


@lru_cache(maxsize=None)
def xnor_kernel(name, tile=16):
    """The loaded Kernel `name` of xnor_gemm.cu (xnor_gemm_v1/v2, sgemm_nt_v1/v2) with TILE defined."""
    return load_kernel(kernel_file("xnor_gemm.cu"), name, defines={"TILE": tile})


def _launch(name, a, b, out_dtype, k, tile, check, counters):
    m, n = a.shape[0], b.shape[0]
    c = array_module(a).zeros((m, n), dtype=out_dtype)
    stats = xnor_kernel(name, tile)((ceil_div(n, tile), ceil_div(m, tile)), (tile, tile),
                                    (a, b, c, np.int32(m), np.int32(n), np.int32(k)), 0, check, counters)
    return (c, stats) if counters else c


def xnor_gemm(a_bits, b_bits, k, version=1, tile=16, check=None, counters=False):
    """+-1 product C = A B^T from packed signs on the tier matching the arrays (NumPy: CPU emulator, CuPy: GPU).

    Args:
        a_bits: (M, W) uint32.  b_bits: (N, W) uint32.  k: valid bits per row, W = ceil(k / 32).
        version: 1 (thread per output) or 2 (shared tiles).
    Returns:
        (M, N) int32, or (C, LaunchStats) when counters=True.
    """
    check_version(version, VERSIONS)
    if a_bits.dtype != np.uint32 or b_bits.dtype != np.uint32 or a_bits.shape[1:] != (ceil_div(k, 32),) \
            or b_bits.shape[1:] != a_bits.shape[1:]:
        raise ValueError(f"expected uint32 (M, {ceil_div(k, 32)}) and (N, {ceil_div(k, 32)}) for K={k}, got "
                         f"{a_bits.dtype} {a_bits.shape} and {b_bits.dtype} {b_bits.shape}")
    return _launch(f"xnor_gemm_v{version}", a_bits, b_bits, np.int32, k, tile, check, counters)


def sgemm_nt(a, b, version=1, tile=16, check=None, counters=False):
    """Float32 baseline C = a b^T with a (M, K), b (N, K) float32: the loop structure of xnor_gemm `version`."""
    if a.dtype != np.float32 or b.dtype != np.float32 or a.shape[1] != b.shape[1]:
        raise ValueError(f"expected float32 (M, K) and (N, K), got {a.dtype} {a.shape} and {b.dtype} {b.shape}")
    return _launch(f"sgemm_nt_v{version}", a, b, np.float32, a.shape[1], tile, check, counters)

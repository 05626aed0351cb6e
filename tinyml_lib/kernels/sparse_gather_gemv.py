"""SparseInfer FFN kernels: reference and launchers for kernels/sparse_gather_gemv.cu (see the file's opening comment).

Math: n_neg_i = popcount(signs(W1[i]) XOR signs(x)); row i active unless n_neg_i > alpha (D - n_neg_i);
h_i = relu(W1[i] . x + b1_i) for active rows, 0 otherwise; y = W2 h + b2. J. Shin et al., SparseInfer, 2024.
"""
from functools import lru_cache

import numpy as np

from .launcher import array_module, ceil_div, host_arrays, kernel_file, load_kernel


def pack_sign_bits(a):
    """Sign bits of the last axis of a float array, 32 per uint32 (bit j%32 of word j//32 set iff a[..., j] < 0)."""
    a = np.asarray(a)
    d = a.shape[-1]
    bits = np.zeros(a.shape[:-1] + (-(-d // 32) * 32,), dtype=bool)
    bits[..., :d] = a < 0
    return np.ascontiguousarray(np.packbits(bits, axis=-1, bitorder="little").view("<u4").astype(np.uint32))


def sparse_ffn_ref(x, w1, b1, w2t, b2, alpha):
    """Reference SparseInfer FFN in float64. x (D,), w1 and w2t (DFF, D), b1 (DFF,), b2 (D,) float32.

    Returns:
        (y (D,) float32, active (DFF,) bool): the output with predicted-zero rows skipped, and the predictor's mask.
    """
    x, w1, b1, w2t, b2 = host_arrays(x, w1, b1, w2t, b2)
    d = x.shape[0]
    n_neg = np.bitwise_count(pack_sign_bits(w1) ^ pack_sign_bits(x)).sum(-1, dtype=np.int64)
    active = ~(n_neg.astype(np.float32) > np.float32(alpha) * (d - n_neg).astype(np.float32))
    h = np.where(active, np.maximum(w1.astype(np.float64) @ x + b1, 0.0), 0.0)
    return (h @ w2t.astype(np.float64) + b2).astype(np.float32), active


@lru_cache(maxsize=None)
def ffn_kernel(name, rows=4):
    """The loaded Kernel `name` of sparse_gather_gemv.cu with ROWS warps per block."""
    return load_kernel(kernel_file("sparse_gather_gemv.cu"), name, defines={"ROWS": rows})


def sparse_ffn(x, w1, b1, w2t, b2, alpha, w1_signs=None, rows=4, check=None, counters=False):
    """SparseInfer FFN of one token on the tier matching the arrays (NumPy: CPU emulator, CuPy: GPU).

    Args:
        x (D,), w1 (DFF, D), b1 (DFF,), w2t (DFF, D), b2 (D,): float32; alpha: conservativeness;
        w1_signs: (DFF, ceil(D/32)) uint32 precomputed `pack_sign_bits(w1)` (computed here if None).
    Returns:
        (y (D,) float32, h (DFF,) float32), plus (stats of the up kernel, stats of the down kernel) when counters=True.
    """
    dff, d = w1.shape
    if x.shape != (d,) or w2t.shape != (dff, d) or b1.shape != (dff,) or b2.shape != (d,):
        raise ValueError(f"expected x ({d},), w2t ({dff}, {d}), b1 ({dff},), b2 ({d},); got {x.shape}, {w2t.shape}, "
                         f"{b1.shape}, {b2.shape}")
    xp = array_module(w1)
    host = (lambda a: a.get()) if xp is not np else (lambda a: a)
    w1_signs = xp.asarray(pack_sign_bits(host(w1))) if w1_signs is None else w1_signs
    x_signs = xp.asarray(pack_sign_bits(host(x)))
    h, y = xp.zeros(dff, dtype=xp.float32), xp.zeros(d, dtype=xp.float32)
    up = ffn_kernel("sparse_ffn_up_v1", rows)(ceil_div(dff, rows), 32 * rows, (
        w1_signs, x_signs, w1, b1, x, h, np.int32(dff), np.int32(d), np.float32(alpha)), 0, check, counters)
    down = ffn_kernel("sparse_ffn_down_v1", rows)(ceil_div(d, 128), 128, (h, w2t, b2, y, np.int32(dff), np.int32(d)),
                                                  4 * dff, check, counters)
    return (y, h, (up, down)) if counters else (y, h)


def sign_predict(w1_signs, x_signs, d, alpha, check=None):
    """Predictor alone: (DFF,) int32, 1 = active, 0 = predicted zero."""
    xp = array_module(w1_signs)
    active = xp.zeros(w1_signs.shape[0], dtype=xp.int32)
    ffn_kernel("sign_predict_v1")(ceil_div(w1_signs.shape[0], 128), 128, (
        w1_signs, x_signs, active, np.int32(w1_signs.shape[0]), np.int32(d), np.float32(alpha)), 0, check)
    return active
